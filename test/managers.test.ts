// Manager: a server process owning shared objects; proxies in this process
// and in children (real processes), sync and async, CPython's errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client, ClientAsync, Empty, Full, Manager, Process, ProcessError, ValueError, rebuildProxy, type BarrierProxy, type BaseProxy, type ConditionProxy, type EventProxy, type QueueProxy,
} from '../lib/index.js';
import { reduceSymbol } from '../lib/reduction.js';
import { spawn } from 'node:child_process';
import { finished } from './helpers.js';

const tasks = new URL('./fixtures/manager_tasks.js', import.meta.url);
const proxyArgs = (proxy: BaseProxy) => proxy[reduceSymbol]()[2] as Parameters<typeof rebuildProxy>;

async function started(t: { after(fn: () => void): void }): Promise<Manager> {
  const manager = await Manager.start();
  t.after(() => manager.shutdown());
  return manager;
}

test('dict, list and Namespace proxies', async (t) => {
  const manager = await started(t);
  const d = manager.dict<string, number>({ a: 1 });
  d.set('b', 2);
  assert.equal(d.get('a'), 1);
  assert.equal(d.get('zz', 5), 5);
  assert.equal(d.get('zz'), null);
  assert.deepEqual(d.keys(), ['a', 'b']);
  assert.equal(d.has('b'), true);
  assert.equal(d.len(), 2);
  assert.equal(d.pop('a'), 1);
  assert.equal(d.setdefault('c', 3), 3);
  d.update({ e: 5 });
  assert.deepEqual(d.copy(), { b: 2, c: 3, e: 5 });
  assert.throws(() => d.getitem('nope'), { name: 'KeyError', message: "'nope'" });
  assert.equal(await d.getAsync('b'), 2);
  d.clear();
  assert.equal(d.len(), 0);
  const l = manager.list([1, 2]);
  l.append(3);
  l.extend([4]);
  l.insert(0, 0);
  assert.deepEqual(l.copy(), [0, 1, 2, 3, 4]);
  assert.equal(l.pop(), 4);
  assert.equal(l.index(2), 2);
  assert.equal(l.count(1), 1);
  l.remove(0);
  assert.equal(l.get(-1), 3);
  assert.throws(() => l.get(10), { name: 'IndexError' });
  assert.throws(() => l.remove(42), ValueError);
  const ns = manager.Namespace();
  ns.set('name', 'Bob');
  assert.equal(ns.get('name'), 'Bob');
  assert.equal(ns.repr(), "Namespace(name='Bob')");
  assert.throws(() => ns.get('missing'), { name: 'AttributeError' });
});

test('queue, lock, semaphore, event, value proxies', async (t) => {
  const manager = await started(t);
  const q = manager.Queue<number>(2);
  q.put(1);
  q.put_nowait(2);
  assert.throws(() => q.put(3, true, 0.05), Full);
  assert.equal(q.full(), true);
  assert.equal(q.get(), 1);
  assert.equal(q.getNowait(), 2);
  assert.throws(() => q.get(false), Empty);
  assert.throws(() => q.get(true, 0.05), Empty);
  // An async get waits on the server while another connection puts.
  const later = q.getAsync();
  const second = rebuildProxy(...proxyArgs(q)) as QueueProxy<number>;
  second.put(7);
  assert.equal(await later, 7);
  second.close();

  const lock = manager.Lock();
  assert.equal(lock.acquire(), true);
  assert.equal(lock.acquire(false), false);
  assert.equal(lock.acquire(true, 0.05), false);
  lock.release();
  assert.throws(() => lock.release(), { name: 'RuntimeError', message: 'release unlocked lock' });
  {
    using held = lock.hold();
    void held;
    assert.equal(lock.acquire(false), false);
  }
  {
    await using held = await lock.holdAsync();
    void held;
    assert.equal(await lock.acquireAsync(false), false);
  }
  assert.equal(lock.acquire(false), true);
  lock.release();
  const rlock = manager.RLock();
  assert.equal(rlock.acquire(), true);
  assert.equal(rlock.acquire(), true);
  rlock.release();
  rlock.release();
  assert.throws(() => rlock.release(), { name: 'RuntimeError', message: 'cannot release un-acquired lock' });
  const semaphore = manager.BoundedSemaphore(1);
  assert.equal(semaphore.acquire(), true);
  semaphore.release();
  assert.throws(() => semaphore.release(), new ValueError('Semaphore released too many times'));
  const event = manager.Event();
  assert.equal(event.is_set(), false);
  assert.equal(event.wait(0.05), false);
  const woken = event.waitAsync(5);
  const setter = rebuildProxy(...proxyArgs(event)) as EventProxy;
  setter.set();
  assert.equal(await woken, true);
  setter.close();
  const value = manager.Value('i', 5);
  value.value = 7;
  assert.equal(value.value, 7);
  assert.equal(await value.getAsync(), 7);
});

