// SharedMemory and ShareableList against CPython's multiprocessing.shared_memory, both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SharedMemory, ShareableList } from '../lib/shared_memory.js';
import { reduceSymbol } from '../lib/reduction.js';
import { Float, dumps, loads } from '../lib/pickle.js';
import { finished, python, pythonProcess, testName } from './helpers.js';

/** A CPython-style name (no leading slash) that the leak check recognises as this test's. */
const pyName = (label: string) => testName(label).slice(1);

/** Removes a block after the test, whatever happened. */
function cleanup(t: { after(fn: () => void): void }, name: string): void {
  t.after(() => {
    try { SharedMemory.unlink(name); } catch { /* unlinked by the test */ }
  });
}

// Python 3.11's resource tracker destroys every block a process attached to
// when it exits; the interop snippets unregister right after attaching.
const PY = `
import sys
from multiprocessing import shared_memory, resource_tracker
def attach(name):
    shm = shared_memory.SharedMemory(name)
    resource_tracker.unregister(shm._name, 'shared_memory')
    return shm
def attach_list(name):
    sl = shared_memory.ShareableList(name=name)
    resource_tracker.unregister(sl.shm._name, 'shared_memory')
    return sl
`;

test("SharedMemory validates its arguments with CPython's errors", () => {
  assert.throws(() => new SharedMemory({ create: true, size: -1 }), { name: 'ValueError', message: "'size' must be a positive integer" });
  assert.throws(() => new SharedMemory({ create: true }), { name: 'ValueError', message: "'size' must be a positive number different from zero" });
  assert.throws(() => new SharedMemory({ create: true, size: 0 }), { name: 'ValueError', message: "'size' must be a positive number different from zero" });
  assert.throws(() => new SharedMemory(), { name: 'ValueError', message: "'name' can only be None if create=True" });
  assert.throws(() => new SharedMemory({ name: '/psm_x' }), { name: 'TypeError', message: /no leading '\/'/ });
  assert.throws(() => new SharedMemory({ name: 'a/b' }), { name: 'TypeError' });
});

test('a generated block is psm_ + 8 hex digits, zero-filled, exactly the size asked; attaching ignores size', (t) => {
  const shm = new SharedMemory({ create: true, size: 5000 });
  cleanup(t, shm.name);
  t.after(() => shm.close());
  assert.match(shm.name, /^psm_[0-9a-f]{8}$/);
  assert.equal(shm.size, 5000);
  assert.ok(Buffer.isBuffer(shm.buf) && shm.buf.length === 5000 && shm.buf.every((b) => b === 0));
  assert.equal(String(shm), `SharedMemory('${shm.name}', size=5000)`);
  shm.buf[0] = 42;
  const other = new SharedMemory({ name: shm.name, size: 20 * 5000 });
  assert.equal(other.size, 5000);
  assert.equal(other.buf[0], 42);
  other.buf[1] = 43;
  assert.equal(shm.buf[1], 43);
  other.close();
  other.close();
  assert.throws(() => other.buf, { name: 'ValueError', message: /is closed/ });
  assert.deepEqual(shm[reduceSymbol](), ['multiprocessing.shared_memory', 'SharedMemory', [shm.name, false, 5000]]);
});

test('create on an existing name, attach to a missing one, unlink twice: the OS errors', (t) => {
  const name = pyName('exists');
  const shm = new SharedMemory({ name, create: true, size: 10 });
  cleanup(t, name);
  assert.throws(() => new SharedMemory({ name, create: true, size: 10 }), { code: 'EEXIST', errno: 17 });
  shm.close();
  shm.unlink(); // a closed handle can still unlink
  assert.throws(() => shm.unlink(), { code: 'ENOENT', errno: 2 });
  assert.throws(() => new SharedMemory({ name }), { code: 'ENOENT' });
});

test('mappings stay usable after unlink', (t) => {
  const shm = new SharedMemory({ create: true, size: 16 });
  t.after(() => shm.close());
  shm.unlink();
  shm.buf.write('still here');
  assert.equal(shm.buf.toString('latin1', 0, 10), 'still here');
  assert.ok(!existsSync(`/dev/shm/${shm.name}`));
});

test('CPython attaches to a block Node created and sees its bytes; Node sees what CPython writes', (t) => {
  const shm = new SharedMemory({ create: true, size: 64 });
  cleanup(t, shm.name);
  t.after(() => shm.close());
  shm.buf.write('howdy');
  const out = python(`${PY}
shm = attach(${JSON.stringify(shm.name)})
print(shm.size, bytes(shm.buf[:5]).decode())
shm.buf[5:10] = b'HELLO'
shm.close()`);
  assert.equal(out.trim(), '64 howdy');
  assert.equal(shm.buf.toString('latin1', 0, 10), 'howdyHELLO');
});

