// Which globals a pickle may name. `loads` resolves a GLOBAL/STACK_GLOBAL only
// through this table: a fixed allow-list of side-effect-free reconstructors
// for the types of the mapping, plus what the application registered. Nothing
// is ever imported or looked up by name otherwise.
import {
  Complex, Decimal, Deque, Dict, FrozenSet, Float, OrderedDict, PyDate, PyDateTime, PyTime, TimeDelta, TimeZone, Tuple, ZoneInfo,
  isPlainObject, type TzInfo,
} from './types.js';

/**
 * A reference to a Python global (`module.name`): what GLOBAL/STACK_GLOBAL
 * push, what `loads` returns for a pickled class, and what `dumps` writes back
 * as the same global.
 */
export class Global {
  constructor(
    readonly module: string,
    readonly name: string,
    /** REDUCE, INST, OBJ: `callable(*args)`. */
    readonly call?: (args: unknown[]) => unknown,
    /** NEWOBJ, NEWOBJ_EX: `cls.__new__(cls, *args, **kwargs)`. */
    readonly create?: (args: unknown[], kwargs: Map<unknown, unknown> | null) => unknown,
  ) {}
  toString(): string { return `${this.module}.${this.name}`; }
}

/** How a registered class crosses both ways. */
export interface ClassSpec<T = unknown> {
  /** Called for REDUCE with the pickled arguments (Python's `callable(*args)`). */
  reconstruct?(...args: any[]): T;
  /** The arguments to write for an instance (written as global + args + REDUCE). */
  reduce?(obj: T): unknown[];
  /** The class whose instances `reduce` writes (needed for the way out). */
  type?: abstract new (...args: any[]) => T;
}

type AnyClass = abstract new (...args: any[]) => unknown;

const table = new Map<string, Global>();
const builtinKeys = new Set<string>();

/** How `dumps` writes instances of a registered class. */
export interface WriteEntry {
  readonly module: string;
  readonly name: string;
  readonly reduce?: (obj: any) => unknown[];
}
export const writers = new Map<Function, WriteEntry>();

function key(module: string, name: string): string {
  return `${module}\n${name}`;
}

export function lookupGlobal(module: string, name: string): Global | undefined {
  return table.get(key(module, name)) ?? table.get(key(...renamed(module, name)));
}

// Python 2 spellings that protocols 0–2 write (_compat_pickle's mapping, for the names we resolve).
function renamed(module: string, name: string): [string, string] {
  if (module === '__builtin__' || module === 'exceptions') return ['builtins', name];
  if (module === 'copy_reg') return ['copyreg', name];
  return [module, name];
}

function define(spec: { module: string; name: string; call?: Global['call']; create?: Global['create'] }): void {
  const entry = new Global(spec.module, spec.name, spec.call, spec.create);
  table.set(key(entry.module, entry.name), entry);
  builtinKeys.add(key(entry.module, entry.name));
}

/**
 * Lets pickles call `fn(...args)` for the global `module.name` (REDUCE). The
 * rest of the library registers the reconstructors its objects name in
 * `[reduceSymbol]()`.
 */
export function registerReconstructor(module: string, name: string, fn: (...args: any[]) => unknown): void {
  checkFree(module, name);
  table.set(key(module, name), new Global(module, name, (args) => fn(...args)));
}

/**
 * Registers a user type under Python's `module.name`, both ways.
 * - With a class: `loads` builds instances for REDUCE (`new cls(...args)`) and
 *   NEWOBJ (an instance made without calling the constructor, filled by BUILD
 *   through `__setstate__(state)` if the class has one, else by assigning the
 *   state's keys); `dumps` writes an instance as CPython writes a plain
 *   object: the class, NEWOBJ, and its own enumerable properties (or
 *   `__getstate__()`) as BUILD state.
 * - With `{ reconstruct, reduce, type }`: REDUCE calls `reconstruct(...args)`;
 *   `dumps` writes an instance of `type` as the global, `reduce(obj)` as the
 *   arguments, and REDUCE.
 */
