// Hostile input: loads never calls a global outside the allow-list, and every
// malformed stream ends in an UnpicklingError naming the byte offset — no
// crash, hang, stack overflow or allocation sized by a declared length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UnpicklingError, dumps, loads, tuple, Dict, Float, FrozenSet } from '../lib/pickle.js';
import { python } from './helpers.js';

function rejects(data: Buffer | string, pattern?: RegExp): UnpicklingError {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  let caught: unknown;
  try {
    loads(bytes);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof UnpicklingError, `expected UnpicklingError, got ${String(caught)}`);
  assert.match(caught.message, /\(at byte \d+\)$/);
  if (pattern) assert.match(caught.message, pattern);
  return caught;
}

test('REDUCE payloads naming os.system, builtins.eval and friends are rejected before anything is called', () => {
  rejects("cos\nsystem\n(S'echo pwned'\ntR.", /global 'os\.system' is not allowed.*at byte 0/);
  rejects("cposix\nsystem\n(S'id'\ntR.", /posix\.system/);
  rejects("c__builtin__\neval\n(S'1+1'\ntR.", /builtins|__builtin__/);
  const fromPython = python(`
import pickle, sys, os, builtins, subprocess
class A:
    def __reduce__(self): return (builtins.eval, ("__import__('os').system('echo pwned')",))
class B:
    def __reduce__(self): return (os.system, ('echo pwned',))
class C:
    def __reduce__(self): return (subprocess.Popen, (['true'],))
class D:
    def __reduce__(self): return (__import__, ('os',))
for obj in (A(), B(), C(), D()):
    for p in range(6):
        sys.stdout.write(pickle.dumps(obj, p).hex() + '\\n')`).trim().split('\n');
  assert.equal(fromPython.length, 24);
  for (const hex of fromPython) rejects(Buffer.from(hex, 'hex'), /global '((builtins|__builtin__)\.(eval|__import__)|posix\.system|os\.system|(subprocess|commands)\.Popen)' is not allowed/);
  rejects('\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93.', /global 'os.system' is not allowed.*at byte 25/);
  rejects("ccopy_reg\n_reconstructor\n(c__builtin__\nobject\nc__builtin__\nlist\nNtR.", /builtins\.list|base object/);
  rejects("c__builtin__\ngetattr\n(c__builtin__\nset\nS'__init__'\ntR.", /getattr is allowed only for zoneinfo/);
  rejects("c__builtin__\n__import__\n.", /__import__/);
});

test('truncated streams', () => {
  const value = { a: [1, 2.5, 'x'.repeat(300), Buffer.alloc(70_000, 1)], b: tuple(2n ** 100n, null), c: new Set([1]) };
  for (const protocol of [2, 3, 4, 5]) {
    const data = dumps(value, { protocol });
    for (let end = 0; end < data.length; end += end < 400 ? 1 : 997) rejects(data.subarray(0, end));
  }
  rejects('', /Ran out of input/);
});

test('unknown opcodes and unsupported features', () => {
  rejects('\xff', /invalid load key, '\\xff'/);
  rejects('\x80\x04\x99', /invalid load key, '\\x99'.*at byte 2/);
  rejects('\x80\x06N.', /unsupported pickle protocol: 6/);
  rejects('\x80\x02\x82\x01.', /extension code 1/);
  rejects('P1\n.', /persistent/);
  rejects('N\x97.', /out-of-band/);
});

test('huge declared lengths fail at once without allocating', () => {
  const cases = [
    '\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x10\x00abc.', // BINUNICODE8 2^52
    '\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xffabc.', // BINBYTES8 2^64-1
    '\x80\x05\x96\x00\x00\x00\x00\x01\x00\x00\x00abc.', // BYTEARRAY8 2^32
    '\x80\x03B\xff\xff\xff\xff.', // BINBYTES 4 GiB
    'X\xff\xff\xff\x7fabc.', // BINUNICODE 2 GiB
    'T\xff\xff\xff\x7f.', // BINSTRING
    '\x80\x02\x8b\xff\xff\xff\x7f.', // LONG4 2 GiB
    '\x80\x02\x8b\xff\xff\xff\xff.', // LONG4 negative
    '\x80\x04\x95\x00\x00\x00\x00\x00\x01\x00\x00N.', // FRAME 2^40
    '\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00N.', // FRAME longer than the data
  ];
  const before = process.memoryUsage().rss;
  for (const data of cases) rejects(data);
  assert.ok(process.memoryUsage().rss - before < 64 * 1024 * 1024, 'no large allocation');
  rejects("c__builtin__\nbytearray\n(I2000000000\ntR.", /not allowed|iterable/);
});