test('Node attaches to a block CPython created, by the name CPython reports', async (t) => {
  const peer = pythonProcess(`
import sys
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(create=True, size=100)
shm.buf[:5] = b'howdy'
print(shm.name, flush=True)
sys.stdin.readline()
print(bytes(shm.buf[5:10]).decode(), flush=True)
shm.close()
shm.unlink()`);
  const done = finished(peer);
  t.after(() => peer.kill());
  const name = await new Promise<string>((resolve) => peer.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())));
  const shm = new SharedMemory({ name });
  assert.equal(shm.size, 100);
  assert.equal(shm.buf.toString('latin1', 0, 5), 'howdy');
  shm.buf.write('HELLO', 5);
  shm.close();
  peer.stdin.end('\n');
  const { code, stdout, stderr } = await done;
  assert.equal(code, 0, stderr);
  assert.equal(stdout.split('\n')[1], 'HELLO');
});

function nodeChild(code: string): string {
  const module = new URL('../lib/shared_memory.js', import.meta.url).href;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', `import { SharedMemory } from ${JSON.stringify(module)};\n${code}`], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

test('a generated block is removed when its creator exits (unless track: false); a named one stays; an attacher never removes one', (t) => {
  const generated = nodeChild('console.log(new SharedMemory({ create: true, size: 10 }).name)');
  cleanup(t, generated);
  assert.match(generated, /^psm_/);
  assert.ok(!existsSync(`/dev/shm/${generated}`), 'the creator removed its generated block at exit');
  const untracked = nodeChild('console.log(new SharedMemory({ create: true, size: 10, track: false }).name)');
  cleanup(t, untracked);
  assert.ok(existsSync(`/dev/shm/${untracked}`), 'track: false leaves the block to whoever unlinks it');
  const name = pyName('persist');
  cleanup(t, name);
  nodeChild(`new SharedMemory({ name: ${JSON.stringify(name)}, create: true, size: 10 }).buf[0] = 7`);
  assert.ok(existsSync(`/dev/shm/${name}`), 'a named block outlives its creator');
  nodeChild(`new SharedMemory({ name: ${JSON.stringify(name)} }).buf[1] = 8`);
  const shm = new SharedMemory({ name });
  t.after(() => shm.close());
  assert.deepEqual([...shm.buf.subarray(0, 2)], [7, 8]);
});

const SAMPLE = "['howdy', b'HoWdY', -273.154, 100, None, True, 42]";
const sample = (): (string | Buffer | number | null | boolean)[] => ['howdy', Buffer.from('HoWdY'), -273.154, 100, null, true, 42];

test("a ShareableList made by Node is byte for byte the block CPython makes for the same list", (t) => {
  const list = new ShareableList(sample());
  cleanup(t, list.shm.name);
  t.after(() => list.close());
  const expected = python(`${PY}
sl = shared_memory.ShareableList(${SAMPLE})
print(sl.shm.size, bytes(sl.shm.buf).hex())
sl.shm.close(); sl.shm.unlink()`).trim().split(' ');
  assert.equal(list.shm.size, Number(expected[0]));
  assert.equal(list.shm.buf.toString('hex'), expected[1]);
  assert.equal(list.format, '8s8sdqxxxxxx?xxxxxxxx?q');
});

test('CPython reads and rewrites a ShareableList Node made; Node reads the changes', (t) => {
  const list = new ShareableList(sample());
  cleanup(t, list.shm.name);
  t.after(() => list.close());
  const out = python(`${PY}
sl = attach_list(${JSON.stringify(list.shm.name)})
print(list(sl))
sl[0] = 'hi'
sl[2] = 'str now'
sl[3] = 2.75
sl[4] = -9
sl[5] = None
sl[6] = True
print(sl.format)
sl.shm.close()`);
  assert.equal(out.split('\n')[0], "['howdy', b'HoWdY', -273.154, 100, None, True, 42]");
  assert.deepEqual([...list], ['hi', Buffer.from('HoWdY'), 'str now', 2.75, -9, null, true]);
  assert.equal(list.format, out.split('\n')[1]);
});

test('Node reads and rewrites a ShareableList CPython made; CPython reads the changes', async (t) => {
  const peer = pythonProcess(`${PY}
sl = shared_memory.ShareableList(${SAMPLE}, name=${JSON.stringify(pyName('pylist'))})
print(sl.shm.name, flush=True)
sys.stdin.readline()
print(list(sl), sl.format, flush=True)
sl.shm.close()
sl.shm.unlink()`);
  const done = finished(peer);
  t.after(() => peer.kill());
  const name = await new Promise<string>((resolve) => peer.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())));
  cleanup(t, name);
  const list = new ShareableList(null, { name });
  assert.equal(list.length, 7);
  assert.deepEqual([...list], sample());
  list.set(0, Buffer.from('bytes'));
  list.set(1, 2n ** 62n);
  list.set(2, false);
  list.set(4, 'some');
  list.set(-1, 0.5);
  list.close();
  peer.stdin.end('\n');
  const { code, stdout, stderr } = await done;
  assert.equal(code, 0, stderr);
  assert.equal(stdout.split('\n')[1], "[b'bytes', 4611686018427387904, False, 100, 'some', True, 0.5] 8sqxxxxxxx?q8sxxxxxxx?d");
});

