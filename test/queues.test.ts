// Queue, SimpleQueue, JoinableQueue: Python's semantics, with real processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Empty, Full, JoinableQueue, Queue, SimpleQueue, ValueError } from '../lib/index.js';
import { MessageQueue } from '../lib/posix.js';
import { finished, python, testName } from './helpers.js';
import { digest, producedObjects } from './fixtures/queue-objects.js';

const peer = fileURLToPath(new URL('./fixtures/queue-peer.js', import.meta.url));
const codec = 'v8';

function run(...args: string[]) {
  const child = spawn(process.execPath, [peer, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return { child, result: finished(child).then((r) => ({ ...r, json: r.stdout.trim() ? JSON.parse(r.stdout.trim().split('\n').at(-1)!) : undefined })) };
}

/** A named queue for a test, removed after it whatever happens. */
function namedQueue<Q extends Queue<unknown>>(t: { after(fn: () => void): void }, make: (name: string) => Q): Q {
  const name = testName('queue');
  const queue = make(name);
  t.after(() => {
    queue.close();
    try { Queue.unlink(name); } catch { /* unlinked by the test */ }
  });
  return queue;
}

const anonymous = <Q extends Queue<unknown>>(t: { after(fn: () => void): void }, queue: Q): Q => {
  t.after(() => queue.close());
  return queue;
};

test('put, get, qsize, empty and full as in Python', (t) => {
  const queue = anonymous(t, new Queue<number>(0, { codec }));
  assert.equal(queue.qsize(), 0);
  assert.equal(queue.empty(), true);
  queue.put(1);
  assert.equal(queue.qsize(), 1);
  queue.put(2);
  assert.equal(queue.qsize(), 2);
  assert.equal(queue.get(), 1);
  assert.equal(queue.qsize(), 1);
  assert.equal(queue.get(), 2);
  assert.equal(queue.qsize(), 0);
  assert.equal(queue.full(), false);
  assert.throws(() => queue.get_nowait(), Empty);
  assert.throws(() => queue.get(false), Empty);
  const started = performance.now();
  assert.throws(() => queue.get(true, 0.2), Empty);
  assert.ok(performance.now() - started >= 190);
  assert.equal(queue.putNowait, queue.put_nowait);
  assert.equal(queue.getNowait, queue.get_nowait);
  assert.equal(queue.joinThread, queue.join_thread);
  assert.equal(queue.cancelJoinThread, queue.cancel_join_thread);
});

test('an unbounded queue takes far more than the kernel queue holds, without blocking', (t) => {
  const queue = anonymous(t, new Queue<number>(-5, { codec }));
  for (let i = 0; i < 5000; i++) queue.put(i);
  assert.equal(queue.qsize(), 5000);
  for (let i = 0; i < 5000; i++) assert.equal(queue.get(), i);
  assert.equal(queue.empty(), true);
});

test('a bounded queue: Full without waiting, after the timeout, and room again after a get', (t) => {
  const queue = anonymous(t, new Queue<number>(3, { codec }));
  queue.put(1);
  queue.put(2, true);
  queue.put(3, true, 1);
  assert.equal(queue.full(), true);
  assert.equal(queue.qsize(), 3);
  assert.throws(() => queue.put_nowait(4), Full);
  assert.throws(() => queue.put(4, false), Full);
  const started = performance.now();
  assert.throws(() => queue.put(4, true, 0.1), Full);
  assert.ok(performance.now() - started >= 90);
  assert.equal(queue.get(), 1);
  assert.equal(queue.full(), false);
  queue.put(4);
  assert.deepEqual([queue.get(), queue.get(), queue.get()], [2, 3, 4]);
});

test('after close, put and get throw ValueError (SimpleQueue: OSError); join_thread needs close; close is idempotent', (t) => {
  for (const queue of [new Queue(0, { codec }), new JoinableQueue(0, { codec }), new SimpleQueue({ codec })]) {
    t.after(() => queue.close());
    assert.throws(() => queue.join_thread(), { name: 'AssertionError', message: new RegExp(`Queue <${queue.constructor.name} '/pmp-\\d+-\\w+'> not closed`) });
    queue.close();
    queue.close();
    if (queue instanceof SimpleQueue) {
      for (const call of [() => queue.put(1), () => queue.get(), () => queue.empty()]) assert.throws(call, { name: 'OSError', message: 'handle is closed' });
    } else {
      assert.throws(() => queue.put(1), (error: Error) => error instanceof ValueError && /^Queue <.*> is closed$/.test(error.message));
      assert.throws(() => queue.get(), ValueError);
    }
    queue.join_thread();
  }
});

test('JoinableQueue: task_done more times than put throws ValueError; join returns when all are done', async (t) => {
  const queue = anonymous(t, new JoinableQueue<string>(0, { codec }));
  assert.throws(() => queue.task_done(), { name: 'ValueError', message: 'task_done() called too many times' });
  queue.put('a');
  queue.put('b');
  assert.equal(await queue.joinAsync({ timeout: 0.05 }), false);
  queue.get();
  queue.task_done();
  queue.get();
  queue.taskDone();
  queue.join();
  assert.equal(await queue.joinAsync(), true);
  assert.throws(() => queue.task_done(), ValueError);
});

test('SimpleQueue: put is visible to empty() at once', (t) => {
  const queue = anonymous(t, new SimpleQueue<boolean>({ codec }));
  assert.equal(queue.empty(), true);
  queue.put(true);
  assert.equal(queue.empty(), false);
  queue.put(false);
  assert.equal(queue.get(), true);
  assert.equal(queue.get(), false);
  assert.equal(queue.empty(), true);
});

test('codecs: json, v8, raw and a custom one, objects of 0 B to several MB', (t) => {
  const json = anonymous(t, new Queue(0, { codec: 'json' }));
  json.put({ a: [1, 'two', null] });
  assert.deepEqual(json.get(), { a: [1, 'two', null] });
  assert.throws(() => json.put(undefined), TypeError);

  const v8 = anonymous(t, new Queue<unknown>(0, { codec: 'v8' }));
  const values = [new Map([[1, 2]]), 10n, Buffer.alloc(0), Buffer.alloc(8191, 1), Buffer.alloc(8192, 2), Buffer.alloc(3_000_000, 3), ''];
  for (const value of values) v8.put(value);
  for (const value of values) assert.deepEqual(v8.get(), value);

  const raw = anonymous(t, new Queue<Buffer>(0, { codec: 'raw' }));
  raw.put(Buffer.from([1, 2, 3]));
  raw.put(Buffer.alloc(0));
  assert.deepEqual(raw.get(), Buffer.from([1, 2, 3]));
  assert.deepEqual(raw.get(), Buffer.alloc(0));
  assert.throws(() => raw.put(Buffer.alloc(8193)), /does not fit the queue's 8192-byte messages/);
  assert.throws(() => raw.put('text' as unknown as Buffer), TypeError);

  // A custom encoding starting with a frame byte still comes back as it was.
  const custom = anonymous(t, new Queue<number[]>(0, { codec: { encode: (obj: unknown) => Uint8Array.from(obj as number[]), decode: (bytes: Buffer) => [...bytes] } }));
  for (const value of [[0, 1], [1, 2], [2], [], [200, 1]]) custom.put(value);
  for (const value of [[0, 1], [1, 2], [2], [], [200, 1]]) assert.deepEqual(custom.get(), value);
});

test('a large object goes through shared memory, and its segment is removed once received', (t) => {
  const queue = anonymous(t, new Queue<Buffer>(0, { codec }));
  const before = new Set(readdirSync('/dev/shm'));
  queue.put(Buffer.alloc(1_000_000, 9));
  const created = readdirSync('/dev/shm').filter((file) => !before.has(file) && file.startsWith(`pmp-${process.pid}-`));
  assert.equal(created.length, 1);
  const received = queue.get();
  assert.equal(received.length, 1_000_000);
  assert.equal(received[999_999], 9);
  assert.equal(existsSync(`/dev/shm/${created[0]}`), false);
});

test('a hand-off frame whose segment is gone fails with ENOENT and says why', (t) => {
  const queue = namedQueue(t, (name) => new Queue<Buffer>(0, { name, codec }));
  const sender = new MessageQueue(queue.name);
  t.after(() => sender.close());
  const segment = testName('gone');
  const frame = Buffer.alloc(9 + Buffer.byteLength(segment));
  frame[0] = 0x02;
  frame.writeBigUInt64LE(100_000n, 1);
  frame.write(segment, 9);
  sender.send(frame);
  assert.throws(() => queue.get(true, 5), { code: 'ENOENT', message: /holding a large object is gone/ });
});

test('getAsync, putAsync and for await', async (t) => {
  const queue = anonymous(t, new Queue<number>(1, { codec }));
  const pending = queue.getAsync({ timeout: 5 });
  await queue.putAsync(1);
  assert.equal(await pending, 1);
  await assert.rejects(queue.getAsync({ timeout: 0.05 }), Empty);
  await queue.putAsync(2);
  await assert.rejects(queue.putAsync(3, { timeout: 0.05 }), Full);
  const seen: number[] = [];
  setTimeout(() => { queue.put(3, true, 1); setTimeout(() => queue.close(), 20); }, 20);
  for await (const item of queue) seen.push(item);
  assert.deepEqual(seen, [2, 3]);
});

/** The shared memory segments process `pid` created (hand-offs are named /pmp-PID-...). */
function segmentsOf(pid: number): string[] {
  return readdirSync('/dev/shm').filter((file) => file.startsWith(`pmp-${pid}-`));
}

test('an anonymous queue closed by its creator leaves no kernel object behind', () => {
  for (let i = 0; i < 30; i++) {
    const queue = new JoinableQueue<number>(2, { codec });
    queue.put(i);
    assert.equal(queue.get(), i);
    queue.task_done();
    queue.put(i);
    queue.put(Buffer.alloc(100_000, i) as unknown as number); // a large object left in it: its segment goes too
    queue.close();
    assert.throws(() => new MessageQueue(queue.name), { code: 'ENOENT' });
    assert.deepEqual(segmentsOf(process.pid), []);
    assert.equal(existsSync(`/dev/shm/sem${queue.name.replace('/', '.')}.items`), false);
  }
});

test('the feeder keeps sending while the producer is blocked in a synchronous get()', async (t) => {
  const jobs = namedQueue(t, (name) => new Queue(0, { name, codec }));
  const replies = namedQueue(t, (name) => new Queue(0, { name, codec }));
  const producer = run('produce-then-wait', jobs.name, replies.name, '1000');
  const consumer = run('consume-and-reply', jobs.name, replies.name, '1000');
  const [produced, consumed] = await Promise.all([producer.result, consumer.result]);
  assert.equal(consumed.code, 0, consumed.stderr);
  assert.equal(produced.code, 0, produced.stderr);
  assert.deepEqual(produced.json, { put: 1000, reply: 1000 });
});

for (const how of ['exit', 'natural'] as const) {
  test(`a producer that ends (${how === 'exit' ? 'process.exit()' : 'the event loop ends'}) first flushes what it put`, async (t) => {
    const jobs = namedQueue(t, (name) => new Queue<Buffer>(0, { name, codec }));
    const producer = run('put-then-exit', jobs.name, '200', how);
    let exited = false;
    void producer.result.then(() => { exited = true; });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(exited, false, 'the producer exited with 190 objects not yet in the kernel queue');
    for (let i = 0; i < 200; i++) assert.equal((await jobs.getAsync({ timeout: 10 }))[0], i % 256);
    const { code, stderr } = await producer.result;
    assert.equal(code, 0, stderr);
  });
}

test('after cancel_join_thread() a producer exits without flushing', async (t) => {
  const jobs = namedQueue(t, (name) => new Queue<Buffer>(0, { name, codec }));
  const { code, stderr } = await run('put-then-exit', jobs.name, '200', 'cancel').result;
  assert.equal(code, 0, stderr);
  let received = 0;
  while (received < 200) {
    try {
      jobs.get_nowait();
      received++;
    } catch {
      break;
    }
  }
  assert.ok(received < 200, `received ${received}`);
});

test('JoinableQueue across processes: join() returns when the workers have done every task', async (t) => {
  const jobs = namedQueue(t, (name) => new JoinableQueue<number | null>(0, { name, codec }));
  const workers = Array.from({ length: 4 }, () => run('joinable-worker', jobs.name, '5'));
  for (let i = 0; i < 40; i++) jobs.put(i);
  await jobs.joinAsync({ timeout: 20 });
  assert.equal(jobs.qsize(), 0);
  for (let i = 0; i < 4; i++) jobs.put(null);
  jobs.join();
  const results = await Promise.all(workers.map((w) => w.result));
  for (const { code, stderr } of results) assert.equal(code, 0, stderr);
  assert.equal(results.reduce((sum, r) => sum + r.json.count, 0), 40);
});

async function stopConsumers(queue: Queue<unknown>, consumers: number): Promise<void> {
  // One sentinel at a time, each taken before the next, so no batch carries two.
  for (let i = 0; i < consumers; i++) {
    while (queue.qsize() > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    queue.put(null);
  }
}

test('a synchronous get waits (its timeout, or without one) also after a getAsync waited on the event loop', async (t) => {
  const queue = namedQueue(t, (name) => new Queue<number>(0, { name, codec }));
  await assert.rejects(queue.getAsync({ timeout: 0.02 }), Empty);
  const start = performance.now();
  assert.throws(() => queue.get(true, 0.1), Empty);
  assert.ok(performance.now() - start >= 95, `waited ${performance.now() - start} ms`);
  const code = `import(${JSON.stringify(new URL('../lib/queues.js', import.meta.url).href)}).then(({ Queue }) => setTimeout(() => {
    const queue = Queue.open(${JSON.stringify(queue.name)}, { codec: ${JSON.stringify(codec)} });
    queue.put(7);
    queue.close();
  }, 200));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: 'inherit' });
  assert.equal(queue.get(), 7);
  assert.equal((await finished(child)).code, 0);
});

test('a burst of puts shares kernel messages: the first goes at once, the next ones 8 to a message', async (t) => {
  const jobs = namedQueue(t, (name) => new Queue<number>(0, { name, codec, batch: true }));
  using kernel = new MessageQueue(jobs.name);
  for (let i = 0; i < 17; i++) jobs.put(i);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(kernel.currentMessages, 3);
  assert.equal(jobs.qsize(), 17);
  for (let i = 0; i < 17; i++) assert.equal(jobs.get(true, 1), i);
});

test('objects held for a burst still reach the kernel while the thread is blocked outside the queue', (t) => {
  const jobs = namedQueue(t, (name) => new Queue<number>(0, { name, codec, batch: true }));
  using kernel = new MessageQueue(jobs.name);
  for (let i = 0; i < 3; i++) jobs.put(i);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  assert.equal(kernel.currentMessages, 2, 'the first object alone, then the two held ones in one batch');
  for (let i = 0; i < 3; i++) assert.equal(jobs.get(true, 1), i);
});

test('batching stays fair: 4 consumers of 400 tasks of 10 ms each do 60 to 140', async (t) => {
  const jobs = namedQueue(t, (name) => new Queue<Buffer | null>(0, { name, codec, batch: true }));
  const consumers = Array.from({ length: 4 }, () => run('consume', jobs.name, '10'));
  for (let i = 0; i < 400; i++) jobs.put(Buffer.from([i % 256]));
  await stopConsumers(jobs, 4);
  const results = await Promise.all(consumers.map((c) => c.result));
  for (const { code, stderr } of results) assert.equal(code, 0, stderr);
  const counts = results.map((r) => r.json.count as number);
  assert.equal(counts.reduce((a, b) => a + b), 400);
  for (const count of counts) assert.ok(count >= 60 && count <= 140, `counts ${counts}`);
});

test('2 producers, 2 consumers, objects of 0 B to 300 KiB: each arrives once, intact', async (t) => {
  const jobs = namedQueue(t, (name) => new Queue<Buffer | null>(0, { name, codec, batch: true }));
  const consumers = Array.from({ length: 2 }, () => run('consume', jobs.name, '0'));
  const producers = [1, 2].map((seed) => run('produce', jobs.name, String(seed), '150', String(300 * 1024)));
  const produced = await Promise.all(producers.map((p) => p.result));
  for (const { code, stderr } of produced) assert.equal(code, 0, stderr);
  await stopConsumers(jobs, 2);
  const consumed = await Promise.all(consumers.map((c) => c.result));
  for (const { code, stderr } of consumed) assert.equal(code, 0, stderr);
  const sent = produced.flatMap((r) => r.json.digests as string[]).sort();
  const received = consumed.flatMap((r) => r.json.digests as string[]).sort();
  assert.equal(received.length, 300);
  assert.deepEqual(received, sent);
});

test('the kernel objects of an anonymous queue disappear within a second of its creator being SIGKILLed', async () => {
  const code = `import(${JSON.stringify(new URL('../lib/queues.js', import.meta.url).href)}).then(({ JoinableQueue }) => {
    const queue = new JoinableQueue(0, { codec: 'json' });
    queue.put('held');
    queue.put('x'.repeat(100000));
    console.log(queue.name);
    setInterval(() => {}, 1000);
  });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const name = await new Promise<string>((resolve) => child.stdout.once('data', (chunk) => resolve(String(chunk).trim())));
  const semaphores = ['items', 'unfinished'].map((suffix) => `/dev/shm/sem.${name.slice(1)}.${suffix}`);
  assert.ok(semaphores.every((file) => existsSync(file)));
  assert.equal(segmentsOf(child.pid!).length, 1, 'the large object waits in a shared memory segment');
  child.kill('SIGKILL');
  await finished(child);
  const deadline = Date.now() + 1000;
  let gone = false;
  while (!gone && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    try {
      new MessageQueue(name).close();
    } catch (error) {
      gone = (error as NodeJS.ErrnoException).code === 'ENOENT' && semaphores.every((file) => !existsSync(file));
    }
  }
  assert.ok(gone, `${name} or its semaphores still exist a second after its creator was killed`);
  assert.deepEqual(segmentsOf(child.pid!), [], 'the segment of the large object left in the queue went with it');
});

test("the 'raw' codec talks to a foreign process: one kernel message per Buffer, no framing", (t) => {
  const queue = namedQueue(t, (name) => new Queue<Buffer>(0, { name, codec: 'raw' }));
  queue.put(Buffer.from([1, 0, 2]));
  // The feeder hands it to the kernel in a moment.
  const kernel = new MessageQueue(queue.name);
  t.after(() => kernel.close());
  while (kernel.currentMessages === 0) { /* a few microseconds */ }
  const echoed = python(`
import ctypes, os
rt = ctypes.CDLL('librt.so.1', use_errno=True)
rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
rt.mq_receive.restype = ctypes.c_ssize_t
rt.mq_receive.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
rt.mq_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
mqd = rt.mq_open(${JSON.stringify(queue.name)}.encode(), os.O_RDWR)
buffer = ctypes.create_string_buffer(8192)
length = rt.mq_receive(mqd, buffer, 8192, None)
print(buffer.raw[:length].hex())
rt.mq_send(mqd, b'\\x00from python', 12, 0)
`);
  assert.equal(echoed.trim(), '010002');
  assert.deepEqual(queue.get(true, 5), Buffer.from('\0from python'));
});

/** The digests of what `produce <seed>` puts, in order. */
const producedDigests = (...args: Parameters<typeof producedObjects>): string[] => Array.from(producedObjects(...args), digest);

test('4 producers, 4 consumers, 250 000 objects of 0 B to 4 MiB: each arrives once, intact', async (t) => {
  const jobs = namedQueue(t, (name) => new Queue<Buffer | null>(0, { name, codec, batch: true }));
  const consumers = Array.from({ length: 4 }, () => run('consume', jobs.name, '0'));
  const producers = [1, 2, 3, 4].map((seed) => run('produce', jobs.name, String(seed), '62500', String(4 << 20), 'mixed'));
  const produced = await Promise.all(producers.map((p) => p.result));
  for (const { code, stderr } of produced) assert.equal(code, 0, stderr);
  await stopConsumers(jobs, 4);
  const consumed = await Promise.all(consumers.map((c) => c.result));
  for (const { code, stderr } of consumed) assert.equal(code, 0, stderr);
  const sent = produced.flatMap((r) => r.json.digests as string[]).sort();
  assert.equal(sent.length, 250_000);
  assert.deepEqual(consumed.flatMap((r) => r.json.digests as string[]).sort(), sent);
  assert.deepEqual(sent, [1, 2, 3, 4].flatMap((seed) => producedDigests(seed, 62500, 4 << 20, 'mixed')).sort());
});

test('a producer SIGKILLed mid-stream: consumers get only whole objects, each once, and go on', async (t) => {
  const jobs = namedQueue(t, (name) => new Queue<Buffer>(0, { name, codec, batch: true }));
  const producer = run('produce', jobs.name, '7', '20000', String(32 * 1024), '3');
  while (jobs.qsize() < 50) await new Promise((resolve) => setTimeout(resolve, 5));
  const consumers = Array.from({ length: 2 }, () => run('drain', jobs.name, '1'));
  await new Promise((resolve) => setTimeout(resolve, 300));
  producer.child.kill('SIGKILL');
  assert.equal((await producer.result).signal, 'SIGKILL');
  const consumed = await Promise.all(consumers.map((c) => c.result));
  for (const { code, stderr } of consumed) assert.equal(code, 0, stderr);
  const received = consumed.flatMap((r) => r.json.digests as string[]);
  assert.ok(received.length > 0);
  const possible = new Map<string, number>();
  for (const digest of producedDigests(7, 20000, 32 * 1024, 3)) possible.set(digest, (possible.get(digest) ?? 0) + 1);
  for (const digest of received) {
    assert.ok(possible.has(digest), 'an object that was never put (torn?) arrived');
    const left = possible.get(digest)! - 1;
    assert.ok(left >= 0, 'an object arrived twice');
    possible.set(digest, left);
  }
});

test('a consumer SIGKILLed mid-stream: the others take the rest, nothing hangs', async (t) => {
  const jobs = namedQueue(t, (name) => new Queue<Buffer | null>(0, { name, codec }));
  const consumers = Array.from({ length: 3 }, () => run('consume', jobs.name, '5'));
  for (let i = 0; i < 300; i++) jobs.put(Buffer.from([i % 256, i >> 8]));
  await new Promise((resolve) => setTimeout(resolve, 200));
  consumers[0]!.child.kill('SIGKILL');
  assert.equal((await consumers[0]!.result).signal, 'SIGKILL');
  await stopConsumers(jobs, 2);
  const survivors = await Promise.all(consumers.slice(1).map((c) => c.result));
  for (const { code, stderr } of survivors) assert.equal(code, 0, stderr);
  const received = survivors.flatMap((r) => r.json.digests as string[]);
  assert.equal(new Set(received).size, received.length);
  assert.ok(received.length > 100, `the survivors got ${received.length} of 300`);
});

test('await using: the queue is closed and what was put has reached the kernel queue', async (t) => {
  const reader = namedQueue(t, (name) => new Queue<number>(0, { name, codec }));
  const received: number[] = [];
  const reading = (async () => {
    for (let i = 0; i < 30; i++) received.push(await reader.getAsync({ timeout: 5 }));
  })();
  let writer: Queue<number>;
  {
    await using queue = Queue.open<number>(reader.name, { codec });
    writer = queue;
    for (let i = 0; i < 30; i++) queue.put(i);
  }
  // The kernel queue holds 10: the other 20 left the feeder only as the reader took objects.
  assert.ok(received.length >= 20, `disposed with ${30 - received.length} objects not yet in the kernel queue`);
  assert.throws(() => writer.put(1), ValueError);
  await reading;
  assert.deepEqual(received, Array.from({ length: 30 }, (_, i) => i));
});

test('a process exits at once when what it put sits in an anonymous queue nobody else has', async () => {
  for (const ending of ['', 'process.exit(0);']) {
    const code = `import(${JSON.stringify(new URL('../lib/queues.js', import.meta.url).href)}).then(({ Queue }) => {
      const queue = new Queue(0, { codec: 'json' });
      for (let i = 0; i < 100; i++) queue.put(i);
      ${ending}
    });`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const { code: status, signal, stderr } = await finished(child);
    clearTimeout(timer);
    assert.equal(signal, null, 'the process waited for a flush that could never happen');
    assert.equal(status, 0, stderr);
  }
});

test('large objects with the default pickle codec come out whole after their segment is gone', (t) => {
  const queue = anonymous(t, new Queue<unknown>());
  const big = Buffer.alloc(3_000_000, 5);
  queue.put(big);
  queue.put({ list: [big.subarray(0, 100_000), 'x'.repeat(20_000)] });
  const first = queue.get() as Buffer;
  const second = queue.get() as { list: [Buffer, string] };
  assert.ok(first.equals(big));
  const [bytes, text] = second.list;
  assert.ok(bytes.equals(big.subarray(0, 100_000)));
  assert.equal(text, 'x'.repeat(20_000));
});

test('Queue.open of a kernel queue another program made says how to adopt it; new Queue(0, { name }) does', (t) => {
  const name = testName('foreign');
  const foreign = new MessageQueue(name, { create: true });
  t.after(() => { foreign.close(); Queue.unlink(name); });
  assert.throws(() => Queue.open(name), { code: 'ENOENT', message: /was not made by a Queue.*new Queue\(0, \{ name: / });
  const adopted = new Queue<Buffer>(0, { name, codec: 'raw' });
  t.after(() => adopted.close());
  foreign.send('from C or Python');
  assert.deepEqual(adopted.get(true, 5), Buffer.from('from C or Python'));
});
