// Anonymous objects disappear when their creator dies, even by SIGKILL;
// objects untracked (handed over) stay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { MessageQueue } from '../lib/posix/mqueue.js';
import { NamedSemaphore } from '../lib/posix/semaphore.js';
import { isOSError } from '../lib/errors.js';

const fixture = new URL('./fixtures/tracked-objects.js', import.meta.url).pathname;
interface Names { queue: string; semaphore: string; segment: string; kept: string }

function queueExists(name: string): boolean {
  try {
    new MessageQueue(name).close();
    return true;
  } catch (error) {
    if (isOSError(error, 'ENOENT')) return false;
    throw error;
  }
}

function present(names: Names) {
  return {
    queue: queueExists(names.queue),
    semaphore: existsSync(`/dev/shm/sem.${names.semaphore.slice(1)}`),
    segment: existsSync(`/dev/shm/${names.segment.slice(1)}`),
    kept: existsSync(`/dev/shm/sem.${names.kept.slice(1)}`),
  };
}

async function gone(names: Names, seconds: number) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const state = present(names);
    if (!state.queue && !state.semaphore && !state.segment) return state;
    if (Date.now() > deadline) return state;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const ending of ['exit', 'SIGKILL'] as const) {
  test(`a creator's anonymous objects are removed after it ends (${ending})`, async (t) => {
    const child = spawn(process.execPath, [fixture, ending === 'exit' ? 'exit' : 'wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = await once(child.stdout!, 'data') as [Buffer];
    const names = JSON.parse(line.toString()) as Names;
    t.after(() => NamedSemaphore.unlink(names.kept));
    assert.deepEqual(present(names), { queue: true, semaphore: true, segment: true, kept: true });
    if (ending === 'SIGKILL') child.kill('SIGKILL');
    await once(child, 'close');
    assert.deepEqual(await gone(names, 1), { queue: false, semaphore: false, segment: false, kept: true });
  });
}

test('a creator SIGKILLed while its tracker lags behind loses no registration', async (t) => {
  const child = spawn(process.execPath, [fixture, 'flood'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const prefix = `pmp-${child.pid}-`;
  const segments = () => readdirSync('/dev/shm').filter((file) => file.startsWith(prefix));
  t.after(() => {
    child.kill('SIGKILL');
    for (const file of segments()) unlinkSync(`/dev/shm/${file}`);
  });
  const [line] = await once(child.stdout!, 'data') as [Buffer];
  t.after(() => NamedSemaphore.unlink((JSON.parse(line.toString()) as Names).kept));
  const tracker = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]);
  assert.ok(tracker > 0, 'the creator started a tracker');
  // A stopped tracker reads nothing: the creator's pipe fills while it goes on creating.
  process.kill(tracker, 'SIGSTOP');
  const before = segments().length;
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.ok(segments().length > before, 'the creator kept creating');
  child.kill('SIGKILL');
  await once(child, 'close');
  process.kill(tracker, 'SIGCONT');
  const deadline = Date.now() + 5000;
  while (segments().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(segments(), []);
});