test("ShareableList's errors and lookups are CPython's", (t) => {
  const list = new ShareableList(sample());
  cleanup(t, list.shm.name);
  t.after(() => list.close());
  assert.throws(() => list.get(7), { name: 'IndexError', message: 'index out of range' });
  assert.throws(() => list.get(-8), { name: 'IndexError', message: 'index out of range' });
  assert.throws(() => list.set(7, 1), { name: 'IndexError', message: 'assignment index out of range' });
  assert.equal(list.get(-1), 42);
  assert.throws(() => list.index('100'), { name: 'ValueError', message: "'100' not in this container" });
  assert.equal(list.index(100), 3);
  list.set(3, 42);
  assert.equal(list.count(42), 2);
  assert.equal(list.count(1), 1, 'True == 1, as in Python');
  list.set(4, 'some');
  assert.equal(list.format, '8s8sdq8sxxxxxxx?q');
  assert.throws(() => list.set(0, 'a string that is too long'), { name: 'ValueError', message: 'bytes/str item exceeds available storage' });
  assert.throws(() => list.set(1, Buffer.alloc(9)), { name: 'ValueError', message: 'bytes/str item exceeds available storage' });
  assert.equal(list.get(0), 'howdy', 'nothing spilled');
  assert.equal(list.get(2), -273.154);
  list.set(0, 'encodés'); // 8 UTF-8 bytes fit an 8-byte slot
  assert.equal(list.get(0), 'encodés');
  assert.throws(() => list.set(0, 'encodées'), { name: 'ValueError' });
  assert.throws(() => list.set(0, [1] as never), { name: 'TypeError', message: /not an array/ });
  assert.throws(() => new ShareableList([2n ** 63n]), { name: 'RangeError', message: /argument out of range/ });
  assert.throws(() => list.get(1.5), { name: 'TypeError' });
});

test('an empty ShareableList; big ints, an integral float, and non-ASCII text CPython would truncate', (t) => {
  const empty = new ShareableList();
  cleanup(t, empty.shm.name);
  t.after(() => empty.close());
  assert.equal(empty.length, 0);
  assert.equal(empty.format, '');
  assert.equal(empty.shm.size, 16);
  const text = 'ストリング';  // 5 code points, 15 UTF-8 bytes
  const wide = new ShareableList([text, 2n ** 60n, Number.MAX_SAFE_INTEGER + 2, new Float(2)]);
  cleanup(t, wide.shm.name);
  t.after(() => wide.close());
  assert.deepEqual([...wide], [text, 2n ** 60n, Number.MAX_SAFE_INTEGER + 2, 2]);
  assert.equal(wide.count(2), 1);
  assert.equal(python(`${PY}
sl = attach_list(${JSON.stringify(wide.shm.name)})
print(sl[0] == ${JSON.stringify(text)}, sl[1] == 2**60, repr(sl[3]), sl.format)
sl.shm.close()`).trim(), 'True True 2.0 16sqdd');
});

test('pickled, a SharedMemory is CPython\'s own pickle: each side unpickles it attached to the same block', (t) => {
  const shm = new SharedMemory({ create: true, size: 32 });
  cleanup(t, shm.name);
  t.after(() => shm.close());
  shm.buf.write('pickled');
  const out = python(`${PY}
import pickle
shm = pickle.loads(bytes.fromhex(${JSON.stringify(dumps(shm).toString('hex'))}))
resource_tracker.unregister(shm._name, 'shared_memory')
print(shm.name, shm.size, bytes(shm.buf[:7]).decode())
shm.buf[7:9] = b'!!'
print(pickle.dumps(shm, protocol=4).hex())
shm.close()`).trim().split('\n');
  assert.equal(out[0], `${shm.name} 32 pickled`);
  assert.equal(shm.buf.toString('latin1', 0, 9), 'pickled!!');
  const back = loads(Buffer.from(out[1], 'hex')) as SharedMemory;
  t.after(() => back.close());
  assert.ok(back instanceof SharedMemory);
  assert.equal(back.name, shm.name);
  assert.equal(back.buf.toString('latin1', 0, 9), 'pickled!!');
});

test('pickled, a ShareableList comes back attached to the same list', (t) => {
  const list = new ShareableList([1, 'two', null]);
  cleanup(t, list.shm.name);
  t.after(() => list.close());
  const copy = loads(dumps(list)) as ShareableList;
  t.after(() => copy.close());
  assert.ok(copy instanceof ShareableList);
  copy.set(0, 10);
  assert.deepEqual([...list], [10, 'two', null]);
});
