// Pipe and Connection: CPython's semantics and messages, the framing byte for
// byte, the Async twins, and connections handed to real child processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Connection, Pipe, frameHeader, wait } from '../lib/connection.js';
import { Process } from '../lib/process.js';
import { BufferTooShort, EOFError, PicklingError, TimeoutError, UnpicklingError, ValueError } from '../lib/errors.js';
import { dumps } from '../lib/pickle.js';
import { collectingDescriptors, MODULE, reduceSymbol } from '../lib/reduction.js';
import { finished } from './helpers.js';
import { checkBigMessage } from './fixtures/connection-data.js';

const fixture = fileURLToPath(new URL('./fixtures/connection-child.js', import.meta.url));

function pipe(t: { after(fn: () => void): void }, duplex = true): [Connection, Connection] {
  const ends = Pipe(duplex);
  t.after(() => ends.forEach((end) => end.close()));
  return ends;
}

function throwsOSError(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: Error) => error.name === 'OSError' && error.message === message);
}

/** Reads exactly n raw bytes from a descriptor. */
function rawRead(fd: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let at = 0; at < n;) at += readSync(fd, out, at, n - at, null);
  return out;
}

test('messages go both ways, never merge, and zero-length messages are real', (t) => {
  const [a, b] = pipe(t);
  const strings = ['hello', '', 'a', 'b', '', 'bye', '', 'lop'].map((s) => Buffer.from(s));
  for (const s of strings) a.send_bytes(s);
  for (const s of strings) {
    assert.equal(b.poll(), true);
    assert.deepEqual(b.recv_bytes(), s);
  }
  assert.equal(b.poll(), false);
  b.send_bytes(new Uint8Array([1, 2, 3]));
  assert.deepEqual(a.recv_bytes(), Buffer.from([1, 2, 3]));
  assert.equal(a.sendBytes, a.send_bytes);
  assert.equal(a.recvBytes, a.recv_bytes);
  assert.equal(a.recvBytesInto, a.recv_bytes_into);
});

test('send and recv carry pickles; garbage is UnpicklingError; an unpicklable object writes nothing', async (t) => {
  const [a, b] = pipe(t);
  const value = { reply: [1, 2.5, 'x', Buffer.from('y'), null], big: 2n ** 70n };
  a.send(value);
  assert.deepEqual(Object.entries(b.recv<Record<string, unknown>>()), [['reply', [1, 2.5, 'x', Buffer.from('y'), null]], ['big', 2n ** 70n]]);
  a.send(null);
  assert.equal(await b.recvAsync(), null);
  await b.sendAsync('back');
  assert.equal(a.recv(), 'back');
  // The message is exactly pickle.dumps(obj) framed: what CPython's recv reads.
  a.send(['x', 1]);
  const frame = rawRead(b.fileno(), 4 + dumps(['x', 1]).length);
  assert.deepEqual(frame.subarray(4), dumps(['x', 1]));
  assert.throws(() => a.send(() => 1), PicklingError);
  assert.equal(b.poll(), false);
  a.send_bytes(Buffer.from('not a pickle'));
  assert.throws(() => b.recv(), UnpicklingError);
  const [reader, writer] = pipe(t, false);
  throwsOSError(() => reader.send(1), 'connection is read-only');
  throwsOSError(() => writer.recv(), 'connection is write-only');
});

test('the framing is CPython\'s, byte for byte', (t) => {
  const [a, b] = pipe(t);
  a.send_bytes(Buffer.from('hello'));
  assert.deepEqual(rawRead(b.fileno(), 9), Buffer.from('00000005' + Buffer.from('hello').toString('hex'), 'hex'));
  a.send_bytes(Buffer.alloc(0));
  assert.deepEqual(rawRead(b.fileno(), 4), Buffer.from('00000000', 'hex'));
  const big = Buffer.alloc(20000, 0xab);
  a.send_bytes(big);
  const raw = rawRead(b.fileno(), 4 + big.length);
  assert.equal(raw.readInt32BE(0), 20000);
  assert.deepEqual(raw.subarray(4), big);
  assert.deepEqual(frameHeader(0x7fffffff), Buffer.from('7fffffff', 'hex'));
  assert.deepEqual(frameHeader(0x80000000), Buffer.from('ffffffff0000000080000000', 'hex'));
});

