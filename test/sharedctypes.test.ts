// sharedctypes: C values and arrays in shared memory, with ctypes' sizes and
// C semantics, shared with real child processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { RawArray, RawValue, SharedArray, SharedCArray, SharedCValue, Synchronized, SynchronizedArray, Value, sizeof, synchronized, type SharedLock, type Typecode } from '../lib/sharedctypes.js';
import { Lock, RLock } from '../lib/synchronize.js';
import { isReducible, reduceSymbol } from '../lib/reduction.js';
import { dumps, loads } from '../lib/pickle.js';
import { finished, python } from './helpers.js';

const fixture = new URL('./fixtures/sharedctypes-child.js', import.meta.url).pathname;
const TYPECODES: Typecode[] = ['b', 'B', 'h', 'H', 'i', 'I', 'l', 'L', 'q', 'Q', 'f', 'd', 'c', 'u'];

type Shared = SharedCValue | SharedCArray | Synchronized | SynchronizedArray;
/** The object's reduction arguments, with its lock as the lock's own reduction (what the pickle carries). */
const argsOf = (object: Shared) => object[reduceSymbol]()[2].map((arg) => (isReducible(arg) ? arg[reduceSymbol]() : arg));
const segmentOf = (object: Shared) => argsOf(object)[1] as string;

/** Closes the objects after the test, whatever happened. */
function closing<T extends Shared>(t: { after(fn: () => void): void }, object: T): T {
  t.after(() => object.close());
  return object;
}

