// SharedMemorySegment: the low-level segment by name, against CPython's
// multiprocessing.shared_memory and against its own failure modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { MessageChannel } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { SharedMemorySegment } from '../lib/posix.js';
import { binding } from '../lib/native.js';
import { finished, python, pythonProcess, testName } from './helpers.js';

const fixture = new URL('./fixtures/shm-child.js', import.meta.url).pathname;

function runFixture(args: string[], nodeOptions: string[] = []) {
  const result = spawnSync(process.execPath, [...nodeOptions, fixture, ...args], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.signal, null, `the child was killed by ${result.signal}: ${result.stderr}`);
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

/** A created segment, unlinked after the test even if it fails. */
function created(t: { after(fn: () => void): void }, size: number, label = 'shm'): SharedMemorySegment {
  const name = testName(label);
  const segment = new SharedMemorySegment(name, { create: true, exclusive: true, size });
  t.after(() => {
    segment.close();
    try { SharedMemorySegment.unlink(name); } catch { /* unlinked by the test */ }
  });
  return segment;
}

// Python 3.11 registers every SharedMemory it opens with its resource tracker,
// which destroys the segment when that process exits: unregister at once.
const ATTACH = `
from multiprocessing import shared_memory, resource_tracker
def attach(name):
    shm = shared_memory.SharedMemory(name)
    resource_tracker.unregister(shm._name, 'shared_memory')
    return shm
`;

test('CPython SharedMemory(name) sees the bytes Node wrote, and Node sees its writes at once', (t) => {
  const segment = created(t, 100);
  segment.buffer.write('written by node');
  const seen = python(`${ATTACH}
shm = attach(${JSON.stringify(segment.name.slice(1))})
print(shm.size, bytes(shm.buf[:15]).decode())
shm.buf[20:37] = b'written by python'
shm.close()`);
  assert.equal(seen.trim(), '100 written by node');
  // The mapping Node held all along shows Python's write, without reopening.
  assert.equal(segment.buffer.toString('latin1', 20, 37), 'written by python');
  assert.ok(existsSync(`/dev/shm${segment.name}`), 'Python left the segment in place');
});

test('Node opens a segment CPython created, by the same name with a leading slash', async (t) => {
  const peer = pythonProcess(`
import sys
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(create=True, size=4096)
shm.buf[:6] = b'python'
print(shm.name, flush=True)
sys.stdin.readline()
print(bytes(shm.buf[6:10]).decode(), flush=True)
shm.close()
shm.unlink()`);
  const done = finished(peer);
  t.after(() => peer.kill());
  const name = await new Promise<string>((resolve) => peer.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())));
  const segment = new SharedMemorySegment(`/${name}`);
  assert.equal(segment.size, 4096);
  assert.equal(segment.buffer.toString('latin1', 0, 6), 'python');
  segment.buffer.write('node', 6);
  segment.close();
  peer.stdin.end('\n');
  const { code, stdout, stderr } = await done;
  assert.equal(code, 0, stderr);
  assert.equal(stdout.split('\n')[1], 'node');
});

for (const size of [0, 1, 4097, 64 * 1024 * 1024]) {
  test(`a segment of ${size} bytes is mapped whole, zero-filled, and the same from CPython`, (t) => {
    const segment = created(t, size, `size${size}`);
    assert.equal(segment.size, size);
    assert.equal(segment.buffer.length, size);
    assert.ok(segment.buffer.every((byte) => byte === 0));
    for (let i = 0; i < size; i += 4093) segment.buffer[i] = (i / 4093 + 1) & 0xff;
    if (size > 0) segment.buffer[size - 1] = 0xee;
    const expected = createHash('sha256').update(segment.buffer).digest('hex');
    const again = new SharedMemorySegment(segment.name);
    t.after(() => again.close());
    assert.equal(again.size, size);
    assert.ok(again.buffer.equals(segment.buffer));
    // CPython cannot map an empty segment (mmap refuses length 0): compare the file instead.
    const seen = size === 0 ? `0 ${createHash('sha256').digest('hex')}` : python(`${ATTACH}
import hashlib
shm = attach(${JSON.stringify(segment.name.slice(1))})
print(shm.size, hashlib.sha256(shm.buf).hexdigest())
shm.close()`).trim();
    assert.equal(seen, `${size} ${expected}`);
  });
}

