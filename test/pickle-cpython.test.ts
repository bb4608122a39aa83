// The codec against CPython 3.11: CPython's pickles (protocols 0–5, C pickler
// and pickle._Pickler) of every value in test/fixtures/pickle_values.py load in
// Node, and Node writes each back byte for byte as CPython's C pickler does
// (protocols 2–5); CPython then loads Node's pickles and compares type for type.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { dumps, loads } from '../lib/pickle.js';
import { python } from './helpers.js';

const fixtures = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

const generate = `
import sys, json, base64, pickle, io
sys.path.insert(0, ${JSON.stringify(fixtures)})
from pickle_values import VALUES
out = {}
for name, value in VALUES.items():
    entry = {}
    for p in range(6):
        entry['c%d' % p] = base64.b64encode(pickle.dumps(value, p)).decode()
        f = io.BytesIO()
        pickle._Pickler(f, p).dump(value)
        entry['py%d' % p] = base64.b64encode(f.getvalue()).decode()
    out[name] = entry
json.dump(out, sys.stdout)
`;

const check = `
import sys, json, base64, pickle
sys.path.insert(0, ${JSON.stringify(fixtures)})
from pickle_values import VALUES, same
bad = []
given = json.load(sys.stdin)
for name, pickles in given['back'].items():
    for p, data in pickles.items():
        try:
            value = pickle.loads(base64.b64decode(data))
        except Exception as e:
            bad.append(f'{name} protocol {p}: {e!r}')
            continue
        expected = VALUES[name]
        if 'fold' in name and int(p) < 4:
            expected = expected.replace(fold=0)  # protocols 2 and 3 do not carry fold, in CPython either
        if not (value == expected if name in given['reordered'] else same(value, expected)):
            bad.append(f'{name} protocol {p}: {value!r:.200}')
print(json.dumps(bad))
`;

// Loaded with the default mapping, a str-keyed dict is a plain object, whose
// array-index keys ('10', '2') JavaScript puts first: written back, such a dict
// is equal in Python but in another order. With { dicts: 'Dict' } every value
// comes back byte for byte.
const REORDERED = new Set(['dict order']);

for (const dicts of ['Dict', 'object'] as const) {
  test(`CPython pickles of every value load in Node and are written back byte for byte (dicts: '${dicts}')`, () => {
    const pickles = JSON.parse(python(generate)) as Record<string, Record<string, string>>;
    const names = Object.keys(pickles);
    assert.ok(names.length >= 150, `only ${names.length} values`);
    const read = (data: string): unknown => loads(Buffer.from(data, 'base64'), { dicts });
    const mismatches: string[] = [];
    const back: Record<string, Record<string, string>> = {};
    for (const name of names) {
      const expected = pickles[name];
      const value = read(expected.c4);
      back[name] = {};
      for (let p = 2; p <= 5; p++) {
        const ours = dumps(value, { protocol: p });
        back[name][p] = ours.toString('base64');
        if (ours.toString('base64') !== expected[`c${p}`]) mismatches.push(`${name} (protocol ${p})`);
      }
      // Every protocol and both CPython picklers give the same value (fold exists from protocol 4 on).
      for (const key of Object.keys(expected)) {
        const p = Number(key.at(-1));
        const reference = name.includes('fold') && p < 4 ? dumps(read(expected[`c${p}`])).toString('base64') : dumps(value).toString('base64');
        if (dumps(read(expected[key])).toString('base64') !== reference) mismatches.push(`${name} loaded from ${key}`);
      }
    }
    const reordered = dicts === 'Dict' ? [] : [...REORDERED].flatMap((name) => [2, 3, 4, 5].map((p) => `${name} (protocol ${p})`));
    assert.deepEqual(mismatches, reordered);
    const bad = JSON.parse(python(check, Buffer.from(JSON.stringify({ back, reordered: dicts === 'Dict' ? [] : [...REORDERED] })))) as string[];
    assert.deepEqual(bad, []);
  });
}