function child(scenario: string, objects: Shared[], ...args: string[]) {
  return spawn(process.execPath, [fixture, scenario, JSON.stringify(objects.map(argsOf)), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function allSucceed(children: ReturnType<typeof child>[]): Promise<void> {
  for (const result of await Promise.all(children.map(finished))) assert.equal(result.code, 0, result.stderr);
}

test("each typecode has ctypes' size and alignment on this platform", () => {
  const expected = JSON.parse(python(`
import ctypes, json
from multiprocessing.sharedctypes import typecode_to_type as t
print(json.dumps({k: [ctypes.sizeof(v), ctypes.alignment(v)] for k, v in t.items()}))`)) as Record<string, [number, number]>;
  assert.deepEqual(Object.keys(expected).sort(), [...TYPECODES].sort());
  for (const code of TYPECODES) assert.deepEqual([sizeof(code), sizeof(code)], expected[code], code);
});

test('integers wrap around as in C, floats round to their width, as ctypes stores them', (t) => {
  const inputs = ['0', '1', '-1', '127', '128', '255', '256', '-129', '32768', '65535', '65536', '2147483647', '2147483648',
    '4294967295', '4294967296', '-2147483649', '9223372036854775807', '9223372036854775808', '18446744073709551615', '18446744073709551616'];
  const ints: Typecode[] = ['b', 'B', 'h', 'H', 'i', 'I', 'l', 'L', 'q', 'Q'];
  const expected = JSON.parse(python(`
import ctypes, json
from multiprocessing.sharedctypes import typecode_to_type as t
print(json.dumps({k: [str(t[k](int(v)).value) for v in ${JSON.stringify(inputs)}] for k in ${JSON.stringify(ints)}}))`)) as Record<string, string[]>;
  for (const code of ints) {
    const value = closing(t, RawValue(code));
    const seen = inputs.map((input) => {
      value.value = BigInt(input);
      return String(value.value);
    });
    assert.deepEqual(seen, expected[code], code);
  }
  const i = closing(t, RawValue('i', 2 ** 31 - 1));
  i.value = i.value + 1;
  assert.equal(i.value, -2147483648);
  assert.equal(closing(t, RawValue('B', 256)).value, 0);
  assert.equal(closing(t, RawValue('i', true)).value, 1);
  assert.equal(closing(t, RawValue('q', 2 ** 33)).value, 2n ** 33n);
  assert.equal(closing(t, RawValue('f', 0.1)).value, Math.fround(0.1));
  assert.equal(closing(t, RawValue('f', 1e40)).value, Infinity);
  assert.equal(closing(t, RawValue('d', 3.625)).value, 3.625);
});

test("wrong values and typecodes get ctypes' errors", (t) => {
  assert.throws(() => RawValue('x' as Typecode), { name: 'TypeError', message: 'this type has no size' });
  assert.throws(() => RawValue('i', 1.5), { name: 'TypeError', message: "'float' object cannot be interpreted as an integer" });
  assert.throws(() => RawValue('i', '1' as never), { name: 'TypeError', message: "'str' object cannot be interpreted as an integer" });
  assert.throws(() => RawValue('d', '1' as never), { name: 'TypeError', message: 'must be real number, not str' });
  assert.throws(() => RawValue('c', 256), { name: 'TypeError', message: 'one character bytes, bytearray or integer expected' });
  assert.throws(() => RawValue('c', Buffer.from('xy')), { name: 'TypeError', message: 'one character bytes, bytearray or integer expected' });
  assert.throws(() => RawValue('u', 'ab'), { name: 'TypeError', message: 'one character unicode string expected' });
  assert.throws(() => RawValue('u', 5 as never), { name: 'TypeError', message: 'unicode string expected instead of int instance' });
  assert.throws(() => RawArray('i', -1), { name: 'ValueError', message: 'Array length must be >= 0, not -1' });
  assert.throws(() => RawArray('c', 'abc' as never), { name: 'TypeError' });
  assert.throws(() => RawArray('i', [1, 'a'] as never), { name: 'TypeError', message: "'str' object cannot be interpreted as an integer" });
  const array = closing(t, RawArray('i', 3));
  assert.throws(() => array.get(3), { name: 'IndexError', message: 'invalid index' });
  assert.throws(() => array.set(-4, 1), { name: 'IndexError', message: 'invalid index' });
  assert.throws(() => array.get(0.5), { name: 'TypeError', message: 'indices must be integers' });
  assert.throws(() => array.setSlice(0, 2, [1]), { name: 'ValueError', message: 'Can only assign sequence of same size' });
  assert.throws(() => array.setSlice(0, 2, [1, 'x'] as never), { name: 'TypeError' });
  assert.deepEqual(array.getSlice(), [0, 0, 0], 'a failed slice assignment writes nothing');
  assert.throws(() => array.value, { name: 'AttributeError' });
});

test('arrays: zero-filled or initialised, indexes from the end, Python slices, iteration, and a view without copying', (t) => {
  const zeros = closing(t, RawArray('d', 4));
  assert.deepEqual([...zeros], [0, 0, 0, 0]);
  const array = closing(t, new RawArray('i', [1, 2, 3, 4, 5]));
  assert.equal(array.length, 5);
  assert.equal(array.get(-1), 5);
  array.set(-2, 40);
  assert.deepEqual(array.getSlice(1, -1), [2, 3, 40]);
  assert.deepEqual(array.getSlice(-10, 10), [1, 2, 3, 40, 5]);
  assert.deepEqual(array.getSlice(3, 1), []);
  array.setSlice(0, 2, [10, 20]);
  array.view[4] = 50;
  assert.ok(array.view instanceof Int32Array && array.view.length === 5);
  assert.deepEqual([...array], [10, 20, 3, 40, 50]);
  const prefix = [...array].map((_, i, all) => all.slice(0, i + 1).reduce((a, b) => a + b));
  array.setSlice(undefined, undefined, prefix);
  assert.deepEqual(array.getSlice(), [10, 30, 33, 73, 123]);
  const big = closing(t, RawArray('Q', [-1, 5n]));
  assert.deepEqual(big.getSlice(), [2n ** 64n - 1n, 5n]);
  const empty = closing(t, RawArray('d', 0));
  assert.deepEqual([...empty], []);
});

test("'c' and 'u' arrays: bytes and text, value up to the first NUL, raw bytes", (t) => {
  const chars = closing(t, RawArray('c', 5));
  chars.value = Buffer.from('hi');
  assert.deepEqual(chars.raw, Buffer.from('hi\0\0\0'));
  assert.deepEqual(chars.value, Buffer.from('hi'));
  chars.raw = Buffer.from('abcde');
  chars.value = Buffer.from('xy');
  assert.deepEqual(chars.raw, Buffer.from('xy\0de'));
  assert.deepEqual(chars.get(0), Buffer.from('x'));
  assert.deepEqual(chars.getSlice(3), Buffer.from('de'));
  assert.throws(() => { chars.value = Buffer.from('toolong'); }, { name: 'ValueError', message: 'byte string too long' });
  assert.throws(() => { chars.value = 'x' as never; }, { name: 'TypeError', message: 'bytes expected instead of str instance' });
  const text = closing(t, RawArray('u', 'héllo'));
  assert.equal(text.value, 'héllo');
  assert.equal(text.getSlice(1, 3), 'él');
  text.value = 'ok';
  assert.equal(text.value, 'ok');
  assert.equal(text.get(3), 'l');
  const value = closing(t, RawValue('c', Buffer.from('x')));
  assert.deepEqual(value.value, Buffer.from('x'));
});

test("a child process overwrites values it was given and the parent sees them (CPython's test_value)", async (t) => {
  const values = [
    closing(t, RawValue('i', 4343)), closing(t, RawValue('d', 3.625)), closing(t, RawValue('h', -232)),
    closing(t, RawValue('q', 2n ** 33n)), closing(t, RawValue('c', Buffer.from('x'))), closing(t, RawValue('u', 'é')),
  ];
  await allSucceed([child('overwrite', values, JSON.stringify([24234, -4.25, 234, `${2n ** 34n}n`, 'y', 'ü']))]);
  assert.deepEqual(values.map((v) => v.value), [24234, -4.25, 234, 2n ** 34n, Buffer.from('y'), 'ü']);
});

test('Atomics over the view of an Int32 value are exact across 4 processes', async (t) => {
  const counter = closing(t, RawValue('i'));
  await allSucceed(Array.from({ length: 4 }, () => child('atomic-add', [counter], '20000')));
  assert.equal(counter.value, 80_000);
});

test("Array('d', 1_000_000) filled by 4 processes in stripes", async (t) => {
  const array = closing(t, SharedArray('d', 1_000_000));
  await allSucceed(Array.from({ length: 4 }, (_, i) => child('stripe', [array], String(i), '4')));
  const view = array.view;
  const stripe = 250_000;
  for (let i = 0; i < view.length; i++) {
    if (view[i] !== Math.floor(i / stripe) * 1e6 + i) assert.fail(`element ${i} is ${view[i]}`);
  }
});

test('the creator removes the segment on close; an attached process never does', async (t) => {
  const value = RawValue('i', 7);
  const name = segmentOf(value);
  t.after(() => value.close());
  assert.ok(existsSync(`/dev/shm${name}`));
  await allSucceed([child('overwrite', [value], '[8]')]);
  assert.ok(existsSync(`/dev/shm${name}`), 'the child closed its mapping only');
  const view = value.view;
  value.close();
  value.close();
  assert.ok(!existsSync(`/dev/shm${name}`));
  assert.equal(view.length, 0, 'views of a closed value are empty, not dangling');
});

test('a value dropped without close() is removed once collected, and at exit at the latest', () => {
  const module = new URL('../lib/sharedctypes.js', import.meta.url).href;
  const script = `
    import { RawValue, RawArray } from ${JSON.stringify(module)};
    import { reduceSymbol } from ${JSON.stringify(new URL('../lib/reduction.js', import.meta.url).href)};
    import { existsSync } from 'node:fs';
    const names = [];
    for (let i = 0; i < 200; i++) names.push(RawValue('i', i)[reduceSymbol]()[2][1]);
    for (let round = 0; round < 20 && names.some((name) => existsSync('/dev/shm' + name)); round++) {
      globalThis.gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const kept = RawArray('d', 10);
    console.log(names.filter((name) => existsSync('/dev/shm' + name)).length, kept[reduceSymbol]()[2][1]);`;
  const result = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const [left, kept] = result.stdout.trim().split(' ');
  assert.equal(left, '0', 'collected values released their segments');
  assert.ok(!existsSync(`/dev/shm${kept}`), 'a value alive at exit is removed at exit');
});

test("a killed creator's values and generated SharedMemory blocks are removed by the resource tracker", async () => {
  const script = `
    import { RawArray } from ${JSON.stringify(new URL('../lib/sharedctypes.js', import.meta.url).href)};
    import { SharedMemory } from ${JSON.stringify(new URL('../lib/shared_memory.js', import.meta.url).href)};
    import { reduceSymbol } from ${JSON.stringify(new URL('../lib/reduction.js', import.meta.url).href)};
    const array = RawArray('d', 100);
    const shm = new SharedMemory({ create: true, size: 100 });
    console.log(array[reduceSymbol]()[2][1], '/' + shm.name);
    setInterval(() => {}, 1000);`;
  const creator = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const names = await new Promise<string[]>((resolve) => creator.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim().split(' '))));
  assert.ok(names.every((name) => existsSync(`/dev/shm${name}`)));
  creator.kill('SIGKILL');
  await finished(creator);
  for (let waited = 0; waited < 2000 && names.some((name) => existsSync(`/dev/shm${name}`)); waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.deepEqual(names.filter((name) => existsSync(`/dev/shm${name}`)), []);
});

test('8 processes each add 1 to a Value(\'i\') 10 000 times under get_lock(): the total is exact', async (t) => {
  const counter = closing(t, new Value('i', 0));
  await allSucceed(Array.from({ length: 8 }, () => child('locked-add', [counter], '10000')));
  assert.equal(counter.value, 80_000);
});

test('Value and Array: a new RLock by default, none with lock: false, or the lock given', (t) => {
  const value = closing(t, Value('d', 1.5));
  assert.ok(value instanceof Synchronized);
  assert.ok(value.get_lock() instanceof RLock);
  assert.ok(value.get_obj() instanceof SharedCValue);
  assert.equal(value.getLock, value.get_lock);
  assert.equal(value.getObj, value.get_obj);
  assert.equal(String(value), '<Synchronized wrapper for c_double(1.5)>');
  const raw = closing(t, Value('i', 3, { lock: false }));
  assert.ok(raw instanceof SharedCValue);
  assert.equal((raw as unknown as { get_lock?: unknown }).get_lock, undefined);
  const lock = new Lock();
  t.after(() => lock.close());
  const guarded = closing(t, new Value('i', 1, { lock }));
  const array = closing(t, new SharedArray('i', [1, 2], { lock }));
  assert.equal(guarded.get_lock(), lock);
  assert.equal(array.get_lock(), lock);
  assert.ok(array instanceof SynchronizedArray);
  assert.ok(closing(t, SharedArray('c', 3, { lock: false })) instanceof SharedCArray);
  assert.equal(closing(t, Value('i', 1, { lock: null })).get_lock().constructor, RLock);
  assert.throws(() => synchronized(guarded as never), { name: 'AssertionError', message: 'object already synchronized' });
  assert.throws(() => Value('i', 0, { lock: 5 as never }), { name: 'AttributeError', message: "5 has no method 'acquire'" });
  assert.throws(() => SharedArray('i', 2, { lock: {} as never }), { name: 'AttributeError' });
});

test('a synchronized object takes its lock for every access; acquire and release pass through', (t) => {
  let held = 0;
  let taken = 0;
  const counting: SharedLock = {
    acquire: () => { held++; taken++; return true; },
    release: () => { held--; },
  };
  const value = closing(t, Value('i', 0, { lock: counting }));
  const array = closing(t, SharedArray('c', Buffer.from('hello'), { lock: counting }));
  taken = 0;
  value.value = 5;
  assert.equal(value.value, 5);
  array.set(0, Buffer.from('j'));
  assert.deepEqual(array.get(0), Buffer.from('j'));
  assert.deepEqual(array.getSlice(1, 3), Buffer.from('el'));
  array.setSlice(1, 3, Buffer.from('EL'));
  assert.deepEqual(array.value, Buffer.from('jELlo'));
  assert.deepEqual(array.raw, Buffer.from('jELlo'));
  assert.deepEqual([...array].length, 5);
  assert.equal(taken, 13);
  assert.equal(held, 0, 'every access released what it took');
  assert.equal(value.acquire(), true);
  assert.equal(held, 1);
  value.release();
  assert.equal(held, 0);
  assert.equal(value.view[0], 5, 'the view reads without the lock');
});

test('increment() adds under the lock with C wrap-around and returns the new value', (t) => {
  const int = closing(t, Value('i', 2 ** 31 - 2));
  assert.equal(int.increment(), 2 ** 31 - 1);
  assert.equal(int.increment(), -(2 ** 31));
  const big = closing(t, Value('Q', 0n));
  assert.equal(big.increment(-1), 2n ** 64n - 1n);
  const double = closing(t, Value('d', 0.5));
  assert.equal(double.increment(0.25), 0.75);
  assert.throws(() => closing(t, Value('c')).increment(), { name: 'TypeError' });
});

test('a Value crosses to a child with its lock: the child holds the very same RLock', async (t) => {
  const value = closing(t, Value('q', 2n ** 33n));
  await allSucceed([child('overwrite', [value], JSON.stringify([`${2n ** 34n}n`]))]);
  assert.equal(value.value, 2n ** 34n);
  const [module, name, args] = value[reduceSymbol]();
  assert.deepEqual([module, name, args.slice(0, 3)], ['posix_multiprocessing', 'rebuild_ctype', ['q', segmentOf(value), null]]);
  assert.equal(args[3], value.get_lock());
});

test('the bytes are the C data ctypes sees: CPython maps a Value and an Array by segment name', (t) => {
  const value = closing(t, Value('q', -(2n ** 40n)));
  const array = closing(t, SharedArray('d', [0.5, -1.25, 1e300]));
  const out = python(`
import ctypes
from multiprocessing import shared_memory, resource_tracker
def attach(name):
    shm = shared_memory.SharedMemory(name)
    resource_tracker.unregister(shm._name, 'shared_memory')
    return shm
v, a = attach(${JSON.stringify(value.get_obj().name.slice(1))}), attach(${JSON.stringify(array.get_obj().name.slice(1))})
q = ctypes.c_longlong.from_buffer(v.buf)
d = (ctypes.c_double * 3).from_buffer(a.buf)
print(q.value, list(d))
q.value = 7
d[1] = 2.5
del q, d
v.close(); a.close()`);
  assert.equal(out.trim(), `${-(2n ** 40n)} [0.5, -1.25, 1e+300]`);
  assert.equal(value.value, 7n);
  assert.equal(array.get(1), 2.5);
});

test('pickled, a raw value or array comes back mapping the same memory', (t) => {
  const value = closing(t, RawValue('h', -5));
  const array = closing(t, RawArray('u', 'abc'));
  const [valueCopy, arrayCopy] = loads(dumps([value, array])) as [SharedCValue<'h'>, SharedCArray<'u'>];
  t.after(() => { valueCopy.close(); arrayCopy.close(); });
  assert.ok(valueCopy instanceof SharedCValue && arrayCopy instanceof SharedCArray);
  valueCopy.value = 300;
  arrayCopy.set(1, 'ß');
  assert.equal(value.value, 300);
  assert.equal(array.value, 'aßc');
  assert.notEqual(valueCopy.view, value.view, 'a mapping of its own');
});