export function registerClass<T>(module: string, name: string, cls: (new (...args: any[]) => T) | ClassSpec<T>): void {
  checkFree(module, name);
  if (typeof cls === 'function') {
    const ctor = cls as new (...args: unknown[]) => T;
    table.set(key(module, name), new Global(module, name, (args) => new ctor(...args), () => Object.create(ctor.prototype)));
    writers.set(ctor, { module, name });
    return;
  }
  const { reconstruct, reduce, type } = cls;
  if (reconstruct) table.set(key(module, name), new Global(module, name, (args) => reconstruct(...args)));
  if (type) {
    if (!reduce) throw new TypeError(`registerClass(${module}, ${name}): a type needs a reduce(obj) to be written`);
    writers.set(type, { module, name, reduce });
  }
}

function checkFree(module: string, name: string): void {
  if (builtinKeys.has(key(module, name))) throw new TypeError(`${module}.${name} is one of the codec's own globals and cannot be replaced`);
}

// ---- the allow-list --------------------------------------------------------

export function number(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value instanceof Float) return value.value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  throw new TypeError(`expected a number, got ${describe(value)}`);
}

function int(value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  throw new TypeError(`expected an int, got ${describe(value)}`);
}

export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}

function sequence(value: unknown): Iterable<unknown> {
  if (Array.isArray(value) || value instanceof Set || ArrayBuffer.isView(value) || typeof value === 'string') return value as Iterable<unknown>;
  if (value instanceof Map) return value.keys();
  if (isPlainObject(value)) return Object.keys(value);
  throw new TypeError(`expected an iterable, got ${describe(value)}`);
}

/** The items of a dict argument (a Map's, a Dict's or a plain object's); null for anything else. */
function dictEntries(value: unknown): Iterable<readonly [unknown, unknown]> | null {
  if (value instanceof Map) return value;
  if (isPlainObject(value)) return Object.entries(value);
  return null;
}

/** str → bytes with one of the codecs CPython's pickles name. */
function encode(text: unknown, encoding: unknown = 'utf-8'): Buffer {
  if (typeof text !== 'string') throw new TypeError(`expected a str, got ${describe(text)}`);
  switch (String(encoding).toLowerCase().replace('_', '-')) {
    case 'latin1': case 'latin-1': case 'iso-8859-1': case 'l1': {
      for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) throw new TypeError('latin-1 codec can\'t encode a character above U+00FF');
      return Buffer.from(text, 'latin1');
    }
    case 'utf-8': case 'utf8': return Buffer.from(text, 'utf8');
    case 'ascii': {
      for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) throw new TypeError('ascii codec can\'t encode a non-ASCII character');
      return Buffer.from(text, 'latin1');
    }
    default: throw new TypeError(`encoding ${String(encoding)} is not supported`);
  }
}

/** bytes(...) / bytearray(...) arguments: (), (bytes), (list of ints), (str, encoding); never a size (no allocation a pickle merely declares). */
function bytesFrom(args: unknown[]): Buffer {
  if (args.length === 0) return Buffer.alloc(0);
  const [source, encoding] = args;
  if (typeof source === 'string') return encode(source, encoding);
  if (ArrayBuffer.isView(source)) return Buffer.from(source.buffer, source.byteOffset, source.byteLength).subarray();
  const out: number[] = [];
  for (const item of sequence(source)) {
    const byte = int(item);
    if (byte < 0 || byte > 255) throw new TypeError('bytes must be in range(0, 256)');
    out.push(byte);
  }
  return Buffer.from(out);
}

/** A datetime state given as bytes (protocol 3+) or a latin-1 str (protocol 0–2 from Python 2). */
function state(value: unknown, size: number): Uint8Array {
  const bytes = typeof value === 'string' ? encode(value, 'latin1') : value;
  if (!(bytes instanceof Uint8Array) || bytes.length !== size) throw new TypeError('bad datetime state');
  return bytes;
}

