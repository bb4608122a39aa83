// The documented mapping (docs/pickle.md): JS values on the way out, as CPython
// reads them, and the wrapper types that keep Python's distinctions in JS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import {
  Complex, Decimal, Deque, Dict, Float, FrozenSet, OrderedDict, PickleBuffer, PyDateTime, TimeDelta, TimeZone, Tuple, ZoneInfo,
  dumps, isTuple, loads, toTuple, tuple, PicklingError, Global,
} from '../lib/pickle.js';
import { python } from './helpers.js';

const fixtures = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

// [name, JS value, the Python expression it must load as, whether CPython's pickle.dumps(expr) has the same bytes]
const cases: [string, unknown, string, boolean][] = [
  ['null', null, 'None', true],
  ['undefined', undefined, 'None', true],
  ['int', 1, '1', true],
  ['negative int', -300, '-300', true],
  ['float', 1.5, '1.5', true],
  ['integral Float', new Float(1), '1.0', true],
  ['-0', -0, '-0.0', true],
  ['NaN', NaN, "float('nan')", true],
  ['Infinity', -Infinity, "float('-inf')", true],
  ['unsafe integer number is a float', 2 ** 60, 'float(2**60)', true],
  ['bigint small', 5n, '5', true],
  ['bigint big', 2n ** 70n, '2**70', true],
  ['bigint negative', -(2n ** 64n), '-2**64', true],
  ['booleans', [true, false], '[True, False]', true],
  ['string', 'héllo 😀', "'héllo 😀'", true],
  ['lone surrogate', 'a\ud800b', "'a\\ud800b'", true],
  ['array', [1, 'a', [2]], "[1, 'a', [2]]", true],
  ['tuple', tuple(1, 'a'), "(1, 'a')", true],
  ['empty tuple', tuple(), '()', true],
  ['plain object', { id: 1, name: 'item', tags: ['a', 'b'], v: 3.5 }, "{'id': 1, 'name': 'item', 'tags': ['a', 'b'], 'v': 3.5}", true],
  ['null-prototype object', Object.assign(Object.create(null), { a: 1 }), "{'a': 1}", true],
  ['undefined property', { a: undefined }, "{'a': None}", true],
  ['Map with non-string keys', new Map<unknown, unknown>([[1, 'a'], [tuple(1, 2), 'b'], ['k', null]]), "{1: 'a', (1, 2): 'b', 'k': None}", true],
  ['Dict', new Dict([[true, 1]]), '{True: 1}', true],
  ['Set', new Set([1, 2]), '{1, 2}', true],
  ['FrozenSet', new FrozenSet(['a']), "frozenset({'a'})", true],
  ['Buffer', Buffer.from('abc'), "b'abc'", true],
  ['Uint8Array is bytearray', new Uint8Array([1, 2]), "bytearray(b'\\x01\\x02')", true],
  ['ArrayBuffer is bytes', new Uint8Array([7]).buffer, "b'\\x07'", true],
  ['Float64Array', new Float64Array([1.5, 2]), "array.array('d', [1.5, 2.0])", true],
  ['Int32Array', new Int32Array([-1, 7]), "array.array('i', [-1, 7])", true],
  ['BigInt64Array', new BigInt64Array([2n ** 62n]), "array.array('q', [2**62])", true],
  ['Uint8ClampedArray', new Uint8ClampedArray([255]), "array.array('B', [255])", true],
  ['Date', new Date(Date.UTC(2024, 1, 29, 12, 30, 15, 250)), 'datetime.datetime(2024, 2, 29, 12, 30, 15, 250000, tzinfo=datetime.timezone.utc)', true],
  ['PyDateTime', new PyDateTime(2020, 1, 2, 3, 4, 5, 6, new TimeZone(new TimeDelta(0, -3600), 'W')), "datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=-1), 'W'))", true],
  ['ZoneInfo', new PyDateTime(2021, 10, 31, 2, 30, 0, 0, ZoneInfo.of('Europe/Paris'), 1), "datetime.datetime(2021, 10, 31, 2, 30, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'), fold=1)", true],
  ['TimeDelta', new TimeDelta(0, -1), 'datetime.timedelta(seconds=-1)', true],
  ['Decimal', new Decimal('-1.25'), "decimal.Decimal('-1.25')", true],
  ['Complex', new Complex(1, -2), 'complex(1, -2)', true],
  ['OrderedDict', new OrderedDict([['b', 1], ['a', 2]]), "collections.OrderedDict([('b', 1), ('a', 2)])", true],
  ['Deque', Object.assign(toDeque([1, 2]), { maxlen: 3 }), 'collections.deque([1, 2], maxlen=3)', true],
  ['Error', Object.assign(new TypeError('bad'), { code: 7 }), "_err(TypeError('bad'), code=7)", true],
  ['custom Error', new (class MyError extends Error {})('x'), "Exception('x')", true],
  ['Global', new Global('builtins', 'len'), 'len', true],
  ['shared references', (() => { const a = [1]; return [a, a]; })(), '_shared()', true],
  ['cycle', (() => { const a: unknown[] = []; a.push(a); return a; })(), '_cycle()', true],
  ['PickleBuffer in band (protocol 5)', new PickleBuffer(new Uint8Array([1])), "bytearray(b'\\x01')", false],
];