test('a segment is grown to the size asked for, never shrunk', (t) => {
  const segment = created(t, 10);
  segment.buffer.write('keep');
  const bigger = new SharedMemorySegment(segment.name, { size: 5000 });
  t.after(() => bigger.close());
  assert.equal(bigger.size, 5000);
  assert.equal(bigger.buffer.toString('latin1', 0, 4), 'keep');
  const smaller = new SharedMemorySegment(segment.name, { size: 3 });
  t.after(() => smaller.close());
  assert.equal(smaller.size, 5000);
  assert.equal(segment.size, 10, 'an existing mapping keeps its length');
});

test('create without exclusive opens an existing segment; exclusive refuses it', (t) => {
  const segment = created(t, 8);
  segment.buffer[0] = 9;
  const opened = new SharedMemorySegment(segment.name, { create: true, size: 8 });
  t.after(() => opened.close());
  assert.equal(opened.buffer[0], 9);
  assert.throws(() => new SharedMemorySegment(segment.name, { create: true, exclusive: true, size: 8 }),
    { code: 'EEXIST', errno: 17, syscall: 'shm_open', path: segment.name, message: /already exists/ });
});

test('opening a missing segment, or unlinking it twice, says so', (t) => {
  const name = testName('missing');
  assert.throws(() => new SharedMemorySegment(name), { code: 'ENOENT', path: name, message: /no shared memory segment named .* create: true/ });
  const segment = created(t, 1);
  segment.unlink();
  assert.ok(!existsSync(`/dev/shm${segment.name}`));
  segment.buffer[0] = 1; // the mapping outlives the name
  assert.throws(() => segment.unlink(), { code: 'ENOENT', message: /already unlinked/ });
  assert.throws(() => SharedMemorySegment.unlink(segment.name), { code: 'ENOENT' });
});

test('names and options are checked before any system call', () => {
  assert.throws(() => new SharedMemorySegment('no-slash'), { name: 'TypeError', message: /not a valid POSIX IPC name/ });
  assert.throws(() => new SharedMemorySegment('/a/b'), { name: 'TypeError' });
  assert.throws(() => new SharedMemorySegment(`/${'x'.repeat(300)}`), { name: 'RangeError', message: /at most 255 bytes/ });
  assert.throws(() => new SharedMemorySegment(42 as unknown as string), { name: 'TypeError' });
  assert.throws(() => new SharedMemorySegment(testName(), { exclusive: true }), { name: 'ValueError', message: /needs create: true/ });
  assert.throws(() => new SharedMemorySegment(testName(), { create: true, size: -1 }), { name: 'RangeError' });
  assert.throws(() => new SharedMemorySegment(testName(), { create: true, size: 1.5 }), { name: 'TypeError' });
  assert.throws(() => new SharedMemorySegment(testName(), { create: true, mode: 0o10000 }), { name: 'TypeError', message: /mode/ });
  assert.throws(() => SharedMemorySegment.unlink('bad'), { name: 'TypeError' });
});

test('mode sets the permission bits of a created segment (0o600 by default)', (t) => {
  const plain = created(t, 1);
  assert.equal(statSync(`/dev/shm${plain.name}`).mode & 0o777, 0o600);
  const name = testName('mode');
  const shared = new SharedMemorySegment(name, { create: true, mode: 0o640, size: 1 });
  t.after(() => { shared.close(); shared.unlink(); });
  assert.equal(statSync(`/dev/shm${name}`).mode & 0o777, 0o640 & ~process.umask());
});

test('reserve allocates the pages when the segment is made', (t) => {
  const name = testName('reserve');
  const segment = new SharedMemorySegment(name, { create: true, size: 1 << 20, reserve: true });
  t.after(() => { segment.close(); segment.unlink(); });
  assert.ok(statSync(`/dev/shm${name}`).blocks * 512 >= 1 << 20);
  const sparse = created(t, 1 << 20);
  assert.equal(statSync(`/dev/shm${sparse.name}`).blocks, 0);
});

