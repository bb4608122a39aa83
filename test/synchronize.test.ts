// Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier: CPython's
// behaviour in one process, then across real processes opening them by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';
import {
  AssertionError, Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, Lock, Process, RLock, Semaphore, ValueError,
} from '../lib/index.js';
import { SharedMemorySegment } from '../lib/posix.js';
import { dumps, loads } from '../lib/pickle.js';
import { reduceSymbol } from '../lib/reduction.js';
import { finished, PY_SEM_CTYPES, testName } from './helpers.js';

type Closable = { close(): void; unlink?(): void };
type Context = { after(fn: () => void): void };

const fixture = new URL('./fixtures/sync-child.js', import.meta.url).pathname;

function child(scenario: string, args: object) {
  return spawn(process.execPath, [fixture, scenario, JSON.stringify(args)]);
}

async function run(scenario: string, args: object): Promise<string> {
  const { code, stdout, stderr } = await finished(child(scenario, args));
  assert.equal(code, 0, stderr);
  return stdout;
}

/** A named object removed after the test. */
function named<T extends Closable>(t: Context, make: (name: string) => T, label = 'sync'): T {
  const object = make(testName(label));
  t.after(() => {
    object.close();
    try { object.unlink?.(); } catch { /* the test unlinked it */ }
  });
  return object;
}

function anonymous<T extends Closable>(t: Context, object: T): T {
  t.after(() => object.close());
  return object;
}

/** Zeroed shared integers for the children to record into. */
function sharedWords(t: Context, count: number): { name: string; words: Int32Array } {
  const name = testName('words');
  const segment = new SharedMemorySegment(name, { create: true, exclusive: true, size: count * 4 });
  t.after(() => { segment.close(); SharedMemorySegment.unlink(name); });
  return { name, words: new Int32Array(segment.buffer.buffer, segment.buffer.byteOffset, count) };
}

function elapsed(start: number): number {
  return performance.now() - start;
}

test('Lock: acquire, non-blocking acquire, release, over-release is a ValueError', (t) => {
  const lock = anonymous(t, new Lock());
  assert.equal(inspect(lock), '<Lock(owner=None)>');
  assert.equal(lock.acquire(), true);
  assert.equal(inspect(lock), '<Lock(owner=MainProcess)>');
  assert.equal(lock.acquire(false), false);
  assert.equal(lock.acquire(true, 0), false);
  const start = performance.now();
  assert.equal(lock.acquire(true, 0.1), false);
  assert.ok(elapsed(start) >= 95);
  assert.equal(lock.release(), undefined);
  assert.throws(() => lock.release(), (error: Error) => error instanceof ValueError && error.message === 'semaphore or lock released too many times');
  {
    using held = lock.hold();
    assert.equal(lock.acquire(false), false);
    assert.ok(held);
  }
  assert.equal(lock.acquire(false), true);
  lock.release();
  assert.throws(() => lock.acquire(true, 'x' as unknown as number), TypeError);
});

