// MessageQueue: the kernel queue by name, sync and async, with CPython (ctypes
// on librt) and other Node processes as peers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageQueue } from '../lib/posix.js';
import { finished, python, pythonProcess, testName } from './helpers.js';

const fixture = (file: string) => fileURLToPath(new URL(`./fixtures/${file}`, import.meta.url));

/** A fresh queue, closed and unlinked after the test whatever happens. */
function freshQueue(t: { after(fn: () => void): void }, options: ConstructorParameters<typeof MessageQueue>[1] = {}): MessageQueue {
  const queue = new MessageQueue(testName('mq'), { create: true, exclusive: true, ...options });
  t.after(() => {
    queue.close();
    try { MessageQueue.unlink(queue.name); } catch { /* the test unlinked it */ }
  });
  return queue;
}

const errorWith = (code: string, pattern: RegExp) => (error: unknown) => {
  assert.equal((error as NodeJS.ErrnoException).code, code);
  assert.match((error as Error).message, pattern);
  return true;
};

test('a new queue takes its size from the kernel defaults in /proc/sys/fs/mqueue', (t) => {
  const queue = freshQueue(t);
  assert.equal(queue.maxMessages, Number(readFileSync('/proc/sys/fs/mqueue/msg_default', 'utf8')));
  assert.equal(queue.maxMessageSize, Number(readFileSync('/proc/sys/fs/mqueue/msgsize_default', 'utf8')));
  assert.equal(queue.currentMessages, 0);
  const small = freshQueue(t, { maxMessages: 3, maxMessageSize: 100 });
  assert.deepEqual([small.maxMessages, small.maxMessageSize], [3, 100]);
  // Opening an existing queue reads its real attributes back.
  const again = new MessageQueue(small.name, { maxMessages: 7 });
  t.after(() => again.close());
  assert.deepEqual([again.maxMessages, again.maxMessageSize], [3, 100]);
});

test('messages come out highest priority first, FIFO within a priority, bytes intact', (t) => {
  const queue = freshQueue(t);
  queue.send(Buffer.from('low'), { priority: 1 });
  queue.send('str msg');
  queue.send(new Uint8Array([0, 110, 117, 108, 0]));
  queue.send(Buffer.from('high'), { priority: 5 });
  queue.send(new ArrayBuffer(0), { priority: 32767 });
  assert.equal(queue.currentMessages, 5);
  const received = Array.from({ length: 5 }, () => queue.receive());
  assert.deepEqual(received.map(({ data, priority }) => [data.toString('latin1'), priority]),
    [['', 32767], ['high', 5], ['low', 1], ['str msg', 0], ['\0nul\0', 0]]);
  // A received Buffer is its own copy, not a view of a reused buffer.
  queue.send('one');
  const first = queue.receive().data;
  queue.send('two');
  queue.receive();
  assert.equal(first.toString(), 'one');
});

test('full and empty: EAGAIN without waiting, ETIMEDOUT after the timeout', (t) => {
  const queue = freshQueue(t, { maxMessages: 2, maxMessageSize: 16 });
  assert.throws(() => queue.receive({ timeout: 0 }), errorWith('EAGAIN', /is empty/));
  assert.throws(() => queue.receive({ timeout: -1 }), errorWith('EAGAIN', /is empty/));
  const started = performance.now();
  assert.throws(() => queue.receive({ timeout: 0.15 }), errorWith('ETIMEDOUT', /timed out after 0.15 s/));
  assert.ok(performance.now() - started >= 140);
  queue.send('a');
  queue.send('b');
  assert.throws(() => queue.send('c', { timeout: 0 }), errorWith('EAGAIN', /is full \(2 messages\)/));
  assert.throws(() => queue.send('c', { timeout: 0.05 }), errorWith('ETIMEDOUT', /stayed full/));
  assert.equal(queue.currentMessages, 2);
});

test('arguments are checked with messages that say what is wrong', (t) => {
  const queue = freshQueue(t, { maxMessageSize: 8 });
  assert.throws(() => new MessageQueue('jobs'), TypeError);
  assert.throws(() => new MessageQueue('/a/b'), TypeError);
  assert.throws(() => new MessageQueue(`/${'x'.repeat(300)}`), RangeError);
  assert.throws(() => new MessageQueue(queue.name, { read: false, write: false }), { name: 'ValueError' });
  assert.throws(() => new MessageQueue(queue.name, { exclusive: true }), { name: 'ValueError' });
  assert.throws(() => new MessageQueue(testName(), { create: true, maxMessages: 0 }), RangeError);
  assert.throws(() => queue.send('x', { priority: 32768 }), RangeError);
  assert.throws(() => queue.send('x', { priority: -1 }), RangeError);
  assert.throws(() => queue.send(42 as unknown as string), TypeError);
  assert.throws(() => queue.send('123456789'), errorWith('EMSGSIZE', /9 bytes is longer than the 8 bytes/));
  assert.throws(() => queue.receive({ timeout: 'soon' as unknown as number }), TypeError);
});

