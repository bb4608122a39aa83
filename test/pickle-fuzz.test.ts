// Random mutations of valid pickles (100 000 of them): loads either returns or
// throws UnpicklingError — never another error, a crash or a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Complex, Decimal, Deque, Dict, Float, FrozenSet, OrderedDict, PyDateTime, TimeDelta, TimeZone, UnpicklingError, dumps, loads, tuple,
} from '../lib/pickle.js';
import { python } from './helpers.js';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seeds(): Buffer[] {
  const shared = [1, 'x'];
  const values: unknown[] = [
    { id: 1, name: 'item', tags: ['a', 'b'], v: 3.5 },
    [null, true, false, 0, -1, 255, 65536, 2 ** 40, 2n ** 80n, -0, 1.5, new Float(2), 'é😀', Buffer.from('ab'), new Uint8Array([1])],
    tuple(1, tuple(2, tuple()), [shared, shared]),
    new Dict<unknown, unknown>([[1, 'a'], [tuple(1, 2), 'b'], [new FrozenSet([1]), 'c']]),
    new Set([1, 'a']), new FrozenSet([tuple(1)]),
    new OrderedDict([['a', 1]]), Object.assign(new Deque(), { maxlen: 3 }), new Complex(1, 2), new Decimal('1.5'),
    new PyDateTime(2020, 1, 2, 3, 4, 5, 6, new TimeZone(new TimeDelta(0, 3600), 'X')), new Date(0), new TimeDelta(-1),
    new Float64Array([1.5]), new Int16Array([-2]), new Error('boom'),
  ];
  const out: Buffer[] = [];
  for (const value of values) for (const protocol of [2, 3, 4, 5]) out.push(dumps(value, { protocol }));
  // Protocols 0 and 1, which Node does not write, from CPython.
  const hex = python(`
import pickle, sys, collections, datetime
v = [{'a': [1, 2.5, 'x', b'y', (1, 2), {3}, frozenset([4]), None, True, 10**20]}, collections.OrderedDict(a=1), datetime.date(2020, 1, 1)]
for p in (0, 1):
    for x in v:
        sys.stdout.write(pickle.dumps(x, p).hex() + '\\n')`).trim().split('\n');
  for (const h of hex) out.push(Buffer.from(h, 'hex'));
  return out;
}

function mutate(data: Buffer, next: () => number): Buffer {
  const copy = Buffer.from(data);
  const position = Math.floor(next() * copy.length);
  switch (Math.floor(next() * 6)) {
    case 0: copy[position] = Math.floor(next() * 256); return copy; // replace a byte
    case 1: copy[position] ^= 1 << Math.floor(next() * 8); return copy; // flip a bit
    case 2: return copy.subarray(0, position); // truncate
    case 3: return Buffer.concat([copy.subarray(0, position), copy.subarray(position + 1 + Math.floor(next() * 4))]); // delete
    case 4: return Buffer.concat([copy.subarray(0, position), Buffer.from([Math.floor(next() * 256)]), copy.subarray(position)]); // insert
    default: { // overwrite 4 bytes, often a length
      for (let i = 0; i < 4 && position + i < copy.length; i++) copy[position + i] = next() < 0.5 ? 0xff : Math.floor(next() * 256);
      return copy;
    }
  }
}

test('100 000 mutated pickles: only UnpicklingError escapes', () => {
  const corpus = seeds();
  const next = random(20261122);
  let rejected = 0;
  for (let i = 0; i < 100_000; i++) {
    let data = corpus[Math.floor(next() * corpus.length)];
    const rounds = 1 + Math.floor(next() * 3);
    for (let r = 0; r < rounds; r++) data = mutate(data, next);
    try {
      loads(data);
    } catch (error) {
      if (!(error instanceof UnpicklingError)) assert.fail(`iteration ${i}: ${String(error)} for ${data.toString('hex')}`);
      rejected++;
    }
  }
  assert.ok(rejected > 50_000, `only ${rejected} rejected: the mutations are too gentle`);
});