test('Lock: any handle (any process) may release it; a second handle waits for it', async (t) => {
  const lock = named(t, (name) => new Lock({ name }));
  const other = anonymous(t, Lock.open(lock.name));
  assert.equal(lock.acquire(), true);
  assert.equal(inspect(other), '<Lock(owner=SomeOtherThread)>');
  assert.equal(other.acquire(false), false);
  const waiting = other.acquireAsync({ timeout: 5 });
  setTimeout(() => lock.release(), 30);
  assert.equal(await waiting, true);
  assert.equal(await lock.acquireAsync({ timeout: 0.05 }), false);
  lock.release();  // through a handle that did not take it, as CPython allows
  assert.equal(await lock.acquireAsync(), true);
  const controller = new AbortController();
  const aborted = other.acquireAsync({ signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted, { name: 'AbortError' });
  lock.release();
});

test('RLock: recursion per owner, release by a non-owner is an AssertionError', (t) => {
  const lock = anonymous(t, new RLock());
  assert.equal(inspect(lock), '<RLock(None, 0)>');
  for (let i = 0; i < 3; i++) assert.equal(lock.acquire(), true);
  assert.equal(inspect(lock), '<RLock(MainProcess, 3)>');
  const other = anonymous(t, RLock.open(lock.name));
  assert.equal(other.acquire(false), false);
  assert.throws(() => other.release(), (error: Error) => error instanceof AssertionError && error.message === 'attempt to release recursive lock not owned by thread');
  for (let i = 0; i < 3; i++) assert.equal(lock.release(), undefined);
  assert.throws(() => lock.release(), AssertionError);
  assert.equal(other.acquire(false), true);
  other.release();
});

test('Semaphore and BoundedSemaphore: values, timeouts, over-release, bad start values', (t) => {
  const semaphore = anonymous(t, new Semaphore(2));
  assert.equal(semaphore.get_value(), 2);
  assert.equal(semaphore.getValue, semaphore.get_value);
  assert.equal(semaphore.acquire(), true);
  assert.equal(semaphore.acquire(), true);
  assert.equal(semaphore.acquire(false), false);
  assert.equal(inspect(semaphore), '<Semaphore(value=0)>');
  for (let i = 1; i <= 4; i++) {
    semaphore.release();
    assert.equal(semaphore.get_value(), i);
  }
  const zero = anonymous(t, new Semaphore(0));
  for (const [block, timeout, wait] of [[false, null, 0], [false, 0.1, 0], [true, 0.1, 100]] as const) {
    const start = performance.now();
    assert.equal(zero.acquire(block, timeout), false);
    if (wait) assert.ok(elapsed(start) >= wait - 5);
    else assert.ok(elapsed(start) < 90);
  }
  const bounded = anonymous(t, new BoundedSemaphore(2));
  assert.equal(bounded.acquire(), true);
  bounded.release();
  assert.throws(() => bounded.release(), { name: 'ValueError', message: 'semaphore or lock released too many times' });
  assert.equal(inspect(bounded), '<BoundedSemaphore(value=2, maxvalue=2)>');
  anonymous(t, new BoundedSemaphore(0));
  assert.throws(() => new Semaphore(-1), { code: 'EINVAL', errno: 22 });
  assert.throws(() => new Semaphore(2 ** 31), RangeError);
});

test('Semaphore is shared with a CPython peer through sem_open by name', async (t) => {
  const semaphore = named(t, (name) => new Semaphore(2, { name }));
  const script = `${PY_SEM_CTYPES}
value = ctypes.c_int()
libc.sem_getvalue(sem, ctypes.byref(value)); print(value.value)
libc.sem_wait(sem); libc.sem_wait(sem)
print('took two', flush=True)
libc.sem_wait(sem)
print('took a third')
libc.sem_post(sem)
`;
  const peer = spawn('python3', ['-c', script, semaphore.name]);
  const result = finished(peer);
  let seen = '';
  while (!seen.includes('took two')) seen += await once(peer.stdout!, 'data');
  assert.equal(semaphore.get_value(), 0);
  assert.equal(await semaphore.acquireAsync({ timeout: 0.05 }), false);
  semaphore.release();
  const { code, stdout } = await result;
  assert.equal(code, 0);
  assert.equal(stdout, '2\ntook two\ntook a third\n');
  assert.equal(await semaphore.acquireAsync({ timeout: 5 }), true);
});

test("CPython's own multiprocessing.Semaphore (spawn context) opens by name here and sees our acquire", async () => {
  const peer = spawn('python3', ['-c', `
import multiprocessing, sys
semaphore = multiprocessing.get_context('spawn').Semaphore(2)
print(semaphore._semlock.name, flush=True)
sys.stdin.readline()
print(semaphore.get_value(), flush=True)
semaphore.acquire()
`], { stdio: ['pipe', 'pipe', 'pipe'] });
  const result = finished(peer);
  const [line] = await once(peer.stdout!, 'data') as [Buffer];
  const semaphore = Semaphore.open(line.toString().trim());
  try {
    assert.equal(semaphore.get_value(), 2);
    assert.equal(semaphore.acquire(false), true);
    peer.stdin!.end('go\n');
    const { code, stdout, stderr } = await result;
    assert.equal(code, 0, stderr);
    assert.equal(stdout.split('\n')[1], '1');
    assert.equal(semaphore.get_value(), 0);
  } finally {
    semaphore.close();
  }
});

test('100 decrements in each of 20 processes under one Lock: the count is exact', async (t) => {
  const lock = named(t, (name) => new Lock({ name }));
  const counter = sharedWords(t, 1);
  counter.words[0] = 2000;
  await Promise.all(Array.from({ length: 20 }, () => run('decrement', { lock: lock.name, counter: counter.name, times: 100 })));
  assert.equal(counter.words[0], 0);
});

test('Semaphore(1) as a mutex shared by Node processes and a CPython process (sem_wait/sem_post): the count is exact', async (t) => {
  const semaphore = named(t, (name) => new Semaphore(1, { name }));
  const counter = sharedWords(t, 1);
  counter.words[0] = 6000;
  const script = `${PY_SEM_CTYPES}
import mmap, os, struct
fd = os.open('/dev/shm' + sys.argv[2], os.O_RDWR)
memory = mmap.mmap(fd, 4)
for _ in range(2000):
    libc.sem_wait(sem)
    value = struct.unpack_from('i', memory)[0]
    struct.pack_into('i', memory, 0, value - 1)
    libc.sem_post(sem)
`;
  const peer = finished(spawn('python3', ['-c', script, semaphore.name, counter.name]));
  await Promise.all([0, 1].map(() => run('decrement', { lock: semaphore.name, counter: counter.name, times: 2000, semaphore: true })));
  const { code, stderr } = await peer;
  assert.equal(code, 0, stderr);
  assert.equal(counter.words[0], 0);
  assert.equal(semaphore.get_value(), 1);
});

test('worker threads share a Lock by name: 4 × 500 decrements are exact; an RLock is owned per thread', async (t) => {
  const lock = named(t, (name) => new Lock({ name }));
  const rlock = named(t, (name) => new RLock({ name }));
  const counter = sharedWords(t, 1);
  counter.words[0] = 2000;
  const index = new URL('../lib/index.js', import.meta.url).href;
  const posix = new URL('../lib/posix.js', import.meta.url).href;
  rlock.acquire();
  const workers = Array.from({ length: 4 }, () => new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { Lock, RLock } = await import(${JSON.stringify(index)});
      const { SharedMemorySegment } = await import(${JSON.stringify(posix)});
      const segment = new SharedMemorySegment(workerData.counter);
      const words = new Int32Array(segment.buffer.buffer, segment.buffer.byteOffset, 1);
      const lock = Lock.open(workerData.lock);
      for (let i = 0; i < 500; i++) {
        await lock.acquireAsync();
        const value = words[0];
        await null;
        words[0] = value - 1;
        lock.release();
      }
      const rlock = RLock.open(workerData.rlock);
      let releaseError = '';
      try { rlock.release(); } catch (error) { releaseError = error.name; }
      parentPort.postMessage([rlock.acquire(false), releaseError]);
      lock.close(); rlock.close(); segment.close();
    })();`, { eval: true, workerData: { lock: lock.name, rlock: rlock.name, counter: counter.name } }));
  const exits = workers.map((worker) => once(worker, 'exit'));
  const replies = await Promise.all(workers.map((worker) => once(worker, 'message')));
  await Promise.all(exits);
  rlock.release();
  assert.equal(counter.words[0], 0);
  assert.deepEqual(replies.map(([reply]) => reply), Array.from({ length: 4 }, () => [false, 'AssertionError']));
});

for (const [label, bounded, async] of [['Semaphore(3)', false, false], ['BoundedSemaphore(3), async', true, true]] as const) {
  test(`${label} admits at most 3 holders at once across 10 processes`, async (t) => {
    const semaphore = named(t, (name) => (bounded ? new BoundedSemaphore(3, { name }) : new Semaphore(3, { name })));
    const state = sharedWords(t, 2);
    await Promise.all(Array.from({ length: 10 }, () => run('admit', { semaphore: semaphore.name, state: state.name, times: 20, bounded, async })));
    assert.equal(state.words[0], 0);
    assert.ok(state.words[1]! <= 3, `at most 3 holders, saw ${state.words[1]}`);
    assert.ok(state.words[1]! >= 2, `the semaphore admitted several holders (saw ${state.words[1]})`);
    assert.equal(semaphore.get_value(), 3);
  });
}

for (const [label, recursive, async] of [['Lock, sync waiter', false, false], ['RLock, async waiter', true, true]] as const) {
  test(`owner death: ${label} gets the lock within 1 s of the holder's SIGKILL`, async (t) => {
    const lock = named(t, (name) => (recursive ? new RLock({ name }) : new Lock({ name })));
    const holder = child('hold', { lock: lock.name, recursive });
    const holderExit = finished(holder);
    await once(holder.stdout!, 'data');
    const waiter = child('takeover', { lock: lock.name, recursive, async });
    const waiterResult = finished(waiter);
    await once(waiter.stdout!, 'data');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const killedAt = Date.now();
    holder.kill('SIGKILL');
    await holderExit;
    const { code, stdout, stderr } = await waiterResult;
    assert.equal(code, 0, stderr);
    const report = JSON.parse(stdout.split('\n')[1]!);
    assert.equal(report.acquired, true);
    assert.equal(report.ownerDied, true);
    assert.equal(report.deadOwner, holder.pid);
    assert.ok(report.at - killedAt < 1000, `took ${report.at - killedAt} ms after the kill`);
    assert.equal(lock.acquire(false), true);
    assert.equal(lock.ownerDied, false);
    lock.release();
  });
}