test('memo lies', () => {
  rejects('\x80\x02h\x05.', /Memo value not found at index 5/);
  rejects('\x80\x02j\x00\x00\x00\x01.', /Memo value not found/);
  rejects('g7\n.', /Memo value not found at index 7/);
  rejects('gx\n.', /invalid memo index/);
  rejects('\x80\x04\x94.', /underflow/);
  assert.equal(loads(Buffer.from('\x80\x02Nr\xff\xff\xff\xff0j\xff\xff\xff\xff.', 'latin1')), null);
});

test('stack and mark abuse', () => {
  rejects('.', /underflow/);
  rejects('0.', /could not find MARK/);
  rejects('1.', /could not find MARK/);
  rejects('(Ns.', /underflow/);
  rejects('}(Nu.', /odd number/);
  rejects('(Nd.', /odd number/);
  rejects('Na.', /underflow/);
  rejects('K\x01K\x02a.', /has no attribute 'append'/);
  rejects(')K\x01a.', /tuple/);
  rejects('}]K\x01s.', /unhashable type: 'Array'/);
  rejects('K\x01)R.', /not callable/);
  rejects('\x80\x02K\x01)\x81.', /NEWOBJ needs a class/);
  rejects('K\x01}b.', /cannot set the state/);
  rejects('\x80\x04K\x01K\x02\x93.', /STACK_GLOBAL requires str/);
  rejects('\x80\x04(K\x01\x91(K\x02\x90.', /FrozenSet object has no attribute 'add'/);
  rejects('\x80\x04\x8f(]\x90.', /unhashable/);
  const polluted = loads(Buffer.from('\x80\x04\x8c\x08builtins\x8c\x0aValueError\x93)R}\x8c\x09__proto__}sb.', 'latin1')) as Error;
  assert.equal(Object.getPrototypeOf(polluted), Error.prototype, 'a __proto__ key in BUILD state is an own property, not a prototype');
  assert.ok(Object.hasOwn(polluted, '__proto__'));
});

test('100 000-deep nesting loads without recursion; deep keys fail cleanly', () => {
  const depth = 100_000;
  const nested = Buffer.concat([Buffer.from('\x80\x04', 'latin1'), Buffer.alloc(depth, 0x5d), Buffer.alloc(depth - 1, 0x61), Buffer.from('.')]);
  let value = loads(nested) as unknown[];
  let levels = 1;
  while (value.length > 0) {
    value = value[0] as unknown[];
    levels++;
  }
  assert.equal(levels, depth);
  const tuples = Buffer.concat([Buffer.from('}', 'latin1'), Buffer.alloc(depth, 0x28), Buffer.from(')', 'latin1'), Buffer.alloc(depth, 0x74), Buffer.from('Ns.', 'latin1')]);
  rejects(tuples, /too deeply nested/);
  rejects(Buffer.alloc(depth, 0x28), /truncated/);
});

test('wide shared tuple keys cannot make hashing hang', () => {
  // t0 = (1,)*100; t(n+1) = (t(n),)*100 via the memo; a dict keyed by t5 would mean 10^12 items to hash.
  let data = '\x80\x02}(' + 'K\x01'.repeat(100) + 'tq\x00';
  for (let level = 0; level < 5; level++) data += `0(${`h${String.fromCharCode(level)}`.repeat(100)}tq${String.fromCharCode(level + 1)}`;
  data += 'Ns.';
  const started = Date.now();
  rejects(data, /too large/);
  assert.ok(Date.now() - started < 10_000, 'hashing stopped at its budget');
  const ok = loads(dumps(new Dict<unknown, unknown>([[tuple(1, tuple(2, new FrozenSet([3]))), 'v'], [new Float(2), 'w']]))) as Dict;
  assert.equal(ok.get(tuple(1, tuple(2, new FrozenSet([3])))), 'v');
});

test('memoized data reused over and over cannot make loads quadratic', () => {
  // A 20 000-key dict, then BUILD with it as the state of 100 000 fresh objects: 2·10^9 property writes unbounded.
  const entries: string[] = [];
  for (let i = 0; i < 20_000; i++) entries.push(`\x8c\x06k${String(i).padStart(5, '0')}K\x01`);
  const build = Buffer.from(`\x80\x04}\x94(${entries.join('')}u0${'}h\x00b0'.repeat(100_000)}N.`, 'latin1');
  const reduce = Buffer.from(`\x80\x04](${'K\x01'.repeat(20_000)}e\x94${'\x8c\x08builtins\x8c\x03set\x93h\x00\x85R0'.repeat(20_000)}N.`, 'latin1');
  for (const data of [build, reduce]) {
    const started = Date.now();
    rejects(data, /far more work/);
    assert.ok(Date.now() - started < 10_000);
  }
  // Ordinary large pickles stay well inside the budget.
  const big = { rows: Array.from({ length: 20_000 }, (_, i) => ({ id: i, tags: new Set([i]), when: new Date(i) })) };
  assert.equal((loads(dumps(big)) as typeof big).rows.length, 20_000);
});
