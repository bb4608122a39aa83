// Every function and class of the addon, called with random argument types
// and counts in child processes: only thrown errors, never a crash. Some
// functions wait, by design, for a descriptor that never becomes ready (a
// fuzzed timeout of "forever"): a child found asleep with no progress is
// killed and the next one continues with another seed; a child that makes no
// progress while running (a busy loop) fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageQueue } from '../lib/posix.js';
import { finished, testName } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/fuzz-addon.js', import.meta.url));
const TARGET_CALLS = 20_000;
const MAX_RUNS = 25;
const STALL_MS = 400;
const SPIN_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The scheduler state of a process's main thread: 'R' running, 'S' asleep in a wait, ... */
function threadState(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
  } catch {
    return undefined;
  }
}

test('random calls to every native export only throw errors', async (t) => {
  const name = testName('fuzz');
  const dir = mkdtempSync(join(tmpdir(), 'pmp-fuzz-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
    // Fuzzed calls may have created kernel objects under the names they were given.
    for (const leftover of [name, `${name}-other`]) {
      try { MessageQueue.unlink(leftover); } catch { /* never created, or already unlinked */ }
      for (const file of [leftover, `/sem.${leftover.slice(1)}`]) rmSync(`/dev/shm${file}`, { force: true });
    }
  });
  const firstSeed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  let calls = 0;
  const waited: string[] = [];
  let completed = 0;
  for (let run = 0; run < MAX_RUNS && calls < TARGET_CALLS; run++) {
    const seed = firstSeed + run;
    const log = join(dir, `calls-${seed}.log`);
    const child = spawn(process.execPath, [fixture, String(seed), '2000', name, log], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exit = finished(child);
    let exited = false;
    void exit.then(() => { exited = true; });
    let size = -1;
    let stalledSince = performance.now();
    let killedWaiting = false;
    while (!exited) {
      await sleep(100);
      const now = statSync(log, { throwIfNoEntry: false })?.size ?? 0;
      if (now !== size) {
        size = now;
        stalledSince = performance.now();
        continue;
      }
      const stalled = performance.now() - stalledSince;
      const state = threadState(child.pid!);
      if (stalled > STALL_MS && state === 'S') {
        killedWaiting = true;
        child.kill('SIGKILL');
        break;
      }
      if (stalled > SPIN_MS) {
        child.kill('SIGKILL');
        break;
      }
    }
    const { code, signal, stderr } = await exit;
    const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
    const context = `seed ${seed} (rerun with FUZZ_SEED=${seed}); last calls:\n${lines.slice(-3).join('\n')}\n${stderr}`;
    if (killedWaiting) {
      waited.push(lines.at(-1)!);
      calls += lines.length - 1;
      continue;
    }
    assert.equal(signal, null, `the fuzzed process ${signal === 'SIGKILL' ? `made no progress for ${SPIN_MS} ms while running` : `died of ${signal}`}: ${context}`);
    assert.equal(code, 0, context);
    assert.match(lines.at(-1)!, /^done /, context);
    const counts = JSON.parse(lines.at(-1)!.slice(5));
    assert.ok(counts.threw > 0 && counts.returned > 0, lines.at(-1));
    calls += counts.calls;
    completed++;
  }
  t.diagnostic(`${calls} calls in ${completed + waited.length} processes; ${waited.length} ended waiting in: ${waited.join('; ')}`);
  assert.ok(calls >= TARGET_CALLS, `only ${calls} calls: ${waited.length} processes ended waiting (${waited.join('; ')})`);
});