test('the long header form is read for any size; other negative lengths are rejected', (t) => {
  const [a, b] = pipe(t);
  writeSync(a.fileno(), Buffer.from('ffffffff0000000000000005' + Buffer.from('hello').toString('hex'), 'hex'));
  assert.deepEqual(b.recv_bytes(), Buffer.from('hello'));
  writeSync(a.fileno(), Buffer.from('fffffffe', 'hex'));
  throwsOSError(() => b.recv_bytes(), 'bad message length');
  assert.equal(b.readable, false);
  throwsOSError(() => b.recv_bytes(), 'connection is write-only');
});

test('send_bytes takes offset and size in bytes, with CPython\'s ValueErrors', (t) => {
  const [a, b] = pipe(t);
  const msg = Buffer.from('abcdefghijklmnopqrstuvwxyz');
  for (const [args, expected] of [[[5], msg.subarray(5)], [[7, 8], msg.subarray(7, 15)], [[26], Buffer.alloc(0)], [[26, 0], Buffer.alloc(0)]] as const) {
    a.send_bytes(msg, ...args);
    assert.deepEqual(b.recv_bytes(), expected);
  }
  for (const [args, message] of [[[27], 'buffer length < offset'], [[22, 5], 'buffer length < offset + size'],
    [[26, 1], 'buffer length < offset + size'], [[-1], 'offset is negative'], [[4, -1], 'size is negative']] as const) {
    assert.throws(() => a.send_bytes(msg, ...args), (error: Error) => error instanceof ValueError && error.message === message);
  }
  assert.throws(() => a.send_bytes('text' as never), { name: 'TypeError', message: "a bytes-like object is required, not 'str'" });
  const ints = new Int32Array([1, 2, 3]);
  a.send_bytes(ints, 4, 4);
  assert.deepEqual(b.recv_bytes(), Buffer.from(ints.buffer, 4, 4));
  assert.equal(b.poll(), false);
});

test('recv_bytes(maxlength): exact fits, longer is "bad message length" and ends reading', (t) => {
  const [a, b] = pipe(t);
  assert.throws(() => b.recv_bytes(-1), (error: Error) => error instanceof ValueError && error.message === 'negative maxlength');
  a.send_bytes(Buffer.from('12345'));
  assert.deepEqual(b.recv_bytes(5), Buffer.from('12345'));
  a.send_bytes(Buffer.from('123456'));
  throwsOSError(() => b.recv_bytes(5), 'bad message length');
  assert.equal(b.readable, false);
  assert.equal(b.closed, false);
  // A read-only end is closed instead.
  const [reader, writer] = pipe(t, false);
  writer.send_bytes(Buffer.from('123456'));
  throwsOSError(() => reader.recv_bytes(5), 'bad message length');
  assert.equal(reader.closed, true);
});

test('recv_bytes_into: offsets in bytes, BufferTooShort carries the whole message', (t) => {
  const [a, b] = pipe(t);
  const ints = new Int32Array(10);
  a.send_bytes(Buffer.from('something bytes'.padEnd(16, '!')));
  assert.equal(b.recv_bytes_into(ints, 3 * 4), 16);
  assert.deepEqual(Buffer.from(ints.buffer, 12, 16), Buffer.from('something bytes!'));
  assert.equal(ints[0], 0);
  const long = Buffer.alloc(110, 'x');
  a.send_bytes(long);
  const small = Buffer.alloc(40);
  assert.throws(() => b.recv_bytes_into(small), (error: unknown) => error instanceof BufferTooShort && error.data.equals(long));
  assert.equal(b.poll(), false, 'the message was consumed');
  assert.throws(() => b.recv_bytes_into(small, -1), { message: 'negative offset' });
  assert.throws(() => b.recv_bytes_into(small, 41), { message: 'offset too large' });
  a.send_bytes(Buffer.from('end'));
  assert.equal(b.recv_bytes_into(small, 37), 3);
  assert.deepEqual(small.subarray(37), Buffer.from('end'));
});

