// What `loads` makes of a Python dict: a plain object when every key is a str,
// a Dict otherwise (promoted when the first other key arrives, even after
// references to it were taken), and always a Dict with { dicts: 'Dict' }.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dict, OrderedDict, UnpicklingError, dumps, loads, tuple } from '../lib/pickle.js';
import { python } from './helpers.js';

/** CPython's pickles of `expr` at protocols 0–5, C pickler and pickle._Pickler. */
function pickled(expr: string, setup = ''): Buffer[] {
  const out = python(`
import pickle, io, sys
${setup}
value = ${expr}
out = []
for p in range(6):
    out.append(pickle.dumps(value, p).hex())
    f = io.BytesIO()
    pickle._Pickler(f, p).dump(value)
    out.append(f.getvalue().hex())
sys.stdout.write(' '.join(out))`);
  return out.split(' ').map((hex) => Buffer.from(hex, 'hex'));
}

test('a dict of str keys loads as a plain object, its keys in insertion order (array indices first, as JS orders them)', () => {
  for (const data of pickled("{'id': 1, 'name': 'item', 'tags': ['a', 'b'], 'v': 3.5, 'nested': {'z': None, 'a': {}}, 'k10': 10, '10': 'ten', '2': 'two'}")) {
    const value = loads(data) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.deepEqual(Object.keys(value), ['2', '10', 'id', 'name', 'tags', 'v', 'nested', 'k10']);
    assert.deepEqual(value, { id: 1, name: 'item', tags: ['a', 'b'], v: 3.5, nested: { z: null, a: {} }, k10: 10, 10: 'ten', 2: 'two' });
  }
  const small = { id: 1, name: 'item', tags: ['a', 'b'], v: 3.5 };
  assert.deepEqual(loads(dumps(small)), small);
  assert.deepEqual(loads(dumps(new Map([['a', 1]]))), { a: 1 }, 'a str-keyed Map crosses as a dict, so it comes back as an object');
});

test('a dict with any key that is not a str loads as a Dict, in Python order, with Python key equality', () => {
  for (const data of pickled("{'b': 1, '1': 'one', 2: 'two', (1, 2): 't', frozenset([3]): 'f', b'k': 'bytes', None: 'none'}")) {
    const value = loads(data) as Dict;
    assert.ok(value instanceof Dict);
    assert.deepEqual([...value.keys()].slice(0, 3), ['b', '1', 2]);
    assert.equal(value.get(2), 'two');
    assert.equal(value.get(tuple(1, 2)), 't');
    assert.equal(value.get(Buffer.from('k')), 'bytes');
    assert.equal(value.get(null), 'none');
  }
  for (const data of pickled('{1: {"inner": True}, True: "kept first key"}')) {
    const value = loads(data) as Dict;
    assert.deepEqual([...value], [[1, 'kept first key']]);
  }
  const [intKeyed, strKeyed] = loads(dumps([new Dict([[1, 'a']]), new Dict([['a', 1]])])) as unknown[];
  assert.ok(intKeyed instanceof Dict);
  assert.deepEqual(strKeyed, { a: 1 }, 'a JS Dict of str keys comes back as an object too');
});

test('a dict promoted to Dict after references to it were taken leaves no plain copy behind', () => {
  const setup = "d = {'a': 1}\nd['self'] = d\nd['l'] = [d, {'in': d}, (d,)]\nd[3] = 'n'";
  for (const data of pickled('[d, d]', setup)) {
    const [first, second] = loads(data) as [Dict, Dict];
    assert.ok(first instanceof Dict);
    assert.equal(first, second);
    assert.deepEqual([...first.keys()], ['a', 'self', 'l', 3]);
    assert.equal(first.get('self'), first);
    const list = first.get('l') as [Dict, { in: Dict }, Dict[]];
    assert.equal(list[0], first);
    assert.equal(list[1].in, first);
    assert.equal(list[2][0], first);
  }
  // A hand-made pickle: d = {'a': 1}; l = [d]; then d[2] = 3 through the memo; the result is (l, d).
  const later = Buffer.from('\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s]q\x01h\x00a0h\x00K\x02K\x03s0h\x01h\x00\x86.', 'latin1');
  const [list, dict] = loads(later) as [Dict[], Dict];
  assert.ok(dict instanceof Dict);
  assert.equal(list[0], dict);
  assert.deepEqual([...dict], [['a', 1], [2, 3]]);
});

test('a promoted dict keeps its insertion order although JS had moved its array-index keys first', () => {
  // CPython writes 1000 items per SETITEMS: the int key arrives in the second batch, after '5' and '0'.
  const setup = "d = {'b': 0, '5': 1}\nd.update((f'k{i}', i) for i in range(997))\nd['0'] = 'zero'\nd[7] = 'int'";
  for (const data of pickled('d', setup)) {
    const value = loads(data) as Dict;
    assert.ok(value instanceof Dict);
    const keys = [...value.keys()];
    assert.deepEqual(keys.slice(0, 3), ['b', '5', 'k0']);
    assert.deepEqual(keys.slice(-2), ['0', 7]);
    assert.equal(keys.length, 1001);
  }
});

test("a '__proto__' key is an own property, never the prototype", () => {
  const all = pickled("{'__proto__': {'polluted': 1}, 'x': 1}");
  for (const data of all) {
    const value = loads(data) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.ok(Object.hasOwn(value, '__proto__'));
    assert.deepEqual(Object.keys(value), ['__proto__', 'x']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  }
  assert.deepEqual(dumps(loads(all[0])), all[8], 'written back byte for byte (all[8]: protocol 4, C pickler)');
});

test("keys named like Object.prototype's ('constructor', 'toString') are plain own properties and are written back", () => {
  const all = pickled("{'constructor': 1, 'toString': 'x', 'hasOwnProperty': None, 'valueOf': [{'constructor': 'inner'}]}");
  for (const data of all) {
    const value = loads(data) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.deepEqual(Object.keys(value), ['constructor', 'toString', 'hasOwnProperty', 'valueOf']);
    assert.equal(value.constructor, 1);
  }
  assert.deepEqual(dumps(loads(all[0])), all[8]);
});

test("{ dicts: 'Dict' } loads every dict as a Dict; OrderedDict stays an OrderedDict either way", () => {
  for (const data of pickled("{'a': {'b': 1}, 'o': collections.OrderedDict(z=1)}", 'import collections')) {
    const exact = loads(data, { dicts: 'Dict' }) as Dict;
    assert.ok(exact instanceof Dict && exact.get('a') instanceof Dict);
    assert.ok(exact.get('o') instanceof OrderedDict);
    const plain = loads(data) as { a: unknown; o: unknown };
    assert.deepEqual(plain.a, { b: 1 });
    assert.ok(plain.o instanceof OrderedDict);
  }
  assert.deepEqual(dumps(loads(dumps({ '10': 1, a: 2 }), { dicts: 'Dict' })), dumps({ '10': 1, a: 2 }));
});

test('a plain dict is unhashable as a key, as a dict is in Python', () => {
  for (const dicts of ['object', 'Dict'] as const) {
    assert.throws(() => loads(Buffer.from('\x80\x02}}K\x01s.', 'latin1'), { dicts }), (error: Error) => error instanceof UnpicklingError && /unhashable type: '(dict|Dict)'/.test(error.message));
  }
});
