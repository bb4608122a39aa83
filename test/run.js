// npm test: every compiled test file under Node's own runner, then a check
// that the suite left no kernel object behind (a leak fails the run).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { listKernelObjects } from '../dist/lib/posix/inventory.js';

const dir = new URL('../dist/test/', import.meta.url);
const only = process.argv.slice(2);
const files = readdirSync(dir).filter((file) => file.endsWith('.test.js'))
  .filter((file) => only.length === 0 || only.some((name) => file.includes(name)))
  .map((file) => new URL(file, dir).pathname);

const names = (objects) => [
  ...(objects.queues ?? []).map((name) => `queue ${name}`),
  ...objects.semaphores.map((name) => `semaphore ${name}`),
  ...objects.segments.map((name) => `shared memory ${name}`),
];
const before = listKernelObjects();
const existing = new Set(names(before));
const run = spawnSync(process.execPath, ['--test', '--test-timeout=120000', ...files], { stdio: 'inherit' });
// Resource trackers unlink a dead creator's objects just after it exits: give them a moment.
let after = listKernelObjects();
let leaked = names(after).filter((name) => !existing.has(name));
for (const deadline = Date.now() + 3000; leaked.length > 0 && Date.now() < deadline;) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  after = listKernelObjects();
  leaked = names(after).filter((name) => !existing.has(name));
}

if (after.queues === null) console.log('# leak check: the queue namespace could not be read (no mqueue filesystem; mount one at /dev/mqueue to check queues)');
if (leaked.length > 0) {
  console.error(`# leak check: the suite left ${leaked.length} kernel object(s) behind:\n${leaked.map((l) => `#   ${l}`).join('\n')}`);
  process.exit(1);
}
console.log('# leak check: nothing left behind');
process.exit(run.status ?? 1);
