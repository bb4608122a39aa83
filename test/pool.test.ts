// Pool with real worker processes: results, errors with their remote stack,
// dying and killed workers, terminate, maxtasksperchild, the async forms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  AsyncResult, MaybeEncodingError, PicklingError, Pool, ProcessError, RemoteTraceback, TimeoutError, ValueError, active_children,
} from '../lib/index.js';
import { finished } from './helpers.js';

const tasks = new URL('./fixtures/pool_tasks.js', import.meta.url);

function pool(t: { after(fn: () => void): void }, processes: number, options: object = {}): Pool {
  const p = new Pool(processes, { module: tasks, ...options });
  t.after(() => {
    p.terminate();
    p.join();
  });
  return p;
}

test('the classic program: Pool(5), 20 apply_async, close, join', async () => {
  const example = new URL('../examples/pool.js', import.meta.url).pathname;
  const { code, stdout } = await finished(spawn(process.execPath, [example, '0.05'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  assert.equal(code, 0);
  const lines = stdout.trim().split('\n');
  assert.match(lines[0], /^Parent process \d+\.$/);
  assert.equal(lines.at(-1), 'All subprocesses done.');
  const ran = lines.filter((line) => /^Task \d+ runs \d\.\d\d seconds\.$/.test(line));
  assert.equal(ran.length, 20);
  const pids = new Set(lines.filter((line) => line.startsWith('Run task')).map((line) => /\((\d+)\)/.exec(line)?.[1]));
  assert.ok(pids.size >= 2 && pids.size <= 5, `tasks ran in ${pids.size} processes`);
});

test('apply, map, starmap, imap: values in order', async (t) => {
  const p = pool(t, 2);
  assert.equal(p.apply('square', [7]), 49);
  const { square } = await import(tasks.href);
  assert.equal(p.apply(square, [8]), 64);
  assert.equal(p.apply('withKeywords', [3], { b: 5 }), 15);
  const inputs = [...Array(10_000).keys()];
  assert.deepEqual(p.map(square, inputs), inputs.map((x) => x * x));
  assert.deepEqual(p.map(square, inputs, 1).slice(-3), [9997 ** 2, 9998 ** 2, 9999 ** 2]);
  assert.deepEqual(p.map(square, []), []);
  assert.deepEqual(p.starmap<number>('add', [[1, 2], [3, 4]]), [3, 7]);
  assert.deepEqual(p.map('later', [1, 2, 3]), [1, 2, 3], 'async task functions are awaited');
  const numbers = [-0, NaN, 1.5, 2 ** 60, -(2 ** 31) - 1, Infinity, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE];
  assert.deepEqual(p.map('later', numbers, 4), numbers, 'numbers come back the same numbers (-0, NaN, beyond 2^53)');
  assert.deepEqual(p.map('later', [1, 'two', [3], null], 2), [1, 'two', [3], null]);
  assert.deepEqual([...p.imap(square, inputs.slice(0, 50))], inputs.slice(0, 50).map((x) => x * x));
  assert.deepEqual([...p.imap(square, inputs.slice(0, 50), 7)], inputs.slice(0, 50).map((x) => x * x));
  assert.deepEqual([...p.imap_unordered<number, number>(square, inputs.slice(0, 50), 3)].sort((a, b) => a - b), inputs.slice(0, 50).map((x) => x * x));
  function* generate() {
    for (let i = 0; i < 5; i++) yield i;
  }
  assert.deepEqual([...p.imap(square, generate())], [0, 1, 4, 9, 16]);
  const it = p.imap(square, [1]);
  assert.deepEqual(it.next(), { done: false, value: 1 });
  assert.deepEqual(it.next(), { done: true, value: undefined });
});

test('tasks and results larger than the channel buffers cross whole, in order; a callback may use the pool again', (t) => {
  const p = pool(t, 2);
  const text = 'x'.repeat(5 << 20) + 'é';  // past the 4 MiB a channel keeps
  assert.equal(p.apply('echo', [text]), text);
  const numbers = Array.from({ length: 700_000 }, (_, i) => i / 7);  // chunks of 5.6 MB of float64s
  const squares = p.map<number, number>('square', numbers, 350_000);
  assert.equal(squares.length, numbers.length);
  assert.ok(squares.every((value, i) => value === numbers[i] * numbers[i]));
  const words = Array.from({ length: 3000 }, (_, i) => `word ${i} `.repeat(10));  // pickled chunks of ~100 KB
  assert.deepEqual(p.map('echo', words, 1000), words);
  assert.deepEqual(p.map('echo', [1, 2, 'three', 4.5, -0], 5), [1, 2, 'three', 4.5, -0]);
  let inner: unknown = null;
  const outer = p.map_async('square', [1, 2, 3], 1, { callback: () => { inner = p.map('square', [4, 5]); } });
  assert.deepEqual(outer.get(), [1, 4, 9]);
  assert.deepEqual(inner, [16, 25]);
});

test('a task that throws: get() re-throws its type, message and remote stack', (t) => {
  const p = pool(t, 2);
  const result = p.apply_async('fail', ['it went wrong']);
  assert.throws(() => result.get(), (error: Error) => {
    assert.ok(error instanceof RangeError);
    assert.equal(error.message, 'it went wrong');
    assert.ok(error.cause instanceof RemoteTraceback);
    assert.match(error.cause.tb, /^RangeError: it went wrong\n\s+at fail \(.*pool_tasks\.js/);
    return true;
  });
  assert.equal(result.ready(), true);
  assert.equal(result.successful(), false);
  assert.throws(() => p.map('failOn', [1, 2, 3, 4], 1), { name: 'TypeError', message: 'no 3' });
  assert.throws(() => p.apply('throwString'), (thrown: unknown) => thrown === 'a string');
  assert.throws(() => p.apply('noSuchTask'), { name: 'TypeError', message: /has no exported function 'noSuchTask'/ });
  assert.throws(() => p.apply('unpicklable'), (error: Error) => {
    assert.ok(error instanceof MaybeEncodingError);
    assert.match(error.message, /^Error sending result: '.*'\. Reason: '/);
    return true;
  });
  assert.throws(() => p.apply('square', [() => 1]), PicklingError);
  assert.equal(p.apply('square', [3]), 9, 'the pool still works');
});

test('callbacks, error callbacks, ready, successful, timeouts', (t) => {
  const p = pool(t, 2);
  const seen: unknown[] = [];
  const mapped = p.map_async('square', [1, 2, 3], null, { callback: (value) => seen.push(value) });
  const failed = p.map_async('failOn', [3], null, { error_callback: (error) => seen.push((error as Error).message) });
  mapped.wait();
  failed.wait();
  assert.deepEqual(seen.sort(), [[1, 4, 9], 'no 3'].sort());
  const slow = p.apply_async('later', ['done', 0.3]);
  assert.equal(slow.ready(), false);
  assert.throws(() => slow.successful(), ValueError);
  assert.throws(() => slow.get(0.05), TimeoutError);
  assert.throws(() => slow.get(0), TimeoutError);
  slow.wait(0.01);
  assert.equal(slow.get(), 'done');
  assert.equal(slow.successful(), true);
  const it = p.imap('sleepy', [0.2], 1);
  assert.throws(() => it.next(0.01), TimeoutError);
  assert.deepEqual(it.next(), { done: false, value: 0.2 });
});

test('the async forms never block the event loop', async (t) => {
  const p = pool(t, 2);
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 1);
  t.after(() => clearInterval(ticker));
  assert.equal(await p.apply_async('later', ['x', 0.2]), 'x');
  assert.ok(ticks > 5, `only ${ticks} ticks while waiting`);
  assert.deepEqual(await p.mapAsync('square', [1, 2]), [1, 4]);
  assert.deepEqual(await p.starmapAsync('add', [[1, 1]]), [2]);
  await assert.rejects(p.applyAsync('fail', ['async']).getAsync(), { name: 'RangeError', message: 'async' });
  const out: number[] = [];
  for await (const value of p.imapUnordered('square', [1, 2, 3])) out.push(value as number);
  assert.deepEqual(out.sort(), [1, 4, 9]);
  // Last: these leave tasks running, which the pool's terminate ends.
  await assert.rejects(p.apply_async('sleepy', [5]).getAsync(0.05), TimeoutError);
  const controller = new AbortController();
  const waiting = p.apply_async('sleepy', [5]).getAsync({ signal: controller.signal });
  controller.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
});

test('imap over an async iterable (a generator, a stream) is read ahead and iterated with for await', async (t) => {
  const p = pool(t, 2);
  async function* numbers(n: number, failAt = -1) {
    for (let i = 0; i < n; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (i === failAt) throw new RangeError(`input failed at ${i}`);
      yield i;
    }
  }
  const out: unknown[] = [];
  for await (const value of p.imap('square', numbers(30), 4)) out.push(value);
  assert.deepEqual(out, [...Array(30).keys()].map((x) => x * x));
  const stream = Readable.from([1, 2, 3, 4, 5]);
  const unordered: number[] = [];
  for await (const value of p.imap_unordered<number, number>('square', stream)) unordered.push(value);
  assert.deepEqual(unordered.sort((a, b) => a - b), [1, 4, 9, 16, 25]);
  const seen: unknown[] = [];
  await assert.rejects(async () => {
    for await (const value of p.imap('square', numbers(10, 7))) seen.push(value);
  }, { name: 'RangeError', message: 'input failed at 7' });
  assert.deepEqual(seen, [0, 1, 4, 9, 16, 25, 36]);
  const blocking = p.imap('square', numbers(3));
  assert.throws(() => blocking.next(), TypeError);
  for await (const value of blocking) void value;
});

test('a worker killed mid-task: that task fails, the pool is whole again and keeps working', async (t) => {
  const p = pool(t, 2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmp-pool-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pid');
  const victim = p.apply_async('reportAndSleep', [file, 30]);
  const others = p.map_async('later', [1, 2, 3, 4], 1);
  while (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') === '') await new Promise((resolve) => setTimeout(resolve, 10));
  process.kill(Number(fs.readFileSync(file, 'utf8')), 'SIGKILL');
  await assert.rejects(victim.getAsync(), (error: Error) => {
    assert.ok(error instanceof ProcessError);
    assert.match(error.message, /died while running this task \(exitcode -9\)/);
    return true;
  });
  assert.deepEqual(await others, [1, 2, 3, 4]);
  assert.equal(p.apply('square', [4]), 16);
  const pids = new Set(p.map('pid', [...Array(40).keys()], 1));
  assert.ok(pids.size >= 1 && pids.size <= 2);
  assert.throws(() => p.apply('exitNow', [3]), /died while running this task \(exitcode 3\)/);
  assert.equal(p.apply('square', [5]), 25);
});

test('a worker killed while idle is replaced without failing a task', async (t) => {
  const p = pool(t, 1);
  const pid = p.apply<number>('pid');
  process.kill(pid, 'SIGKILL');
  // Reaped (not merely a zombie leader whose other threads still hold its descriptors).
  while (fs.existsSync(`/proc/${pid}`)) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(p.apply('square', [3]), 9);
  assert.notEqual(p.apply('pid'), pid);
});

test('terminate while tasks run: returns at once, the workers are gone, the tasks fail', async (t) => {
  const p = new Pool(2, { module: tasks });
  const results = [...Array(6).keys()].map(() => p.apply_async('sleepy', [30]));
  const it = p.imap('sleepy', [30, 30]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const workers = active_children().filter((child) => child.name.startsWith('PoolWorker'));
  assert.equal(workers.length, 2);
  const start = performance.now();
  p.terminate();
  p.terminate();
  p.join();
  assert.ok(performance.now() - start < 2000);
  assert.ok(workers.every((worker) => { try { return !worker.is_alive(); } catch { return true; } }));
  for (const result of results) assert.throws(() => result.get(), (error: Error) => error instanceof ProcessError && /terminated/.test(error.message));
  assert.throws(() => it.next(), /terminated/);
  assert.deepEqual(it.next(), { done: true, value: undefined });
  assert.throws(() => p.apply_async('square', [1]), new ValueError('Pool not running'));
  t.after(() => {});
});

test('maxtasksperchild=1: a fresh worker per task, and close/join do not hang', (t) => {
  const p = pool(t, 2, { maxtasksperchild: 1 });
  const pids = p.map('pid', [...Array(6).keys()], 1);
  assert.equal(new Set(pids).size, 6);
  const names = [...Array(3).keys()].map(() => p.apply<string>("whoami"));
  assert.ok(names.every((name) => /^PoolWorker-\d+$/.test(name)));
  p.close();
  p.join();
});

test('initializer and initargs run in every worker; a failing initializer fails the tasks', (t) => {
  const p = pool(t, 2, { initializer: 'initialize', initargs: [{ ready: true }] });
  assert.deepEqual(p.map('initialized', [1, 2, 3, 4], 1), [1, 2, 3, 4].map(() => ({ ready: true })));
  const broken = pool(t, 2, { initializer: 'failToInitialize' });
  assert.throws(() => broken.apply('square', [1]), { name: 'Error', message: 'cannot initialize' });
  assert.throws(() => broken.map('square', [1, 2]), { message: 'cannot initialize' });
  const unloadable = new Pool(1, { module: new URL('./fixtures/broken_module.js', import.meta.url) });
  t.after(() => { unloadable.terminate(); unloadable.join(); });
  assert.throws(() => unloadable.apply('never'), { message: 'this module cannot load' });
});

test("CPython's errors for misuse", (t) => {
  assert.throws(() => new Pool(0, { module: tasks }), new ValueError('Number of processes must be at least 1'));
  assert.throws(() => new Pool(-1, { module: tasks }), ValueError);
  for (const bad of [0, -1, 0.5, '12']) {
    assert.throws(() => new Pool(1, { module: tasks, maxtasksperchild: bad as number }), new ValueError('maxtasksperchild must be a positive int or None'));
  }
  assert.throws(() => new Pool(1, { module: tasks, initializer: 3 as unknown as string }), new TypeError('initializer must be a callable'));
  const p = pool(t, 1);
  assert.throws(() => p.join(), new ValueError('Pool is still running'));
  assert.throws(() => p.imap('square', [1], 0), new ValueError('Chunksize must be 1+, not 0'));
  assert.throws(() => p.map('square', [1], 0), new ValueError('Chunksize must be 1+, not 0'));
  const noModule = new Pool(1);
  t.after(() => { noModule.terminate(); noModule.join(); });
  assert.throws(() => noModule.apply('square', [1]), TypeError);
  p.close();
  p.close();
  assert.throws(() => p.map('square', [1]), new ValueError('Pool not running'));
  assert.throws(() => p.apply('square', [1]), new ValueError('Pool not running'));
  p.join();
});

test('await using terminates the pool; a result is a thenable', async () => {
  let result: AsyncResult<unknown>;
  {
    await using p = new Pool(1, { module: tasks });
    result = p.apply_async('square', [6]);
    assert.equal(await result, 36);
  }
  assert.equal(result.get(), 36);
  assert.equal(active_children().filter((child) => child.name.startsWith('PoolWorker')).length, 0);
});
