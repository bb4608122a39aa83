// NamedSemaphore: the thin by-name semaphore, against the kernel, CPython
// (ctypes sem_open) and worker threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { NamedSemaphore, SEM_VALUE_MAX } from '../lib/posix.js';
import { binding } from '../lib/native.js';
import { finished, PY_SEM_CTYPES, testName } from './helpers.js';

const posixUrl = new URL('../lib/posix.js', import.meta.url).href;

function created(t: { after(fn: () => void): void }, initialValue = 0, label = 'sem'): NamedSemaphore {
  const name = testName(label);
  const sem = new NamedSemaphore(name, { create: true, exclusive: true, initialValue });
  t.after(() => {
    sem.close();
    try { NamedSemaphore.unlink(name); } catch { /* unlinked by the test */ }
  });
  return sem;
}


function threadCount(): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

test('create, open, exclusive, value, acquire with timeouts, release', (t) => {
  const sem = created(t, 2);
  assert.equal(sem.value, 2);
  const other = new NamedSemaphore(sem.name);
  t.after(() => other.close());
  assert.equal(other.acquire(), true);
  assert.equal(sem.acquire(0), true);
  assert.equal(sem.value, 0);
  assert.equal(sem.acquire(0), false);
  assert.equal(sem.acquire(-1), false);
  const start = performance.now();
  assert.equal(other.acquire(0.1), false);
  assert.ok(performance.now() - start >= 95, 'acquire(0.1) waited about 0.1 s');
  other.release();
  sem.release();
  assert.equal(sem.value, 2);
  // Creation parameters are ignored when it exists (O_CREAT without O_EXCL).
  const again = new NamedSemaphore(sem.name, { create: true, initialValue: 7 });
  t.after(() => again.close());
  assert.equal(again.value, 2);
});

test('OS errors carry code, errno, syscall and path, and say what to do', (t) => {
  const missing = testName('missing');
  assert.throws(() => new NamedSemaphore(missing), (error: NodeJS.ErrnoException) => {
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.errno, 2);
    assert.equal(error.syscall, 'sem_open');
    assert.equal(error.path, missing);
    assert.match(error.message, /create: true/);
    return true;
  });
  const sem = created(t);
  assert.throws(() => new NamedSemaphore(sem.name, { create: true, exclusive: true }),
    { code: 'EEXIST', errno: 17, syscall: 'sem_open', path: sem.name });
  assert.throws(() => NamedSemaphore.unlink(missing), { code: 'ENOENT', syscall: 'sem_unlink', path: missing });
  const closed = new NamedSemaphore(sem.name);
  closed.close();
  closed.close();
  assert.throws(() => closed.release(), { code: 'EBADF', path: sem.name, message: /is closed/ });
  assert.throws(() => closed.value, { code: 'EBADF' });
  return assert.rejects(closed.acquireAsync(), { code: 'EBADF' });
});

test('release at SEM_VALUE_MAX fails with EOVERFLOW and changes nothing', (t) => {
  const sem = created(t, SEM_VALUE_MAX);
  assert.throws(() => sem.release(), { code: 'EOVERFLOW', syscall: 'sem_post', path: sem.name, message: /maximum value/ });
  assert.equal(sem.value, SEM_VALUE_MAX);
  assert.equal(sem.acquire(0), true);
  assert.equal(sem.value, SEM_VALUE_MAX - 1);
});

test('names and options are validated before any system call', () => {
  assert.throws(() => new NamedSemaphore('nolead', { create: true }), TypeError);
  assert.throws(() => new NamedSemaphore('/a/b', { create: true }), TypeError);
  assert.throws(() => new NamedSemaphore(`/${'x'.repeat(300)}`, { create: true }), RangeError);
  assert.throws(() => new NamedSemaphore(testName(), { exclusive: true }), TypeError);
  assert.throws(() => new NamedSemaphore(testName(), { create: true, initialValue: -1 }), RangeError);
  assert.throws(() => new NamedSemaphore(testName(), { create: true, initialValue: 2 ** 31 }), RangeError);
  assert.throws(() => new NamedSemaphore(testName(), { create: true, mode: 0o10000 }), RangeError);
});

