// User types cross both ways through registerClass; the library's own objects
// through [reduceSymbol]() and registerReconstructor; nothing else is resolved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Global, UnpicklingError, dumps, loads, registerClass, registerReconstructor, tuple } from '../lib/pickle.js';
import { reduceSymbol } from '../lib/reduction.js';
import { python } from './helpers.js';

class Point {
  constructor(public x = 0, public y = 0) {}
  norm(): number { return Math.hypot(this.x, this.y); }
}
registerClass('__main__', 'Point', Point);

class Money {
  constructor(readonly cents: bigint, readonly currency: string) {}
}
registerClass('shop', 'money', {
  type: Money,
  reduce: (m: Money) => [m.cents, m.currency],
  reconstruct: (cents: number | bigint, currency: string) => new Money(BigInt(cents), currency),
});

class Stateful {
  seen: unknown = null;
  __setstate__(state: unknown): void { this.seen = state; }
  __getstate__(): unknown { return tuple('custom', 1); }
}
registerClass('__main__', 'Stateful', Stateful);

const made: unknown[][] = [];
registerReconstructor('posix_multiprocessing', 'rebuild_test_queue', (...args: unknown[]) => {
  made.push(args);
  return { rebuilt: args };
});

class FakeQueue {
  constructor(readonly name: string) {}
  [reduceSymbol](): [string, string, unknown[]] { return ['posix_multiprocessing', 'rebuild_test_queue', [this.name, 8192]]; }
}

const pythonClasses = `
import pickle, sys
class Point:
    def __init__(self, x=0, y=0):
        self.x, self.y = x, y
    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)
def rebuild_test_queue(name, size):
    return ('queue', name, size)
`;

test('a registered class crosses both ways, byte for byte with CPython', () => {
  const fromPython = Buffer.from(python(`${pythonClasses}
sys.stdout.write(pickle.dumps([Point(1, 2.5), Point()], 4).hex())`), 'hex');
  const points = loads(fromPython) as Point[];
  assert.ok(points[0] instanceof Point && points[1] instanceof Point);
  assert.equal(points[0].x, 1);
  assert.equal(points[0].y, 2.5);
  assert.equal(points[0].norm(), Math.hypot(1, 2.5));
  assert.deepEqual(dumps(points), fromPython);
  const back = python(`${pythonClasses}
data = bytes.fromhex(sys.stdin.read())
print(pickle.loads(data) == [Point(3, 4), Point(0, 0)])`, Buffer.from(dumps([new Point(3, 4), new Point(0, 0)]).toString('hex')));
  assert.equal(back.trim(), 'True');
  // REDUCE with arguments calls the constructor.
  const reduced = loads(Buffer.from(python(`${pythonClasses}
Point.__reduce__ = lambda self: (Point, (self.x, self.y))
sys.stdout.write(pickle.dumps(Point(5, 6), 2).hex())`), 'hex'));
  assert.ok(reduced instanceof Point && reduced.x === 5 && reduced.y === 6);
});

test('{ reduce, reconstruct, type } writes the global, the arguments and REDUCE', () => {
  const data = dumps(new Money(250n, 'EUR'));
  const expected = python(`
import pickle, sys, types
shop = types.ModuleType('shop')
sys.modules['shop'] = shop
def money(cents, currency): return ('money', cents, currency)
money.__module__ = 'shop'
shop.money = money
class M:
    def __reduce__(self): return (money, (250, 'EUR'))
sys.stdout.write(pickle.dumps(M(), 4).hex() + ' ' + repr(pickle.loads(bytes.fromhex(sys.stdin.read()))))`, Buffer.from(data.toString('hex')));
  const hex = expected.slice(0, expected.indexOf(' '));
  const loaded = expected.slice(expected.indexOf(' ') + 1);
  assert.equal(data.toString('hex'), hex);
  assert.equal(loaded, "('money', 250, 'EUR')");
  const back = loads(data) as Money;
  assert.ok(back instanceof Money && back.cents === 250n && back.currency === 'EUR');
});

test('__getstate__ and __setstate__ are used when a registered class has them', () => {
  const back = loads(dumps(new Stateful())) as Stateful;
  assert.ok(back instanceof Stateful);
  assert.deepEqual([...(back.seen as unknown[])], ['custom', 1]);
});