function toDeque(items: unknown[]): Deque {
  const deque = new Deque();
  deque.push(...items);
  return deque;
}

test('JS values load in CPython as the documented Python values', () => {
  const payload = cases.map(([name, value, expr, exact]) => [name, dumps(value, { protocol: name.includes('protocol 5') ? 5 : 4 }).toString('base64'), expr, exact]);
  const script = `
import sys, json, base64, pickle, array, collections, datetime, decimal, zoneinfo
sys.path.insert(0, ${JSON.stringify(fixtures)})
from pickle_values import same
def _err(e, **attrs):
    e.__dict__.update(attrs)
    return e
def _shared():
    a = [1]
    return [a, a]
def _cycle():
    a = []
    a.append(a)
    return a
bad = []
for name, data, expr, exact in json.load(sys.stdin):
    data = base64.b64decode(data)
    expected = eval(expr)
    reference = pickle.dumps(expected, 4)  # before same(): reading an exception's __dict__ creates it
    value = pickle.loads(data)
    if not same(value, expected) and not (value is expected):
        bad.append(f'{name}: got {value!r:.100}, expected {expected!r:.100}')
    elif exact and reference != data:
        bad.append(f'{name}: bytes differ from pickle.dumps({expr}): {data.hex()} {reference.hex()}')
print(json.dumps(bad))
`;
  assert.deepEqual(JSON.parse(python(script, Buffer.from(JSON.stringify(payload)))), []);
});

test('Python values come back as the types that keep their distinctions', () => {
  const value = loads(Buffer.from(python(`
import pickle, sys, collections, decimal, datetime
v = [1, 1.0, True, -0.0, 2**53, 2**53 + 1, (1,), b'b', bytearray(b'a'), {1}, frozenset([1]), None, 'x',
     collections.OrderedDict(a=1), collections.deque([1], maxlen=2), 1+2j, decimal.Decimal('1.1'),
     datetime.datetime(2020, 1, 2, 3, 4, 5, 6), {(1, 2): 'tuple key', 1: 'int key'}]
sys.stdout.write(pickle.dumps(v, 4).hex())`), 'hex')) as unknown[];
  assert.equal(value[0], 1);
  assert.ok(value[1] instanceof Float && value[1].value === 1);
  assert.equal(value[2], true);
  assert.ok(Object.is(value[3], -0));
  assert.equal(value[4], 2n ** 53n, 'beyond Number.MAX_SAFE_INTEGER: bigint');
  assert.equal(value[5], 2n ** 53n + 1n);
  assert.ok(isTuple(value[6]) && Array.isArray(value[6]));
  assert.ok(Buffer.isBuffer(value[7]));
  assert.ok(value[8] instanceof Uint8Array && !Buffer.isBuffer(value[8]));
  assert.ok(value[9] instanceof Set && !(value[9] instanceof FrozenSet));
  assert.ok(value[10] instanceof FrozenSet);
  assert.equal(value[11], null);
  assert.ok(value[13] instanceof OrderedDict);
  assert.ok(value[14] instanceof Deque && value[14].maxlen === 2);
  assert.deepEqual([(value[15] as Complex).real, (value[15] as Complex).imag], [1, 2]);
  assert.equal(String(value[16]), '1.1');
  const when = value[17] as PyDateTime;
  assert.deepEqual([when.year, when.month, when.day, when.hour, when.microsecond, when.tzinfo], [2020, 1, 2, 3, 6, null]);
  const dict = value[18] as Dict;
  assert.equal(dict.get(tuple(1, 2)), 'tuple key');
  assert.equal(dict.get(1), 'int key');
  assert.equal(dict.get(true), 'int key', 'True == 1 as a key');
  assert.equal(dict.get(new Float(1)), 'int key', '1.0 == 1 as a key');
});

test('Dict keeps the first key and its insertion order, with Python key equality', () => {
  const d = new Dict<unknown, unknown>();
  d.set(1, 'a');
  d.set(true, 'b');
  d.set(new Float(1), 'c');
  d.set(tuple(1, tuple(2)), 'd');
  d.set(new FrozenSet([2, 1]), 'e');
  assert.equal(d.size, 3);
  assert.deepEqual([...d.keys()].slice(0, 1), [1]);
  assert.equal(d.get(1), 'c');
  assert.equal(d.get(tuple(true, tuple(2))), 'd');
  assert.equal(d.get(new FrozenSet([1, 2])), 'e');
  assert.ok(d.delete(tuple(1, tuple(2))));
  assert.equal(d.size, 2);
  const first = new Dict<unknown, unknown>([[true, 1]]);
  first.set(1, 2);
  assert.deepEqual([...first], [[true, 2]]);
  assert.deepEqual(dumps(first), dumps(new Map([[true, 2]])));
});