test('unlink removes the name; open handles keep working', (t) => {
  const sem = created(t, 1);
  sem.unlink();
  assert.throws(() => new NamedSemaphore(sem.name), { code: 'ENOENT' });
  assert.equal(sem.acquire(0), true);
  sem.release();
});

test('acquireAsync: at once when free, FIFO when waiting, false on timeout, AbortError on abort', async (t) => {
  const sem = created(t, 1);
  assert.equal(await sem.acquireAsync(), true);
  assert.equal(await sem.acquireAsync({ timeout: 0 }), false);
  const start = performance.now();
  assert.equal(await sem.acquireAsync({ timeout: 0.05 }), false);
  assert.ok(performance.now() - start >= 45);

  const order: number[] = [];
  const controller = new AbortController();
  const waits = [0, 1, 2, 3].map((i) => sem.acquireAsync(i === 1 ? { signal: controller.signal } : {})
    .then((ok) => { order.push(i); return ok; }));
  controller.abort(new Error('stop'));
  await assert.rejects(waits[1]!, (error: Error) => error.name === 'AbortError' && (error.cause as Error).message === 'stop');
  for (let i = 0; i < 3; i++) sem.release();
  assert.deepEqual(await Promise.all([waits[0], waits[2], waits[3]]), [true, true, true]);
  assert.deepEqual(order, [0, 2, 3]);
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(sem.acquireAsync({ signal: aborted.signal }), { name: 'AbortError' });
  assert.equal(sem.value, 0);
});

test('waiters leaving while tokens are in flight lose no token and take none twice', async (t) => {
  const sem = created(t);
  let acquired = 0;
  let released = 0;
  const waits: Promise<void>[] = [];
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 50; i++) {
      const controller = new AbortController();
      waits.push(sem.acquireAsync({ timeout: Math.random() * 0.01, signal: controller.signal })
        .then((ok) => { if (ok) acquired++; }, () => undefined));
      if (i % 7 === 0) setImmediate(() => controller.abort());
    }
    for (let i = 0; i < 10; i++, released++) sem.release();
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await Promise.all(waits);
  // A token the waiter thread took for a waiter that left is back by now.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(acquired + sem.value, released);
});

test('a semaphore released by CPython (ctypes sem_post) wakes acquireAsync', async (t) => {
  const sem = created(t);
  const waiting = sem.acquireAsync({ timeout: 10 });
  const peer = spawn('python3', ['-c', `${PY_SEM_CTYPES}\nlibc.sem_post(sem); libc.sem_close(sem)`, sem.name]);
  assert.equal((await finished(peer)).code, 0);
  assert.equal(await waiting, true);
});

test('a release from Node wakes a CPython process blocked in sem_wait', async (t) => {
  const sem = created(t);
  const peer = spawn('python3', ['-c', `${PY_SEM_CTYPES}\nprint('waiting', flush=True)\nlibc.sem_wait(sem)\nprint('acquired', flush=True)`, sem.name]);
  const result = finished(peer);
  await once(peer.stdout!, 'data');
  sem.release();
  const { code, stdout } = await result;
  assert.equal(code, 0);
  assert.equal(stdout, 'waiting\nacquired\n');
  assert.equal(sem.value, 0);
});

test('10 000 pending acquireAsync calls park no pool thread and do not delay fs.readFile', async (t) => {
  const sem = created(t);
  const threadsBefore = threadCount();
  const waits = Array.from({ length: 10_000 }, () => sem.acquireAsync());
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(threadCount() - threadsBefore <= 1, `one waiter thread for one handle, not ${threadCount() - threadsBefore}`);
  // More concurrent reads than the pool has threads: any parked pool thread would stall them.
  const start = performance.now();
  await Promise.all(Array.from({ length: 16 }, () => readFile('/proc/self/stat')));
  const elapsed = performance.now() - start;
  t.diagnostic(`16 concurrent fs.readFile with 10 000 pending acquires: ${elapsed.toFixed(2)} ms`);
  assert.ok(elapsed < 250, `fs.readFile took ${elapsed} ms`);
  let resolved = 0;
  for (const wait of waits) void wait.then(() => resolved++);
  for (let i = 0; i < 10_000; i++) sem.release();
  assert.deepEqual(new Set(await Promise.all(waits)), new Set([true]));
  assert.equal(resolved, 10_000);
  assert.equal(sem.value, 0);
});