test('after close() the getter throws and earlier Buffers and views are empty: the process does not crash', (t) => {
  const segment = created(t, 64);
  const output = runFixture(['after-close', segment.name, '64']);
  assert.match(output, /buffer getter: threw ValueError/);
  assert.match(output, /buffer length: 0/);
  assert.match(output, /doubles\[0\]: undefined/);
  assert.match(output, /survived/);
  assert.ok(segment.buffer.every((byte) => byte === 0), 'no write after close reached the segment');
  segment.close();
  assert.equal(segment.closed, true);
  assert.throws(() => segment.buffer, { name: 'ValueError', message: /is closed/ });
});

test('a child that exits without closing leaves its writes and nothing else', (t) => {
  const segment = created(t, 32);
  assert.equal(runFixture(['write', segment.name, 'from a child']).trim(), 'written');
  assert.equal(segment.buffer.toString('latin1', 0, 12), 'from a child');
});

test('Workers terminated while holding mappings exit cleanly and unmap them', (t) => {
  const segment = created(t, 4096);
  assert.equal(runFixture(['worker-terminate', segment.name]).trim(), 'terminated 1 1, first byte 42, mappings left 0');
});

test('segments dropped without close() are unmapped by the garbage collector', (t) => {
  const segment = created(t, 4096);
  assert.match(runFixture(['gc', segment.name, '300'], ['--expose-gc']), /mappings \d+ -> 0/);
});

test('using closes the mapping at the end of the block', (t) => {
  const name = created(t, 16).name;
  let kept: Buffer;
  {
    using segment = new SharedMemorySegment(name);
    kept = segment.buffer;
    assert.equal(kept.length, 16);
  }
  assert.equal(kept.length, 0);
});

test('the native functions reject wrong arguments with errors, never a crash', () => {
  const native = binding<Record<string, (...args: unknown[]) => unknown>>();
  const samples = [undefined, null, -1, 0, 2 ** 53, 1.5, NaN, '', '/x', 'x'.repeat(5000), {}, [], Buffer.alloc(4), new ArrayBuffer(8), () => 0, 10n, Symbol('s')];
  let calls = 0;
  for (const fn of ['shmOpen', 'shmUnlink', 'fallocate', 'mmap', 'munmap']) {
    for (let i = 0; i < 400; i++) {
      const args = Array.from({ length: i % 4 }, (_, k) => samples[(i * 7 + k * 13 + (i >> 2)) % samples.length]);
      // Never create or remove a real object from the fuzz: names stay invalid or missing.
      if (fn === 'shmOpen' || fn === 'shmUnlink') args[1] = typeof args[1] === 'number' ? 0 : args[1];
      if ((fn === 'shmOpen' || fn === 'shmUnlink') && args[0] === '/x') args[0] = testName('fuzz');
      if (fn === 'fallocate' || fn === 'mmap') args[0] = typeof args[0] === 'number' ? -1 : args[0];
      try {
        native[fn](...args);
      } catch (error) {
        assert.ok(error instanceof Error);
      }
      calls++;
    }
  }
  assert.equal(calls, 2000);
  assert.throws(() => native.munmap(Buffer.alloc(8)), { name: 'TypeError', message: /not a mapping made by mmap/ });
});

test('a transfer list copies the mapped Buffer instead of moving the mapping away', async (t) => {
  const segment = created(t, 16);
  segment.buffer.write('stay');
  const { port1, port2 } = new MessageChannel();
  t.after(() => { port1.close(); port2.close(); });
  const received = new Promise<Uint8Array>((resolve) => port2.once('message', resolve));
  port1.postMessage(segment.buffer, [segment.buffer.buffer as ArrayBuffer]);
  const copy = await received;
  assert.equal(Buffer.from(copy).toString('latin1', 0, 4), 'stay');
  assert.equal(segment.buffer.length, 16, 'the mapping is still here');
  copy[0] = 0;
  assert.equal(segment.buffer.toString('latin1', 0, 4), 'stay', 'the copy is not shared');
});

test('a segment larger than a Buffer can be is refused with a RangeError, and a new one is not left behind', () => {
  const name = testName('huge');
  assert.throws(() => new SharedMemorySegment(name, { create: true, exclusive: true, size: 2 ** 33 }), { name: 'RangeError', message: /maps at most/ });
  assert.ok(!existsSync(`/dev/shm${name}`));
});