test('tuple helpers', () => {
  const t = tuple(1, 2, 3);
  assert.ok(t instanceof Tuple && isTuple(t) && !isTuple([1, 2, 3]));
  assert.equal(t.length, 3);
  assert.ok(!isTuple(t.map((x) => x)), 'map gives a list');
  assert.ok(isTuple(toTuple(new Set(['a']))));
  assert.ok(isTuple(loads(dumps(tuple()))));
  assert.deepEqual([...(loads(dumps(tuple(1, tuple(2)))) as unknown[])], [1, tuple(2)]);
});

test('the same JS value written twice is one memo entry; cycles survive a round trip', () => {
  const shared = { a: 1 };
  const back = loads(dumps([shared, shared])) as Dict[];
  assert.equal(back[0], back[1]);
  const cycle: unknown[] = [];
  cycle.push(cycle, tuple(cycle));
  const again = loads(dumps(cycle)) as unknown[];
  assert.equal(again[0], again);
  assert.equal((again[1] as unknown[])[0], again);
});

test('protocol 5 out-of-band buffers go through buffer_callback and come back from buffers', () => {
  const data = new Uint8Array([1, 2, 3]);
  const kept: PickleBuffer[] = [];
  const stream = dumps([new PickleBuffer(data), new PickleBuffer(Buffer.from('ro'), true)], { protocol: 5, buffer_callback: (b) => { kept.push(b); return false; } });
  assert.equal(kept.length, 2);
  const back = loads(stream, { buffers: kept.map((b) => b.raw()) }) as unknown[];
  assert.equal(back[0], data, 'the same memory, not a copy');
  assert.ok(Buffer.isBuffer(back[1]), 'READONLY_BUFFER gives bytes');
  const fromPython = python(`
import pickle, sys
bufs = []
data = pickle.dumps([pickle.PickleBuffer(bytearray(b'xyz')), 1], protocol=5, buffer_callback=bufs.append)
sys.stdout.write(data.hex() + ' ' + bytes(bufs[0]).hex())`).split(' ');
  const loaded = loads(Buffer.from(fromPython[0], 'hex'), { buffers: [new PickleBuffer(Buffer.from(fromPython[1], 'hex'))] }) as unknown[];
  assert.deepEqual(Buffer.from(loaded[0] as Uint8Array).toString(), 'xyz');
});

test('dumps names the path to what cannot be pickled', () => {
  const obj = { tasks: [1, 2, 3, { fn: () => 1 }] };
  assert.throws(() => dumps(obj), (error: Error) => error instanceof PicklingError && /function.* at obj\.tasks\[3\]\.fn$/.test(error.message));
  assert.throws(() => dumps(new Map([['k', [Symbol('s')]]])), (error: Error) => error instanceof PicklingError && /'symbol' object at obj\.k\[0\]/.test(error.message));
  assert.throws(() => dumps({ 'a b': new (class Widget {})() }), /cannot pickle 'Widget' object .* at obj\["a b"\]/);
  assert.throws(() => dumps(1, { protocol: 1 }), RangeError);
});

test('deep JS nesting fails with a clear PicklingError, not a stack overflow', () => {
  let deep: unknown[] = [];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.throws(() => dumps(deep), (error: Error) => error instanceof PicklingError && /nested/.test(error.message));
  let ok: unknown[] = [];
  for (let i = 0; i < 500; i++) ok = [ok];
  assert.ok(Array.isArray(loads(dumps(ok))));
});

test('PyDateTime.toDate honours fixed offsets and zones (DST and fold)', () => {
  const paris = ZoneInfo.of('Europe/Paris');
  assert.equal(ZoneInfo.of('Europe/Paris'), paris, 'one instance per key');
  assert.equal(new PyDateTime(2021, 3, 28, 3, 30, 0, 0, paris).toDate().toISOString(), '2021-03-28T01:30:00.000Z');
  assert.equal(new PyDateTime(2021, 10, 31, 2, 30, 0, 0, paris).toDate().toISOString(), '2021-10-31T00:30:00.000Z');
  assert.equal(new PyDateTime(2021, 10, 31, 2, 30, 0, 0, paris, 1).toDate().toISOString(), '2021-10-31T01:30:00.000Z');
  assert.equal(new PyDateTime(2020, 1, 1, 12, 0, 0, 0, new TimeZone(new TimeDelta(0, -5 * 3600))).toDate().toISOString(), '2020-01-01T17:00:00.000Z');
  const now = new Date(Date.UTC(2024, 5, 1, 8, 9, 10, 11));
  assert.equal(PyDateTime.fromDate(now).toDate().getTime(), now.getTime());
});