test('one-way pipe: first end receives, second sends; direction errors', (t) => {
  const [reader, writer] = pipe(t, false);
  assert.deepEqual([reader.readable, reader.writable, writer.readable, writer.writable], [true, false, false, true]);
  writer.send_bytes(Buffer.from('one way'));
  assert.deepEqual(reader.recv_bytes(), Buffer.from('one way'));
  throwsOSError(() => reader.send_bytes(Buffer.from('x')), 'connection is read-only');
  throwsOSError(() => writer.recv_bytes(), 'connection is write-only');
  throwsOSError(() => writer.poll(), 'connection is write-only');
  writer.close();
  assert.equal(reader.poll(), true);
  assert.throws(() => reader.recv_bytes(), EOFError);
});

test('Connection arguments are checked as CPython checks them', () => {
  assert.throws(() => new Connection(-1), { message: 'invalid handle' });
  assert.throws(() => new Connection(0, false, false), { message: 'at least one of `readable` and `writable` must be True' });
});

test('a closed connection says "handle is closed" everywhere; close is idempotent', async (t) => {
  const [a, b] = pipe(t);
  a.close();
  a.close();
  a[Symbol.dispose]();
  assert.equal(a.closed, true);
  for (const call of [() => a.send_bytes(Buffer.alloc(1)), () => a.recv_bytes(), () => a.recv_bytes_into(Buffer.alloc(1)),
    () => a.poll(), () => a.fileno()]) throwsOSError(call, 'handle is closed');
  await assert.rejects(async () => a.recvBytesAsync(), { name: 'OSError', message: 'handle is closed' });
  // The peer sees end of file at a message boundary, and cannot send.
  assert.equal(b.poll(), true);
  assert.throws(() => b.recv_bytes(), (error: Error) => error instanceof EOFError);
  assert.throws(() => b.send_bytes(Buffer.from('x')), (error: NodeJS.ErrnoException) =>
    error.name === 'BrokenPipeError' && error.code === 'EPIPE' && error.errno === 32);
});

test('an Async send to a peer that closes while it waits: BrokenPipeError, not a hang', async (t) => {
  const [a, b] = pipe(t);
  const sending = b.sendBytesAsync(Buffer.alloc(16 << 20));
  setTimeout(() => a.close(), 20);
  await assert.rejects(sending, (error: NodeJS.ErrnoException) => ['EPIPE', 'ECONNRESET'].includes(error.code!));
  await assert.rejects(b.sendBytesAsync(Buffer.from('x')), { name: 'BrokenPipeError', code: 'EPIPE' });
});

test('end of file inside a frame is "got end of file during message"', (t) => {
  const [a, b] = pipe(t);
  writeSync(a.fileno(), Buffer.from('0000000a' + '41424344', 'hex'));
  a.close();
  throwsOSError(() => b.recv_bytes(), 'got end of file during message');
  const [c, d] = pipe(t);
  writeSync(c.fileno(), Buffer.from('0000', 'hex'));
  c.close();
  throwsOSError(() => d.recv_bytes(), 'got end of file during message');
});

test('poll waits up to its timeout and never consumes', async (t) => {
  const [a, b] = pipe(t);
  let start = performance.now();
  assert.equal(b.poll(-1), false);
  assert.equal(b.poll(0.1), false);
  assert.ok(performance.now() - start >= 95);
  a.send_bytes(Buffer.from('a'));
  a.send_bytes(Buffer.from('b'));
  start = performance.now();
  assert.equal(b.poll(null), true);
  assert.equal(b.poll(1), true);
  assert.ok(performance.now() - start < 500);
  assert.deepEqual(b.recv_bytes(), Buffer.from('a'));
  assert.equal(await b.pollAsync(), true);
  assert.deepEqual(b.recv_bytes(), Buffer.from('b'));
  assert.equal(await b.pollAsync(), false);
  assert.equal(await b.pollAsync(0.05), false);
  const later = b.pollAsync(null);
  setTimeout(() => a.send_bytes(Buffer.from('c')), 20);
  assert.equal(await later, true);
  assert.deepEqual(b.recv_bytes(), Buffer.from('c'));
});