test('[reduceSymbol]() objects are written as global + args + REDUCE and rebuilt by the registered reconstructor', () => {
  const data = dumps({ q: new FakeQueue('/jobs') });
  made.length = 0;
  const back = loads(data) as { q: unknown };
  assert.deepEqual(made, [['/jobs', 8192]]);
  assert.deepEqual(back.q, { rebuilt: ['/jobs', 8192] });
  const inPython = python(`${pythonClasses}
import types
mod = types.ModuleType('posix_multiprocessing')
mod.rebuild_test_queue = rebuild_test_queue
rebuild_test_queue.__module__ = 'posix_multiprocessing'
sys.modules['posix_multiprocessing'] = mod
print(pickle.loads(bytes.fromhex(sys.stdin.read())))`, Buffer.from(data.toString('hex')));
  assert.equal(inPython.trim(), "{'q': ('queue', '/jobs', 8192)}");
});

test('unknown classes are rejected with their name; the codec\'s own globals cannot be replaced', () => {
  const data = Buffer.from(python(`${pythonClasses}
class Other: pass
sys.stdout.write(pickle.dumps(Other(), 4).hex())`), 'hex');
  assert.throws(() => loads(data), (error: Error) => error instanceof UnpicklingError && /global '__main__\.Other' is not allowed/.test(error.message));
  assert.throws(() => registerReconstructor('builtins', 'set', () => 1), /cannot be replaced/);
  // A pickled class itself (not an instance) loads as a Global and is written back as the same global.
  const cls = loads(Buffer.from(python(`${pythonClasses}
sys.stdout.write(pickle.dumps(Point, 4).hex())`), 'hex'));
  assert.ok(cls instanceof Global && String(cls) === '__main__.Point');
});

test('Python 2 era opcodes: INST, OBJ, copy_reg._reconstructor, STRING/BINSTRING, __builtin__ spellings', () => {
  const inst = loads(Buffer.from("(i__main__\nPoint\np0\n(dp1\nS'x'\np2\nI7\nsS'y'\nF2.5\nsb.", 'latin1')) as Point;
  assert.ok(inst instanceof Point && inst.x === 7 && inst.y === 2.5);
  const obj = loads(Buffer.from('\x80\x01(c__main__\nPoint\nK\x01K\x02o.', 'latin1')) as Point;
  assert.ok(obj instanceof Point && obj.x === 1 && obj.y === 2);
  const reconstructed = loads(Buffer.from("ccopy_reg\n_reconstructor\n(c__main__\nPoint\nc__builtin__\nobject\nNtR(dS'x'\nI3\nsb.", 'latin1')) as Point;
  assert.ok(reconstructed instanceof Point && reconstructed.x === 3);
  assert.deepEqual(loads(Buffer.from("c__builtin__\nset\n((lI1\naI2\natR.", 'latin1')), new Set([1, 2]));
  assert.equal(loads(Buffer.from("S'a\\'b\\x41\\n'\n.", 'latin1')), "a'bA\n");
  assert.equal(loads(Buffer.from('U\x03\xe9ab.', 'latin1'), { encoding: 'latin1' }), 'éab');
  assert.deepEqual(loads(Buffer.from('U\x03\xe9ab.', 'latin1'), { encoding: 'bytes' }), Buffer.from('\xe9ab', 'latin1'));
  assert.throws(() => loads(Buffer.from('U\x03\xe9ab.', 'latin1')), UnpicklingError);
  assert.equal(loads(Buffer.from('V\\u20ac\\U0001f600x\n.', 'latin1')), '€😀x');
  assert.deepEqual(loads(Buffer.from('(I01\nI00\nL12345678901234567890L\nF-0.0\nt.', 'latin1')), tuple(true, false, 12345678901234567890n, -0));
});

test('NEWOBJ_EX (a class with __getnewargs_ex__) builds a registered class', () => {
  const data = Buffer.from(python(`${pythonClasses}
Point.__getnewargs_ex__ = lambda self: ((self.x,), {'y': self.y})
sys.stdout.write(pickle.dumps(Point(1, 2), 4).hex())`), 'hex');
  assert.ok(data.includes(0x92), 'the pickle uses NEWOBJ_EX');
  const point = loads(data) as Point;
  assert.ok(point instanceof Point && point.x === 1 && point.y === 2);
});