function tzinfo(value: unknown): TzInfo | null {
  if (value === undefined || value === null) return null;
  if (value instanceof TimeZone || value instanceof ZoneInfo) return value;
  throw new TypeError(`unsupported tzinfo ${describe(value)}`);
}

function zone(key: unknown): ZoneInfo {
  if (typeof key !== 'string') throw new TypeError('ZoneInfo key must be a str');
  return ZoneInfo.of(key);
}

/** The exception classes of builtins that cross as JS Errors. */
export const EXCEPTIONS = new Set([
  'ArithmeticError', 'AssertionError', 'AttributeError', 'BaseException', 'BlockingIOError', 'BrokenPipeError',
  'BufferError', 'ChildProcessError', 'ConnectionAbortedError', 'ConnectionError', 'ConnectionRefusedError',
  'ConnectionResetError', 'EOFError', 'EnvironmentError', 'Exception', 'FileExistsError', 'FileNotFoundError',
  'FloatingPointError', 'GeneratorExit', 'IOError', 'ImportError', 'IndentationError', 'IndexError', 'InterruptedError',
  'IsADirectoryError', 'KeyError', 'KeyboardInterrupt', 'LookupError', 'MemoryError', 'ModuleNotFoundError', 'NameError',
  'NotADirectoryError', 'NotImplementedError', 'OSError', 'OverflowError', 'PermissionError', 'ProcessLookupError',
  'RecursionError', 'ReferenceError', 'RuntimeError', 'StopAsyncIteration', 'StopIteration', 'SyntaxError', 'SystemError',
  'SystemExit', 'TabError', 'TimeoutError', 'TypeError', 'UnboundLocalError', 'UnicodeDecodeError', 'UnicodeEncodeError',
  'UnicodeError', 'UnicodeTranslateError', 'ValueError', 'ZeroDivisionError', 'Warning', 'UserWarning',
  'DeprecationWarning', 'RuntimeWarning',
]);