test('owner death: a Worker terminated while holding a Lock', async (t) => {
  const lock = named(t, (name) => new Lock({ name }));
  const index = new URL('../lib/index.js', import.meta.url).href;
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    import(${JSON.stringify(index)}).then(({ Lock }) => {
      Lock.open(workerData).acquire();
      parentPort.postMessage('held');
    });`, { eval: true, workerData: lock.name });
  await once(worker, 'message');
  assert.equal(inspect(lock), '<Lock(owner=SomeOtherThread)>');
  assert.equal(lock.acquire(false), false);
  await worker.terminate();
  const start = performance.now();
  assert.equal(await lock.acquireAsync({ timeout: 3 }), true);
  assert.ok(elapsed(start) < 1000);
  assert.equal(lock.ownerDied, true);
  assert.notEqual(lock.deadOwner, process.pid);
  lock.release();
});

test('owner death: the killed holder is a zombie of the waiting process itself', async (t) => {
  const lock = named(t, (name) => new Lock({ name }));
  const holder = child('hold', { lock: lock.name });
  await once(holder.stdout!, 'data');
  holder.kill('SIGKILL');
  // This thread blocks at once, so Node cannot reap the child: it stays a zombie.
  const start = performance.now();
  assert.equal(lock.acquire(true, 3), true);
  assert.ok(elapsed(start) < 1000);
  assert.equal(lock.deadOwner, holder.pid);
  lock.release();
});

test('Barrier(5) across 5 processes, several rounds, one aborted and reset', async (t) => {
  const barrier = named(t, (name) => new Barrier(5, null, null, { name }), 'barrier');
  const meeting = named(t, (name) => new Barrier(5, null, null, { name }), 'meeting');
  const outputs = await Promise.all(Array.from({ length: 5 }, (_, party) => run('barrier', {
    barrier: barrier.name, meeting: meeting.name, parties: 5, rounds: 4, abortRound: 2, party, async: party % 2 === 1,
  })));
  const results = outputs.map((output) => JSON.parse(output) as (number | string)[]);
  for (const round of [0, 1, 3]) {
    assert.deepEqual(results.map((r) => r[round]).sort(), [0, 1, 2, 3, 4], `round ${round}: each index once`);
  }
  assert.deepEqual(results.map((r) => r[2]), ['broken', 'broken', 'broken', 'broken', 'broken']);
  assert.equal(barrier.broken, false);
  assert.equal(barrier.n_waiting, 0);
});

test('Barrier in one process: action once per pass, timeouts break it, reset mends it', async (t) => {
  let actions = 0;
  const barrier = anonymous(t, new Barrier(1, () => actions++));
  assert.equal(barrier.wait(), 0);
  assert.equal(await barrier.waitAsync(), 0);
  assert.equal(actions, 2);
  const two = anonymous(t, new Barrier(2, null, 0.05));
  assert.throws(() => two.wait(), BrokenBarrierError);
  assert.equal(two.broken, true);
  await assert.rejects(two.waitAsync(), BrokenBarrierError);
  two.reset();
  assert.equal(two.broken, false);
  await assert.rejects(two.waitAsync({ timeout: 0.02 }), BrokenBarrierError);
  await two.resetAsync();
  const failing = anonymous(t, new Barrier(1, () => { throw new Error('action failed'); }));
  assert.throws(() => failing.wait(), /action failed/);
  assert.equal(failing.broken, true);
  await failing.abortAsync();
  assert.equal(failing.broken, true);
});

for (const async of [false, true]) {
  test(`Condition producer/consumers across 3 processes, 10 000 notifications, none lost${async ? ' (async)' : ''}`, async (t) => {
    const lock = named(t, (name) => new Lock({ name }));
    const condition = named(t, (name) => new Condition(lock, { name }), 'cond');
    const state = sharedWords(t, 2);
    const args = { lock: lock.name, condition: condition.name, state: state.name, total: 10_000, count: 10_000, async };
    const consumers = [run('consume', args), run('consume', args)];
    await run('produce', args);
    const consumed = (await Promise.all(consumers)).map(Number);
    assert.equal(consumed[0]! + consumed[1]!, 10_000);
    assert.deepEqual([...state.words], [0, 10_000]);
  });
}

test('Condition: must own the lock; wait times out; notify(n) and notify_all wake waiters in other processes', async (t) => {
  const condition = named(t, (name) => new Condition(null, { name }), 'cond');
  assert.throws(() => condition.wait(), { name: 'AssertionError', message: 'must acquire() condition before using wait()' });
  assert.throws(() => condition.notify(), { name: 'AssertionError', message: 'lock is not owned' });
  assert.equal(condition.notifyAll, condition.notify_all);
  using _ = condition.hold();
  let start = performance.now();
  assert.equal(condition.wait(0.1), false);
  assert.ok(elapsed(start) >= 95);
  assert.equal(condition.wait_for(() => 0, 0.05), 0);
  assert.equal(condition.wait_for(() => 'ready'), 'ready');
  // The condition's own RLock (recursion 2 here) is released fully while waiting.
  condition.acquire();
  start = performance.now();
  const notifier = run('notify', { lock: condition.lock.name, condition: condition.name, recursive: true, delay: 100 });
  assert.equal(condition.wait(10), true);
  assert.ok(elapsed(start) >= 50);
  assert.equal(inspect(condition.lock), '<RLock(MainProcess, 2)>');
  condition.release();
  await notifier;
  const notifyAll = run('notify', { lock: condition.lock.name, condition: condition.name, recursive: true, all: true });
  assert.equal(await condition.waitAsync({ timeout: 10 }), true);
  await notifyAll;
  assert.equal(await condition.waitAsync({ timeout: 0.02 }), false);
});

test('Condition: notify(2) wakes exactly two of three sleeping processes, notify_all the last', async (t) => {
  const lock = named(t, (name) => new Lock({ name }));
  const condition = named(t, (name) => new Condition(lock, { name }), 'cond');
  const sleepers = Array.from({ length: 3 }, () => {
    const sleeper = child('wait-condition', { lock: lock.name, condition: condition.name, timeout: 10 });
    let exited = false;
    const result = finished(sleeper).then((outcome) => { exited = true; return outcome; });
    return { result, exited: () => exited };
  });
  const sleeping = () => Number(/, (\d+)\)>$/.exec(inspect(condition))![1]);
  while (sleeping() < 3) await new Promise((resolve) => setTimeout(resolve, 10));
  await condition.acquireAsync();
  await condition.notifyAsync(2);
  condition.release();
  const exited = () => sleepers.filter((sleeper) => sleeper.exited()).length;
  while (exited() < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(exited(), 2);
  await condition.acquireAsync();
  await condition.notify_allAsync();
  condition.release();
  const outcomes = await Promise.all(sleepers.map((sleeper) => sleeper.result));
  assert.deepEqual(outcomes.map(({ code, stdout }) => [code, stdout]), Array.from({ length: 3 }, () => [0, 'true\n']));
});

test('Condition: a synchronous notify() with a waitAsync() of the same thread pending says to use notifyAsync()', async (t) => {
  const condition = anonymous(t, new Condition());
  await condition.acquireAsync();
  const waiting = condition.waitAsync({ timeout: 5 });
  condition.acquire();
  assert.throws(() => condition.notify(), /use notifyAsync\(\)/);
  await condition.notifyAsync();
  condition.release();
  assert.equal(await waiting, true);
  condition.release();
});

test('Event: set, clear, wait with timeouts; waitAsync woken by set() in the same process and by another process', async (t) => {
  const event = named(t, (name) => new Event({ name }), 'event');
  assert.equal(event.is_set(), false);
  let start = performance.now();
  assert.equal(event.wait(0), false);
  assert.equal(event.wait(0.1), false);
  assert.ok(elapsed(start) >= 95);
  event.set();
  event.set();
  assert.equal(event.is_set(), true);
  start = performance.now();
  assert.equal(event.wait(), true);
  assert.equal(event.wait(0.1), true);
  assert.ok(elapsed(start) < 90);
  event.clear();
  assert.equal(event.isSet(), false);
  const waits = Array.from({ length: 3 }, () => event.waitAsync({ timeout: 10 }));
  setTimeout(() => event.set(), 20);
  assert.deepEqual(await Promise.all(waits), [true, true, true]);
  event.clear();
  const setter = run('set', { event: event.name, delay: 100 });
  assert.equal(event.wait(10), true);
  await setter;
  event.clear();
  const waiter = child('wait-event', { event: event.name, timeout: 10, async: true });
  const result = finished(waiter);
  await once(waiter.stdout!, 'data');
  event.set();
  assert.equal((await result).stdout, 'waiting\ntrue\n');
  const controller = new AbortController();
  event.clear();
  const aborted = event.waitAsync({ signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted, { name: 'AbortError' });
});

test('10 000 concurrent acquireAsync on a Lock and waitAsync on an Event leave fs.readFile unharmed', async (t) => {
  const lock = anonymous(t, new Lock());
  const event = anonymous(t, new Event());
  lock.acquire();
  let acquired = 0;
  const locks = Array.from({ length: 10_000 }, () => lock.acquireAsync().then(() => { acquired++; lock.release(); }));
  const events = Array.from({ length: 10_000 }, () => event.waitAsync());
  await new Promise((resolve) => setTimeout(resolve, 20));
  const start = performance.now();
  await Promise.all(Array.from({ length: 16 }, () => readFile('/proc/self/stat')));
  t.diagnostic(`16 concurrent fs.readFile with 20 000 pending waits: ${elapsed(start).toFixed(2)} ms`);
  assert.ok(elapsed(start) < 250);
  lock.release();
  event.set();
  await Promise.all([...locks, ...events]);
  assert.equal(acquired, 10_000);
});

test('10 000 concurrent waitAsync on a Condition over a Lock: notify_allAsync wakes them all', async (t) => {
  const lock = anonymous(t, new Lock());
  const condition = anonymous(t, new Condition(lock));
  let woken = 0;
  const waits = Array.from({ length: 10_000 }, async () => {
    await condition.acquireAsync();
    try {
      if (await condition.waitAsync({ timeout: 60 })) woken++;
    } finally {
      condition.release();
    }
  });
  while (!inspect(condition).endsWith(', 10000)>')) await new Promise((resolve) => setTimeout(resolve, 20));
  const start = performance.now();
  await Promise.all(Array.from({ length: 16 }, () => readFile('/proc/self/stat')));
  assert.ok(elapsed(start) < 250);
  await condition.acquireAsync();
  await condition.notify_allAsync();
  condition.release();
  await Promise.all(waits);
  assert.equal(woken, 10_000);
});

test('anonymous objects of a SIGKILLed creator are removed by the resource tracker', async () => {
  const creator = child('anonymous', {});
  const [line] = await once(creator.stdout!, 'data') as [Buffer];
  const { files } = JSON.parse(line.toString()) as { files: string[] };
  // Lock 2, RLock 2, Semaphore 1, BoundedSemaphore 1, Event 2, Condition 3 + its RLock 2, Barrier 1 + 2 + 3.
  assert.equal(files.length, 19, files.join(' '));
  creator.kill('SIGKILL');
  await once(creator, 'close');
  const deadline = Date.now() + 2000;
  let left = files;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = new Set(readdirSync('/dev/shm'));
    left = files.filter((file) => now.has(file));
  }
  assert.deepEqual(left, []);
});

test('pickled objects reopen in a child process: it holds the lock, releases the semaphore, sets the event, dies', async (t) => {
  const lock = anonymous(t, new Lock());
  const semaphore = anonymous(t, new Semaphore(0));
  const event = anonymous(t, new Event());
  const condition = anonymous(t, new Condition(lock));
  const [lockAgain, conditionAgain] = loads(dumps([lock, condition])) as [Lock, Condition];
  t.after(() => { conditionAgain.close(); lockAgain.close(); });
  assert.equal(conditionAgain.lock, lockAgain);
  const exited = run('unpickled', { pickle: dumps([lock, semaphore, event]).toString('hex') });
  assert.equal(await event.waitAsync({ timeout: 10 }), true);
  assert.equal(semaphore.get_value(), 1);
  await exited;
  assert.equal(lock.acquire(true, 2), true);
  assert.equal(lock.ownerDied, true);
  lock.release();
});

test('a Lock, a Barrier and an Event handed to Process children work there', async (t) => {
  const targets = new URL('./fixtures/sync-targets.js', import.meta.url);
  const lock = anonymous(t, new Lock());
  const counter = sharedWords(t, 1);
  counter.words[0] = 1000;
  const decrementers = Array.from({ length: 10 }, () => new Process({ module: targets, target: 'decrementUnder', args: [lock, counter.name, 100] }));
  for (const p of decrementers) p.start();
  for (const p of decrementers) await p.joinAsync();
  assert.deepEqual(decrementers.map((p) => p.exitcode), Array.from({ length: 10 }, () => 0));
  assert.equal(counter.words[0], 0);
  const barrier = anonymous(t, new Barrier(3));
  const event = anonymous(t, new Event());
  const parties = Array.from({ length: 3 }, () => new Process({ module: targets, target: 'meetThenSignal', args: [barrier, event] }));
  for (const p of parties) p.start();
  assert.equal(await event.waitAsync({ timeout: 20 }), true);
  for (const p of parties) await p.joinAsync();
  assert.deepEqual(parties.map((p) => p.exitcode), [0, 0, 0]);
});

test('objects cross to other processes as a reduction naming them; anonymous ones vanish when closed', (t) => {
  const before = readdirSync('/dev/shm').filter((file) => file.includes(`pmp-${process.pid}-`)).length;
  for (let i = 0; i < 50; i++) {
    const objects = [new Lock(), new RLock(), new Semaphore(), new BoundedSemaphore(2), new Event(), new Condition(), new Barrier(2)];
    for (const object of objects) object.close();
  }
  assert.equal(readdirSync('/dev/shm').filter((file) => file.includes(`pmp-${process.pid}-`)).length, before);
  const lock = anonymous(t, new Lock());
  assert.deepEqual(lock[reduceSymbol](), ['posix_multiprocessing', 'Lock', [lock.name]]);
  const bounded = anonymous(t, new BoundedSemaphore(4));
  assert.deepEqual(bounded[reduceSymbol](), ['posix_multiprocessing', 'BoundedSemaphore', [bounded.name, 4]]);
  const condition = anonymous(t, new Condition(lock));
  assert.deepEqual(condition[reduceSymbol](), ['posix_multiprocessing', 'Condition', [lock, condition.name]]);
  // Opening by name sees the same kernel object.
  const semaphore = named(t, (name) => new Semaphore(5, { name }));
  const opened = anonymous(t, Semaphore.open(semaphore.name));
  assert.equal(opened.get_value(), 5);
  assert.throws(() => Lock.open(testName('missing')), { code: 'ENOENT' });
  assert.throws(() => new Lock({ name: 'no-slash' }), TypeError);
  const closed = new Lock();
  closed.close();
  assert.throws(() => closed.acquire(), { code: 'EBADF', message: /is closed/ });
});