test('many handles each with pending acquires: one thread per handle, all served', async (t) => {
  const sems = Array.from({ length: 20 }, () => created(t));
  const waits = sems.flatMap((sem) => [sem.acquireAsync(), sem.acquireAsync()]);
  for (const sem of sems) { sem.release(); sem.release(); }
  assert.equal((await Promise.all(waits)).every(Boolean), true);
});

test('a pending acquireAsync keeps the process alive; a finished one does not', async (t) => {
  const sem = created(t);
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { NamedSemaphore } from ${JSON.stringify(posixUrl)};
    const sem = new NamedSemaphore(${JSON.stringify(sem.name)});
    console.log('waiting');
    console.log(await sem.acquireAsync(), await sem.acquireAsync({ timeout: 0.05 }));
  `]);
  const result = finished(child);
  await once(child.stdout!, 'data');
  await new Promise((resolve) => setTimeout(resolve, 100));
  sem.release();
  const { code, stdout, stderr } = await result;
  assert.equal(code, 0, stderr);
  assert.equal(stdout, 'waiting\ntrue false\n');
});

test('handles dropped without close() are collected without harm', async (t) => {
  const sem = created(t, 1);
  const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', `
    import { NamedSemaphore } from ${JSON.stringify(posixUrl)};
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 1000; i++) {
        const handle = new NamedSemaphore(${JSON.stringify(sem.name)});
        if (handle.acquire(0)) handle.release();
      }
      globalThis.gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    console.log(new NamedSemaphore(${JSON.stringify(sem.name)}).value);
  `]);
  const { code, stdout, stderr } = await finished(child);
  assert.equal(code, 0, stderr);
  assert.equal(stdout, '1\n');
});

test('a Worker terminated while waiting exits cleanly and keeps no token', async (t) => {
  const sem = created(t);
  const threadsBefore = threadCount();
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(posixUrl)}).then(({ NamedSemaphore }) => {
      const sem = new NamedSemaphore(${JSON.stringify(sem.name)});
      for (let i = 0; i < 100; i++) sem.acquireAsync();
      parentPort.postMessage('waiting');
    });`, { eval: true });
  await once(worker, 'message');
  assert.equal(await worker.terminate(), 1);
  sem.release();
  // The worker's waiter thread stops within a slice and gives back what it took.
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(sem.value, 1);
  assert.ok(threadCount() <= threadsBefore, `threads left behind: ${threadCount() - threadsBefore}`);
});

test('native Semaphore survives random arguments: only thrown errors', (t) => {
  type Fuzzed = Record<string, (...args: unknown[]) => unknown>;
  const { Semaphore } = binding<{ Semaphore: (new (...args: unknown[]) => Fuzzed) & Fuzzed }>();
  const sem = created(t, 1);
  // No string but the test's own name: 'x' would be a valid name to glibc.
  const values = [undefined, null, -1, 0, 1.5, NaN, 2 ** 40, '/', sem.name, {}, [], () => 1, Buffer.alloc(1), true, 10n];
  const pick = () => values[Math.floor(Math.random() * values.length)];
  let thrown = 0;
  for (let i = 0; i < 500; i++) {
    try { new Semaphore(pick(), pick(), pick(), pick(), pick()).close(); } catch { thrown++; }
  }
  const handle = new Semaphore(sem.name, false, false, 0o600, 0);
  for (let i = 0; i < 100; i++) handle.post!(); // so that no wait() blocks
  for (const method of ['tryWait', 'wait', 'post', 'getValue', 'cancel', 'request', 'words', 'wakeOne']) {
    for (let i = 0; i < 50; i++) {
      try { handle[method]!(pick(), pick()); } catch { thrown++; }
    }
  }
  handle.close();
  for (let i = 0; i < 50; i++) {
    try { Semaphore.unlink(typeof pick() === 'string' ? testName('none') : pick()); } catch { thrown++; }
  }
  assert.ok(thrown > 0);
});