/** A Python exception as a JS Error: `name` is the Python class, `args` the arguments. */
export function pythonError(name: string, args: unknown[]): Error {
  const error = new Error(args.length === 1 ? String(args[0]) : args.length === 0 ? '' : `(${args.map(String).join(', ')})`);
  Object.defineProperty(error, 'name', { value: name, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(error, 'args', { value: toTupleValue(args), writable: true, configurable: true, enumerable: false });
  return error;
}

function toTupleValue(items: unknown[]): Tuple {
  const result = new Tuple();
  for (const item of items) result.push(item);
  return result;
}

// Python array typecodes ↔ typed arrays (Linux LP64: 'l'/'L' are 8 bytes).
export const ARRAY_TYPES: Record<string, { make: (buffer: ArrayBuffer, offset: number, length: number) => ArrayBufferView; size: number }> = {
  b: { make: (b, o, n) => new Int8Array(b, o, n), size: 1 },
  B: { make: (b, o, n) => new Uint8ClampedArray(b, o, n), size: 1 },
  h: { make: (b, o, n) => new Int16Array(b, o, n), size: 2 },
  H: { make: (b, o, n) => new Uint16Array(b, o, n), size: 2 },
  i: { make: (b, o, n) => new Int32Array(b, o, n), size: 4 },
  I: { make: (b, o, n) => new Uint32Array(b, o, n), size: 4 },
  l: { make: (b, o, n) => new BigInt64Array(b, o, n), size: 8 },
  L: { make: (b, o, n) => new BigUint64Array(b, o, n), size: 8 },
  q: { make: (b, o, n) => new BigInt64Array(b, o, n), size: 8 },
  Q: { make: (b, o, n) => new BigUint64Array(b, o, n), size: 8 },
  f: { make: (b, o, n) => new Float32Array(b, o, n), size: 4 },
  d: { make: (b, o, n) => new Float64Array(b, o, n), size: 8 },
};

// array's machine-format codes: even = little-endian, odd = big-endian (for 2+ byte items).
const BIG_ENDIAN_FORMATS = new Set([3, 5, 7, 9, 11, 13, 15, 17]);

function typedArray(typecode: unknown, data: Uint8Array, bigEndian: boolean): ArrayBufferView {
  const type = typeof typecode === 'string' ? ARRAY_TYPES[typecode] : undefined;
  if (!type) throw new TypeError(`array typecode ${String(typecode)} is not supported`);
  if (data.length % type.size !== 0) throw new TypeError('array data is not a whole number of items');
  const copy = Buffer.from(data);
  if (bigEndian && type.size > 1) {
    if (type.size === 2) copy.swap16(); else if (type.size === 4) copy.swap32(); else copy.swap64();
  }
  const aligned = new ArrayBuffer(copy.length);
  new Uint8Array(aligned).set(copy);
  return type.make(aligned, 0, copy.length / type.size);
}

function arrayFromList(typecode: unknown, items: unknown): ArrayBufferView {
  const type = typeof typecode === 'string' ? ARRAY_TYPES[typecode] : undefined;
  if (!type) throw new TypeError(`array typecode ${String(typecode)} is not supported`);
  const values = [...sequence(items ?? [])];
  const result = type.make(new ArrayBuffer(values.length * type.size), 0, values.length) as unknown as { [i: number]: unknown };
  const big = type.size === 8 && typecode !== 'd';
  values.forEach((value, i) => { result[i] = big ? BigInt(value as bigint) : number(value); });
  return result as unknown as ArrayBufferView;
}

/** NEWOBJ / NEWOBJ_EX / copyreg.__newobj__: an instance of `cls` without calling its initializer. */
export function createInstance(cls: unknown, args: unknown[], kwargs: Map<unknown, unknown> | Record<string, unknown> | null): unknown {
  if (!(cls instanceof Global)) throw new TypeError(`NEWOBJ needs a class, got ${describe(cls)}`);
  const keywords = kwargs === null || kwargs instanceof Map ? kwargs : new Map<unknown, unknown>(Object.entries(kwargs));
  if (cls.create) return cls.create(args, keywords);
  if ((keywords === null || keywords.size === 0) && cls.call) return cls.call(args);
  throw new TypeError(`${cls} cannot be instantiated with NEWOBJ`);
}

for (const entry of [
  { module: 'builtins', name: 'object', create: () => ({}) },
  { module: 'builtins', name: 'set', call: (a: unknown[]) => new Set(a.length ? sequence(a[0]) : []), create: () => new Set() },
  { module: 'builtins', name: 'frozenset', call: (a: unknown[]) => new FrozenSet(a.length ? sequence(a[0]) : []), create: () => new FrozenSet() },
  { module: 'builtins', name: 'bytes', call: (a: unknown[]) => Buffer.from(bytesFrom(a)) },
  { module: 'builtins', name: 'bytearray', call: (a: unknown[]) => new Uint8Array(bytesFrom(a)) },
  { module: 'builtins', name: 'complex', call: (a: unknown[]) => new Complex(a.length > 0 ? number(a[0]) : 0, a.length > 1 ? number(a[1]) : 0) },
  { module: 'builtins', name: 'list', call: (a: unknown[]) => [...(a.length ? sequence(a[0]) : [])], create: () => [] },
  { module: 'builtins', name: 'dict', call: () => new Dict(), create: () => new Dict() },
  { module: 'builtins', name: 'tuple', call: (a: unknown[]) => toTupleValue([...(a.length ? sequence(a[0]) : [])]) },
  { module: '_codecs', name: 'encode', call: (a: unknown[]) => encode(a[0], a[1]) },
  { module: 'copyreg', name: '_reconstructor', call: (a: unknown[]) => {
    if (!(a[1] instanceof Global) || a[1].module !== 'builtins' || a[1].name !== 'object') throw new TypeError('copyreg._reconstructor is supported only with base object');
    const instance = createInstance(a[0], [], null);
    if (a[2] !== null && a[2] !== undefined) throw new TypeError('copyreg._reconstructor with a base state is not supported');
    return instance;
  } },
  { module: 'copyreg', name: '__newobj__', call: (a: unknown[]) => createInstance(a[0], a.slice(1), null) },
  { module: 'copyreg', name: '__newobj_ex__', call: (a: unknown[]) => createInstance(a[0], [...sequence(a[1])], a[2] instanceof Map || isPlainObject(a[2]) ? a[2] : null) },
  { module: 'collections', name: 'OrderedDict', call: (a: unknown[]) => new OrderedDict(a.length ? dictEntries(a[0]) ?? a[0] as Iterable<readonly [unknown, unknown]> : null), create: () => new OrderedDict() },
  { module: 'collections', name: 'deque', call: (a: unknown[]) => {
    const deque = new Deque();
    if (a.length > 0) for (const item of sequence(a[0])) deque.push(item);
    if (a.length > 1 && a[1] !== null) deque.maxlen = int(a[1]);
    return deque;
  } },
  { module: 'decimal', name: 'Decimal', call: (a: unknown[]) => new Decimal(a.length ? String(a[0] instanceof Float ? a[0].value : a[0]) : '0') },
  { module: 'datetime', name: 'timedelta', call: (a: unknown[]) => new TimeDelta(int(a[0] ?? 0), int(a[1] ?? 0), int(a[2] ?? 0)) },
  { module: 'datetime', name: 'timezone', call: (a: unknown[]) => {
    if (!(a[0] instanceof TimeDelta)) throw new TypeError('timezone offset must be a timedelta');
    if (a.length > 1 && typeof a[1] !== 'string') throw new TypeError('timezone name must be a str');
    return new TimeZone(a[0], (a[1] as string | undefined) ?? null);
  } },
  { module: 'datetime', name: 'date', call: (a: unknown[]) => {
    const s = state(a[0], 4);
    return new PyDate(s[0] * 256 + s[1], s[2], s[3]);
  } },
  { module: 'datetime', name: 'time', call: (a: unknown[]) => {
    const s = state(a[0], 6);
    return new PyTime(s[0] & 0x7f, s[1], s[2], (s[3] << 16) | (s[4] << 8) | s[5], tzinfo(a[1]), s[0] >> 7);
  } },
  { module: 'datetime', name: 'datetime', call: (a: unknown[]) => {
    const s = state(a[0], 10);
    return new PyDateTime(s[0] * 256 + s[1], s[2] & 0x7f, s[3], s[4], s[5], s[6], (s[7] << 16) | (s[8] << 8) | s[9], tzinfo(a[1]), s[2] >> 7);
  } },
  // CPython writes a ZoneInfo as getattr(ZoneInfo, '_unpickle')(key, 1): the only getattr allowed.
  { module: 'zoneinfo', name: 'ZoneInfo._unpickle', call: (a: unknown[]) => zone(a[0]) },
  { module: 'zoneinfo', name: 'ZoneInfo', call: (a: unknown[]) => zone(a[0]) },
  { module: 'builtins', name: 'getattr', call: (a: unknown[]) => {
    if (!(a[0] instanceof Global) || a[0].module !== 'zoneinfo' || a[0].name !== 'ZoneInfo' || a[1] !== '_unpickle') {
      throw new TypeError(`getattr is allowed only for zoneinfo.ZoneInfo._unpickle, not ${describe(a[0])}.${String(a[1])}`);
    }
    return lookupGlobal('zoneinfo', 'ZoneInfo._unpickle');
  } },
  { module: 'array', name: 'array', call: (a: unknown[]) => arrayFromList(a[0], a[1]) },
  { module: 'array', name: '_array_reconstructor', call: (a: unknown[]) => {
    if (!(a[3] instanceof Uint8Array)) throw new TypeError('array data must be bytes');
    return typedArray(a[1], a[3], BIG_ENDIAN_FORMATS.has(int(a[2])));
  } },
] as Parameters<typeof define>[0][]) define(entry);

for (const name of EXCEPTIONS) define({ module: 'builtins', name, call: (args) => pythonError(name, args) });