test('Async twins: in order, on the event loop, with timeout, abort and close', async (t) => {
  const [a, b] = pipe(t);
  const first = b.recvBytesAsync();
  const second = b.recvBytesAsync();
  assert.throws(() => b.recv_bytes(), /an Async recv is in progress/);
  setTimeout(() => { a.send_bytes(Buffer.from('one')); a.send_bytes(Buffer.from('two')); }, 10);
  assert.deepEqual(await first, Buffer.from('one'));
  assert.deepEqual(await second, Buffer.from('two'));

  await assert.rejects(b.recvBytesAsync(null, { timeout: 0.05 }), TimeoutError);
  const controller = new AbortController();
  const aborted = b.recvBytesAsync(null, { signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted, { name: 'AbortError' });
  const pending = b.recvBytesAsync();
  setTimeout(() => b.close(), 10);
  await assert.rejects(pending, { name: 'OSError', message: 'handle is closed' });
});

test('sendBytesAsync and recvBytesAsync move 32 MiB in one process without blocking', async (t) => {
  for (const duplex of [true, false]) {
    const [x, y] = pipe(t, duplex);
    const [reader, writer] = duplex ? [x, y] : [x, y];
    const big = Buffer.alloc(32 << 20);
    for (let i = 0; i < big.length; i += 4096) big[i] = i >> 12;
    const received = reader.recvBytesAsync();
    const sent = writer.sendBytesAsync(big);
    const small = writer.sendBytesAsync(Buffer.from('after'));
    assert.ok((await received).equals(big));
    await sent;
    await small;
    assert.deepEqual(await reader.recvBytesAsync(), Buffer.from('after'));
  }
});

test('wait returns the ready objects: connections, descriptors, a Process sentinel; [] on timeout', async (t) => {
  const [a, b] = pipe(t);
  const [c, d] = pipe(t);
  let start = performance.now();
  assert.deepEqual(wait([b, d], 0.1), []);
  assert.ok(performance.now() - start >= 95);
  start = performance.now();
  assert.deepEqual(wait([b, d], -1), []);
  assert.ok(performance.now() - start < 50);
  c.send_bytes(Buffer.from('x'));
  assert.deepEqual(wait([b, d]), [d]);
  a.close();
  assert.deepEqual(wait([b, d.fileno()], 0), [b, d.fileno()]);
  const proc = new Process({ module: new URL('./fixtures/process_targets.js', import.meta.url).href, target: 'exitWith', args: [3] });
  proc.start();
  assert.deepEqual(wait([proc.sentinel], 30), [proc.sentinel]);
  proc.join();
  assert.equal(proc.exitcode, 3);
});

test('connections and listeners never closed are closed when collected', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const openFds = () => readdirSync('/proc/self/fd').length;
  const before = openFds();
  for (let i = 0; i < 200; i++) {
    const [a, b] = Pipe(i % 2 === 0);
    b.send_bytes(Buffer.from('dropped'));
    if (i % 50 === 0) await b.pollAsync(0.001);  // an event-loop poller to release too
  }
  assert.ok(openFds() >= before + 400);
  for (let i = 0; i < 10 && openFds() > before + 10; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.ok(openFds() <= before + 10, `descriptors left open: ${openFds() - before}`);
});

test('a worker terminated with async waits pending closes its descriptors', async () => {
  const openFds = () => readdirSync('/proc/self/fd').length;
  const before = openFds();
  for (let i = 0; i < 3; i++) {
    const worker = new Worker(new URL('./fixtures/connection-worker.js', import.meta.url));
    await new Promise((resolve) => worker.once('message', resolve));
    await worker.terminate();
  }
  assert.ok(openFds() <= before + 1, `descriptors left open: ${openFds() - before}`);
});

test("a Listener's private socket directory goes when its process is SIGKILLed", async () => {
  const code = `import(${JSON.stringify(new URL('../lib/connection.js', import.meta.url).href)}).then(({ Listener }) => {
    console.log(new Listener().address);
    setInterval(() => {}, 1000);
  });`;
  const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<string>((resolve) => proc.stdout.once('data', (chunk) => resolve(String(chunk).trim())));
  assert.ok(existsSync(address));
  proc.kill('SIGKILL');
  await finished(proc);
  const deadline = Date.now() + 2000;
  while (existsSync(dirname(address)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(existsSync(dirname(address)), false, `${dirname(address)} is still there`);
});

/** Spawns the fixture with `ends` as its descriptors 3, 4, ...; closes this process's copies. */
function child(mode: string, ends: Connection[], args: unknown[] = []) {
  const proc = spawn(process.execPath, [fixture, mode, JSON.stringify(args)],
    { stdio: ['ignore', 'pipe', 'pipe', ...ends.map((end) => end.fileno())] });
  for (const end of ends) end.close();
  return proc;
}

test('a child process echoes through its end of a duplex Pipe; EOF when the parent closes', async () => {
  const [parent, childEnd] = Pipe();
  const proc = child('echo', [childEnd]);
  const done = finished(proc);
  for (const text of ['hello', '', 'x'.repeat(100000)]) {
    parent.send_bytes(Buffer.from(text));
    assert.equal((await parent.recvBytesAsync()).toString(), text);
  }
  parent.close();
  const { code, stderr } = await done;
  assert.equal(code, 0, stderr);
});

test('a Connection reduces to its inherited descriptor and is rebuilt in the child', async () => {
  for (const duplex of [true, false]) {
    const [reader, writer] = Pipe(duplex);
    const { result, descriptors } = collectingDescriptors(() => writer[reduceSymbol]());
    assert.deepEqual(result, [MODULE, 'Connection', [3, !duplex ? false : true, true]]);
    assert.deepEqual(descriptors, [writer.fileno()]);
    const proc = spawn(process.execPath, [fixture, 'rebuild', JSON.stringify(result[2])],
      { stdio: ['ignore', 'pipe', 'pipe', ...descriptors] });
    writer.close();
    const done = finished(proc);
    assert.equal((await reader.recvBytesAsync()).toString(), `rebuilt fd 3 readable=${duplex} writable=true`);
    await assert.rejects(reader.recvBytesAsync(), EOFError);
    const { code, stderr } = await done;
    assert.equal(code, 0, stderr);
    reader.close();
  }
  const [a] = Pipe();
  assert.throws(() => a[reduceSymbol](), /only to a child process/);
  a.close();
});

test('1 GiB in one message through a Pipe, intact', async () => {
  const size = 1 << 30;
  const [parent, childEnd] = Pipe();
  const proc = child('big', [childEnd], [size]);
  const done = finished(proc);
  const message = await parent.recvBytesAsync();
  assert.equal(checkBigMessage(message, size), -1);
  await assert.rejects(parent.recvBytesAsync(), EOFError);
  parent.close();
  assert.equal((await done).code, 0);
});

test('100 000 small messages arrive in order', async () => {
  const count = 100000;
  const [parent, childEnd] = Pipe();
  const proc = child('many', [childEnd], [count]);
  const done = finished(proc);
  for (let i = 0; i < count; i++) {
    const message = i % 1000 === 0 ? await parent.recvBytesAsync() : parent.recv_bytes();
    if (message.toString() !== `message ${i}`) assert.fail(`message ${i} was ${message.toString()}`);
  }
  assert.throws(() => parent.recv_bytes(), EOFError);
  parent.close();
  assert.equal((await done).code, 0);
});

test('a peer SIGKILLed in the middle of a message: a clear error, never a hang', async () => {
  for (const useAsync of [false, true]) {
    const [parent, childEnd] = Pipe();
    const proc = child('partial', [childEnd]);
    const done = finished(proc);
    await new Promise((resolve) => proc.stdout!.once('data', resolve));
    const received = useAsync ? parent.recvBytesAsync() : null;
    proc.kill('SIGKILL');
    assert.equal((await done).signal, 'SIGKILL');
    const expected = { name: 'OSError', message: 'got end of file during message' };
    if (received) await assert.rejects(received, expected);
    else assert.throws(() => parent.recv_bytes(), expected);
    parent.close();
  }
});