test('condition and barrier proxies wait on the server, not in the client', async (t) => {
  const manager = await started(t);
  const condition = manager.Condition();
  assert.throws(() => condition.wait(0), { name: 'RuntimeError', message: 'cannot wait on un-acquired lock' });
  assert.equal(condition.acquire(), true);
  const other = rebuildProxy(...proxyArgs(condition)) as ConditionProxy;
  const notified = (async () => {
    await other.acquireAsync();
    await other.notifyAsync();
    await other.releaseAsync();
  })();
  assert.equal(await condition.waitAsync(5), true);
  condition.release();
  await notified;
  other.close();
  assert.equal(condition.acquire(), true);
  assert.equal(condition.wait(0.05), false);
  condition.release();

  const barrier = manager.Barrier(2);
  assert.equal(barrier.parties(), 2);
  const peer = rebuildProxy(...proxyArgs(barrier)) as BarrierProxy;
  const indexes = await Promise.all([barrier.waitAsync(), peer.waitAsync()]);
  assert.deepEqual(indexes.sort(), [0, 1]);
  await assert.rejects(barrier.waitAsync(0.05), { name: 'BrokenBarrierError' });
  assert.equal(barrier.broken(), true);
  barrier.reset();
  assert.equal(barrier.broken(), false);
  peer.close();
});

test('register: a user type made in the server, its methods exposed', async (t) => {
  Manager.register('Counter', tasks, 'Counter');
  const manager = await started(t);
  const counter = (manager as unknown as { Counter(start: number): BaseProxy }).Counter(10);
  assert.equal(counter._callmethod('increment', [5]), 15);
  assert.equal((counter as unknown as { value(): number }).value(), 15);
  assert.equal(await (counter as unknown as { incrementAsync(n: number): Promise<number> }).incrementAsync(1), 16);
  assert.throws(() => counter._callmethod('_secret'), { name: 'RemoteError' });
  assert.throws(() => Manager.register('Counter', tasks, 'Counter'), ValueError);
});

test('the classic program: 100 processes decrement a Manager dict entry under a Manager Lock, ending at exactly 0', async () => {
  const example = new URL('../examples/manager_countdown.js', import.meta.url).pathname;
  const { code, stdout } = await finished(spawn(process.execPath, [example, '100'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  assert.equal(code, 0);
  assert.equal(stdout, '0\n');
});

test('a child sees a queue as CPython\'s TestSyncManagerTypes does', async (t) => {
  const manager = await started(t);
  const q = manager.Queue<number>(2);
  q.put(5);
  q.put(6);
  const child = new Process({ module: tasks, target: 'queueChild', args: [q] });
  child.start();
  await child.joinAsync();
  assert.equal(child.exitcode, 0);
  assert.equal(q.empty(), true);
});

test('start twice, use after shutdown', async () => {
  const manager = new Manager();
  assert.throws(() => manager.dict(), { message: 'server not yet started' });
  manager.start();
  assert.throws(() => manager.start(), new ProcessError('Already started server'));
  const d = manager.dict();
  d.set('x', 1);
  manager.shutdown();
  manager.shutdown();
  assert.throws(() => manager.dict(), new ProcessError('Manager has shut down'));
  assert.throws(() => d.get('x'), { code: /EPIPE|ECONNRESET|ECONNREFUSED|ENOENT/ });
});

test('a client with the wrong key, or one stalled in the handshake, is refused alone: the manager serves the others', async (t) => {
  const manager = await started(t);
  const d = manager.dict<string, number>();
  const stalled = ClientAsync(manager.address!, { authkey: null }); // connected, never answers the challenge
  t.after(async () => (await stalled).close());
  await stalled;
  assert.throws(() => Client(manager.address!, { authkey: Buffer.from('not the key') }), { name: 'AuthenticationError', message: 'digest sent was rejected' });
  d.set('after', 1);
  assert.equal(d.get('after'), 1);
  assert.equal(manager.dict<string, number>({ fresh: 2 }).get('fresh'), 2);
});