test('opening: ENOENT and EEXIST say what to do', (t) => {
  const queue = freshQueue(t);
  assert.throws(() => new MessageQueue(testName('missing')), errorWith('ENOENT', /pass \{ create: true \}/));
  assert.throws(() => new MessageQueue(queue.name, { create: true, exclusive: true }), errorWith('EEXIST', /already exists/));
  assert.throws(() => MessageQueue.unlink(testName('missing')), errorWith('ENOENT', /no message queue has this name/));
  // An existing queue opened with create: true is simply opened.
  const same = new MessageQueue(queue.name, { create: true });
  t.after(() => same.close());
  same.send('shared');
  assert.equal(queue.receive().data.toString(), 'shared');
});

test('read-only and write-only descriptors refuse the other direction', (t) => {
  const queue = freshQueue(t);
  const reader = new MessageQueue(queue.name, { write: false });
  const writer = new MessageQueue(queue.name, { read: false });
  t.after(() => { reader.close(); writer.close(); });
  writer.send('through');
  assert.equal(reader.receive().data.toString(), 'through');
  assert.throws(() => reader.send('x'), errorWith('EBADF', /write: false/));
  assert.throws(() => writer.receive(), errorWith('EBADF', /read: false/));
});

test('close is idempotent, rejects pending async calls, and later use throws EBADF', async (t) => {
  const queue = freshQueue(t);
  const other = new MessageQueue(queue.name);
  const pending = other.receiveAsync();
  other.close();
  other.close();
  await assert.rejects(pending, errorWith('EBADF', /closed while waiting/));
  assert.throws(() => other.receive(), errorWith('EBADF', /is closed/));
  assert.throws(() => other.currentMessages, errorWith('EBADF', /is closed/));
  await assert.rejects(other.sendAsync('x'), errorWith('EBADF', /is closed/));
  assert.equal(other.closed, true);
  // unlink works by name after close, and the name is then free again.
  queue.unlink();
  const reborn = new MessageQueue(queue.name, { create: true, exclusive: true });
  reborn.close();
  MessageQueue.unlink(queue.name);
});

test('using closes the descriptor', (t) => {
  const name = freshQueue(t).name;
  let seen: MessageQueue;
  {
    using queue = new MessageQueue(name);
    seen = queue;
  }
  assert.equal(seen.closed, true);
});

test('receiveAsync waits for a message; waiters are served in order', async (t) => {
  const queue = freshQueue(t);
  const first = queue.receiveAsync();
  const second = queue.receiveAsync({ timeout: 5 });
  const sender = new MessageQueue(queue.name);
  t.after(() => sender.close());
  setTimeout(() => { sender.send('one'); sender.send('two'); }, 20);
  assert.equal((await first).data.toString(), 'one');
  assert.equal((await second).data.toString(), 'two');
});

test('receiveAsync and sendAsync: timeouts, aborts, and an at-once EAGAIN for timeout 0', async (t) => {
  const queue = freshQueue(t, { maxMessages: 1 });
  await assert.rejects(queue.receiveAsync({ timeout: 0 }), errorWith('EAGAIN', /is empty/));
  await assert.rejects(queue.receiveAsync({ timeout: 0.05 }), errorWith('ETIMEDOUT', /stayed empty/));
  const controller = new AbortController();
  const aborted = queue.receiveAsync({ signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted, { name: 'AbortError', code: 'ABORT_ERR' });
  await assert.rejects(queue.receiveAsync({ signal: AbortSignal.abort() }), { name: 'AbortError' });
  await queue.sendAsync('fills it');
  await assert.rejects(queue.sendAsync('x', { timeout: 0 }), errorWith('EAGAIN', /is full/));
  await assert.rejects(queue.sendAsync('x', { timeout: 0.05 }), errorWith('ETIMEDOUT', /stayed full/));
  const later = new AbortController();
  const blocked = queue.sendAsync('x', { signal: later.signal });
  setTimeout(() => later.abort(), 10);
  await assert.rejects(blocked, { name: 'AbortError' });
  // Nothing of the aborted or timed-out sends reached the queue.
  assert.equal(queue.currentMessages, 1);
  assert.equal((await queue.receiveAsync()).data.toString(), 'fills it');
});

test('sendAsync waits while the queue is full and sends what was given at call time', async (t) => {
  const queue = freshQueue(t, { maxMessages: 1 });
  queue.send('first');
  const message = Buffer.from('second');
  const sent = queue.sendAsync(message, { priority: 2 });
  message.write('SECOND');
  let done = false;
  void sent.then(() => { done = true; });
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(done, false);
  assert.equal(queue.receive().data.toString(), 'first');
  await sent;
  assert.deepEqual(queue.receive(), { data: Buffer.from('second'), priority: 2 });
});

test('waiting costs no CPU: writability is watched only while a send waits', async (t) => {
  const queue = freshQueue(t, { maxMessages: 1 });
  // Make the queue wait for writability once, then become idle again.
  queue.send('full');
  const sent = queue.sendAsync('waits');
  setTimeout(() => queue.receive(), 10);
  await sent;
  queue.receive();
  const pending = queue.receiveAsync();
  const before = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const used = process.cpuUsage(before);
  // A loop spinning on a writable descriptor would burn the whole 300 ms.
  assert.ok(used.user + used.system < 100_000, `used ${(used.user + used.system) / 1000} ms of CPU in 300 ms while idle`);
  queue.send('wake');
  assert.equal((await pending).data.toString(), 'wake');
});

test('pending receiveAsync calls do not block the event loop or the thread pool', async (t) => {
  const queue = freshQueue(t);
  const pending = Array.from({ length: 1000 }, () => queue.receiveAsync().catch(() => undefined));
  const started = performance.now();
  await Promise.all(Array.from({ length: 8 }, () => readFile(fileURLToPath(import.meta.url))));
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 1000, `8 fs.readFile calls took ${elapsed} ms with 1000 receives pending`);
  queue.close();
  await Promise.all(pending);
});

const CTYPES_PEER = `
import ctypes, os, sys
rt = ctypes.CDLL('librt.so.1', use_errno=True)
rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
rt.mq_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
rt.mq_receive.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint)]
rt.mq_receive.restype = ctypes.c_ssize_t
def check(result):
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result
def open_queue(name):
    return check(rt.mq_open(name.encode(), os.O_RDWR))
def send(mqd, data, priority):
    check(rt.mq_send(mqd, data, len(data), priority))
def receive(mqd):
    buffer = ctypes.create_string_buffer(8192)
    priority = ctypes.c_uint()
    length = check(rt.mq_receive(mqd, buffer, 8192, ctypes.byref(priority)))
    return buffer.raw[:length], priority.value
`;

test('CPython (ctypes on librt) sends with priorities; Node receives them in priority order', (t) => {
  const queue = freshQueue(t);
  python(`${CTYPES_PEER}
mqd = open_queue(${JSON.stringify(queue.name)})
for data, priority in [(b'low', 1), (b'str msg', 0), (b'\\x00nul\\x00', 0), (b'high', 5), (bytes(range(256)) * 32, 3)]:
    send(mqd, data, priority)
`);
  const received = Array.from({ length: 5 }, () => queue.receive({ timeout: 0 }));
  assert.deepEqual(received.map(({ data, priority }) => [data.length > 100 ? data.length : data.toString('latin1'), priority]),
    [['high', 5], [8192, 3], ['low', 1], ['str msg', 0], ['\0nul\0', 0]]);
  assert.deepEqual(received[1]!.data, Buffer.from(Array.from({ length: 8192 }, (_, i) => i % 256)));
});

test('Node sends; a CPython process waiting in mq_receive gets the bytes and priorities', async (t) => {
  const queue = freshQueue(t);
  const peer = pythonProcess(`${CTYPES_PEER}
mqd = open_queue(${JSON.stringify(queue.name)})
print('ready', flush=True)
got = [receive(mqd) for _ in range(3)]
print(repr([(data if len(data) < 16 else (len(data), set(data)), priority) for data, priority in got]), flush=True)
`);
  const result = finished(peer);
  await new Promise((resolve) => peer.stdout!.once('data', resolve));
  await queue.sendAsync(Buffer.from([0, 1, 2]), { priority: 7 });
  queue.send(Buffer.alloc(8192, 0x5a), { priority: 1 });
  queue.send('caf\u00e9');
  const { code, stdout, stderr } = await result;
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split('\n');
  assert.equal(lines[1], "[(b'\\x00\\x01\\x02', 7), ((8192, {90}), 1), (b'caf\\xc3\\xa9', 0)]");
});

test('two Node processes pass 100 000 messages with sendAsync/receiveAsync, none lost, in order', async (t) => {
  const queue = freshQueue(t);
  const count = 100_000;
  const receiver = spawn(process.execPath, [fixture('mq-peer.js'), 'receive', queue.name, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sender = spawn(process.execPath, [fixture('mq-peer.js'), 'send', queue.name, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const [sent, received] = await Promise.all([finished(sender), finished(receiver)]);
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal(received.code, 0, received.stderr);
  assert.deepEqual(JSON.parse(sent.stdout), { sent: count });
  assert.deepEqual(JSON.parse(received.stdout), { received: count, inOrder: count });
  assert.equal(queue.currentMessages, 0);
});

test('a Worker terminated while receiveAsync is pending exits cleanly and closes its descriptors', async (t) => {
  const queue = freshQueue(t);
  const child = spawn(process.execPath, [fixture('mq-worker.js'), queue.name], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { code, signal, stdout, stderr } = await finished(child);
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout), { exitCode: 1, opened: 2, leftOver: 0 });
});
