// Python's multiprocessing.sharedctypes: C values and arrays in shared
// memory. Each object has a shared memory segment of its own (lib/heap.ts)
// holding exactly its C bytes (native order, ctypes' sizes on Linux x86-64,
// where every type's alignment is its size and a segment starts on a page),
// so a child process given the object maps the same bytes.
import { inspect } from 'node:util';
import { SharedMemorySegment } from './posix/shm.js';
import { allocate, free } from './heap.js';
import { AssertionError, AttributeError, IndexError, ValueError } from './errors.js';
import { MODULE, reduceSymbol, type Reduction } from './reduction.js';
import { RLock } from './synchronize.js';
import { Float, registerReconstructor } from './pickle.js';

/** Python's array/ctypes typecodes. */
export type Typecode = 'b' | 'B' | 'h' | 'H' | 'i' | 'I' | 'l' | 'L' | 'q' | 'Q' | 'f' | 'd' | 'c' | 'u';

/** What `.value` and `get(i)` give for each typecode: 64-bit integers are bigints, 'c' a 1-byte Buffer, 'u' a 1-character string. */
export interface TypecodeValues {
  b: number; B: number; h: number; H: number; i: number; I: number;
  l: bigint; L: bigint; q: bigint; Q: bigint;
  f: number; d: number; c: Buffer; u: string;
}
/** What may be stored: integers also as number, bigint or boolean; 'c' also as a byte value 0–255. */
export interface TypecodeInputs {
  b: number | bigint | boolean; B: number | bigint | boolean; h: number | bigint | boolean; H: number | bigint | boolean;
  i: number | bigint | boolean; I: number | bigint | boolean; l: number | bigint | boolean; L: number | bigint | boolean;
  q: number | bigint | boolean; Q: number | bigint | boolean;
  f: number | bigint | boolean | Float; d: number | bigint | boolean | Float; c: Uint8Array | number; u: string;
}
/** The typed array `view` is for each typecode ('u' holds code points, as Linux's 4-byte wchar_t). */
export interface TypecodeViews {
  b: Int8Array; B: Uint8Array; h: Int16Array; H: Uint16Array; i: Int32Array; I: Uint32Array;
  l: BigInt64Array; L: BigUint64Array; q: BigInt64Array; Q: BigUint64Array;
  f: Float32Array; d: Float64Array; c: Uint8Array; u: Uint32Array;
}

type AnyView = TypecodeViews[Typecode];
type ViewClass = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): AnyView; BYTES_PER_ELEMENT: number };

interface CType {
  name: string;
  view: ViewClass;
  kind: 'int' | 'bigint' | 'float' | 'char' | 'wchar';
}

const CTYPES: Record<Typecode, CType> = {
  b: { name: 'c_byte', view: Int8Array, kind: 'int' },
  B: { name: 'c_ubyte', view: Uint8Array, kind: 'int' },
  h: { name: 'c_short', view: Int16Array, kind: 'int' },
  H: { name: 'c_ushort', view: Uint16Array, kind: 'int' },
  i: { name: 'c_int', view: Int32Array, kind: 'int' },
  I: { name: 'c_uint', view: Uint32Array, kind: 'int' },
  l: { name: 'c_long', view: BigInt64Array, kind: 'bigint' },
  L: { name: 'c_ulong', view: BigUint64Array, kind: 'bigint' },
  q: { name: 'c_longlong', view: BigInt64Array, kind: 'bigint' },
  Q: { name: 'c_ulonglong', view: BigUint64Array, kind: 'bigint' },
  f: { name: 'c_float', view: Float32Array, kind: 'float' },
  d: { name: 'c_double', view: Float64Array, kind: 'float' },
  c: { name: 'c_char', view: Uint8Array, kind: 'char' },
  u: { name: 'c_wchar', view: Uint32Array, kind: 'wchar' },
};

function ctypeOf(typecode: unknown): CType {
  if (typeof typecode !== 'string' || !Object.hasOwn(CTYPES, typecode)) throw new TypeError('this type has no size');
  return CTYPES[typecode as Typecode];
}

/** sizeof(ctype) for a typecode (its alignment too, on Linux x86-64). */
export function sizeof(typecode: Typecode): number {
  return ctypeOf(typecode).view.BYTES_PER_ELEMENT;
}

/** Python's name for a JavaScript value's type, for messages. */
function pythonType(value: unknown): string {
  if (value === null || value === undefined) return 'NoneType';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  if (typeof value === 'string') return 'str';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'bigint') return 'int';
  if (value instanceof Uint8Array) return 'bytes';
  if (Array.isArray(value)) return 'list';
  return typeof value === 'object' ? (value as object).constructor?.name ?? 'object' : typeof value;
}

/** A value as the typed array stores it, with C's wrap-around for integers (as ctypes does). */
function toElement(ctype: CType, value: unknown): number | bigint {
  switch (ctype.kind) {
    case 'int':
    case 'bigint': {
      let integer: number | bigint;
      if (typeof value === 'boolean') integer = Number(value);
      else if (typeof value === 'bigint') integer = value;
      else if (typeof value === 'number' && Number.isInteger(value)) integer = value;
      else throw new TypeError(`'${pythonType(value)}' object cannot be interpreted as an integer`);
      const bits = ctype.view.BYTES_PER_ELEMENT * 8;
      if (ctype.kind === 'bigint') return BigInt.asIntN(bits, BigInt(integer));
      return typeof integer === 'bigint' ? Number(BigInt.asIntN(bits, integer)) : integer;
    }
    case 'float':
      if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value instanceof Float) return Number(value);
      throw new TypeError(`must be real number, not ${pythonType(value)}`);
    case 'char':
      if (value instanceof Uint8Array && value.length === 1) return value[0];
      if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 255) return value;
      throw new TypeError('one character bytes, bytearray or integer expected');
    case 'wchar':
      if (typeof value !== 'string') throw new TypeError(`unicode string expected instead of ${pythonType(value)} instance`);
      if (value.length === 0 || value.length > 2 || String.fromCodePoint(value.codePointAt(0)!) !== value) {
        throw new TypeError('one character unicode string expected');
      }
      return value.codePointAt(0)!;
  }
}

function fromElement(ctype: CType, element: number | bigint): unknown {
  if (ctype.kind === 'char') return Buffer.from([element as number]);
  if (ctype.kind === 'wchar') return String.fromCodePoint(element as number);
  return element;
}

/** Python's slice bounds: negatives count from the end, then clamped to [0, length]. */
function sliceBounds(length: number, start = 0, stop = length): [number, number] {
  const bound = (index: number) => {
    if (!Number.isInteger(index)) throw new TypeError('slice indices must be integers');
    return Math.min(Math.max(index < 0 ? index + length : index, 0), length);
  };
  const [from, to] = [bound(start), bound(stop)];
  return [from, Math.max(from, to)];
}

/**
 * C data in a shared memory segment of its own: the segment is made here
 * (`name` null) and removed by this process, or mapped from another
 * process by name and only unmapped here.
 */
abstract class SharedCData<C extends Typecode> implements Disposable {
  readonly typecode: C;
  protected readonly ctype: CType;
  protected readonly elements: TypecodeViews[C];
  readonly #segment: SharedMemorySegment;
  readonly #owner: boolean;

  constructor(typecode: C, ctype: CType, count: number, name: string | null) {
    this.typecode = typecode;
    this.ctype = ctype;
    this.#segment = name === null ? allocate(count * ctype.view.BYTES_PER_ELEMENT, this) : new SharedMemorySegment(name);
    this.#owner = name === null;
    const buffer = this.#segment.buffer;
    this.elements = new ctype.view(buffer.buffer, buffer.byteOffset, count) as TypecodeViews[C];
  }

  /** A typed array over the shared bytes (no copy): fast bulk access, and Atomics on integer typecodes. */
  get view(): TypecodeViews[C] {
    return this.elements;
  }

  /** The segment's name ('/pmp-<pid>-<random>'): CPython maps it with SharedMemory(name without the '/'). */
  get name(): string {
    return this.#segment.name;
  }

  /** Unmaps the memory here; the creator also removes its segment (other processes keep their mappings). */
  close(): void {
    if (this.#owner) free(this, this.#segment);
    else this.#segment.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Crosses by the segment's name: rebuild_ctype(typecode, name, length or null for a value, lock). */
  [reduceSymbol](): Reduction {
    return [MODULE, 'rebuild_ctype', [this.typecode, this.name, this instanceof SharedCArray ? this.length : null, false]];
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** A ctypes value (c_int, c_double...) in shared memory: RawValue(), or Value(..., { lock: false }). */
export class SharedCValue<C extends Typecode = Typecode> extends SharedCData<C> {
  /** @internal Use RawValue() or Value(); `name` attaches to another process's value. */
  constructor(typecode: C, value?: TypecodeInputs[C], name: string | null = null) {
    super(typecode, ctypeOf(typecode), 1, name);
    if (value !== undefined) this.value = value as TypecodeValues[C];
  }

  get value(): TypecodeValues[C] {
    return fromElement(this.ctype, this.elements[0]) as TypecodeValues[C];
  }

  set value(value: TypecodeInputs[C]) {
    this.elements[0] = toElement(this.ctype, value) as never;
  }

  override toString(): string {
    return `${this.ctype.name}(${inspect(this.value)})`;
  }
}

/** A ctypes array in shared memory: RawArray(), or Array(..., { lock: false }). */
export class SharedCArray<C extends Typecode = Typecode> extends SharedCData<C> implements Iterable<TypecodeValues[C]> {
  readonly length: number;

  /** @internal Use RawArray() or Array(); `name` attaches to another process's array. */
  constructor(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string, name: string | null = null) {
    const ctype = ctypeOf(typecode);
    let initializer: ArrayLike<unknown> | null = null;
    if (typeof sizeOrInitializer === 'number') {
      if (!Number.isInteger(sizeOrInitializer)) throw new TypeError(`'float' object cannot be interpreted as an integer`);
      if (sizeOrInitializer < 0) throw new ValueError(`Array length must be >= 0, not ${sizeOrInitializer}`);
    } else {
      initializer = initializerOf(ctype, sizeOrInitializer);
    }
    const length = initializer === null ? sizeOrInitializer as number : initializer.length;
    super(typecode, ctype, length, name);
    this.length = length;
    if (initializer !== null) this.setSlice(0, length, initializer as never);
  }

  get(index: number): TypecodeValues[C] {
    return fromElement(this.ctype, this.elements[this.#position(index)]) as TypecodeValues[C];
  }

  set(index: number, value: TypecodeInputs[C]): void {
    const position = this.#position(index);
    this.elements[position] = toElement(this.ctype, value) as never;
  }

  /** arr[start:stop]: a list, or bytes for 'c' and a str for 'u' as in Python. */
  getSlice(start?: number, stop?: number): Array<TypecodeValues[C]> | Buffer | string {
    const [from, to] = sliceBounds(this.length, start, stop);
    if (this.ctype.kind === 'char') return Buffer.from(this.elements.subarray(from, to) as Uint8Array);
    const values = Array.from(this.elements.subarray(from, to) as ArrayLike<number | bigint>, (element) => fromElement(this.ctype, element));
    return (this.ctype.kind === 'wchar' ? values.join('') : values) as Array<TypecodeValues[C]> | string;
  }

  /** arr[start:stop] = values: exactly as many values as the slice holds. */
  setSlice(start: number | undefined, stop: number | undefined, values: Iterable<TypecodeInputs[C]> | Uint8Array | string): void {
    const [from, to] = sliceBounds(this.length, start, stop);
    const items = initializerOf(this.ctype, values);
    if (items.length !== to - from) throw new ValueError('Can only assign sequence of same size');
    // Converted first, so a bad item leaves the array untouched.
    const elements = Array.from(items, (item) => toElement(this.ctype, item));
    elements.forEach((element, i) => { this.elements[from + i] = element as never; });
  }

  /** 'c' and 'u' arrays: the text up to the first NUL; set it NUL-terminated (when there is room). */
  get value(): C extends 'c' ? Buffer : string {
    this.#text('value');
    const end = (this.elements as Uint8Array | Uint32Array).indexOf(0);
    return this.getSlice(0, end === -1 ? this.length : end) as C extends 'c' ? Buffer : string;
  }

  set value(value: Uint8Array | string) {
    const items = this.#checkedText(value);
    this.setSlice(0, items.length, items as never);
    if (items.length < this.length) this.elements[items.length] = 0 as never;
  }

  /** 'c' arrays: all the bytes; setting writes them at the start (no NUL added). */
  get raw(): Buffer {
    if (this.#text('raw') !== 'char') throw new AttributeError(`'${this.ctype.name}' array has no attribute 'raw'`);
    return this.getSlice() as Buffer;
  }

  set raw(value: Uint8Array) {
    if (this.#text('raw') !== 'char') throw new AttributeError(`'${this.ctype.name}' array has no attribute 'raw'`);
    const items = this.#checkedText(value);
    this.setSlice(0, items.length, items as never);
  }

  *[Symbol.iterator](): Iterator<TypecodeValues[C]> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  override toString(): string {
    return `<${this.ctype.name}_Array_${this.length} ${inspect(this.getSlice())}>`;
  }

  #position(index: number): number {
    if (!Number.isInteger(index)) throw new TypeError('indices must be integers');
    const position = index < 0 ? index + this.length : index;
    if (position < 0 || position >= this.length) throw new IndexError('invalid index');
    return position;
  }

  /** 'char' or 'wchar' for arrays that hold text; others have no value/raw. */
  #text(attribute: 'value' | 'raw'): 'char' | 'wchar' {
    if (this.ctype.kind !== 'char' && this.ctype.kind !== 'wchar') {
      throw new AttributeError(`'${this.ctype.name}' array has no attribute '${attribute}'`);
    }
    return this.ctype.kind;
  }

  #checkedText(value: Uint8Array | string): ArrayLike<unknown> {
    const kind = this.#text('value');
    if (kind === 'char' && !(value instanceof Uint8Array)) throw new TypeError(`bytes expected instead of ${pythonType(value)} instance`);
    if (kind === 'wchar' && typeof value !== 'string') throw new TypeError(`unicode string expected instead of ${pythonType(value)} instance`);
    const items = initializerOf(this.ctype, value);
    if (items.length > this.length) throw new ValueError(kind === 'char' ? 'byte string too long' : 'string too long');
    return items;
  }
}

/** The items of an initializer: bytes for 'c' arrays, a string's characters for 'u' arrays, else any iterable. */
function initializerOf(ctype: CType, values: unknown): ArrayLike<unknown> {
  if (ctype.kind === 'char') {
    if (values instanceof Uint8Array) return values;
    if (typeof values === 'string') throw new TypeError('one character bytes, bytearray or integer expected');
  }
  if (ctype.kind === 'wchar' && typeof values === 'string') return [...values];
  if (values === null || typeof (values as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw new TypeError(`'${pythonType(values)}' object is not iterable`);
  }
  return [...(values as Iterable<unknown>)];
}

interface RawValueFunction {
  <C extends Typecode>(typecode: C, value?: TypecodeInputs[C]): SharedCValue<C>;
  new <C extends Typecode>(typecode: C, value?: TypecodeInputs[C]): SharedCValue<C>;
}
interface RawArrayFunction {
  <C extends Typecode>(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string): SharedCArray<C>;
  new <C extends Typecode>(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string): SharedCArray<C>;
}

/** A C value in shared memory, zero unless `value` is given, without a lock (called with or without new). */
export const RawValue = function RawValue<C extends Typecode>(typecode: C, value?: TypecodeInputs[C]): SharedCValue<C> {
  return new SharedCValue(typecode, value);
} as RawValueFunction;

/** A C array in shared memory: `size` zeros, or the initializer's items; without a lock (called with or without new). */
export const RawArray = function RawArray<C extends Typecode>(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string): SharedCArray<C> {
  return new SharedCArray(typecode, sizeOrInitializer);
} as RawArrayFunction;


/** What Value and Array accept as a lock: Lock, RLock, or anything with acquire() and release(). */
export interface SharedLock {
  acquire(block?: boolean, timeout?: number | null): boolean;
  release(): void;
}

/** The lock option of Value and Array: true or null for a new RLock, false for none, or the lock to use. */
export type LockOption = boolean | null | SharedLock;

/** Python's lock argument: a new RLock for true/None, else an object with acquire(). */
function lockFrom(lock: true | null | SharedLock): { lock: SharedLock; created: boolean } {
  if (lock === true || lock === null) return { lock: new RLock(), created: true };
  if (typeof (lock as Partial<SharedLock> | undefined)?.acquire !== 'function') {
    throw new AttributeError(`${inspect(lock)} has no method 'acquire'`);
  }
  return { lock, created: false };
}

/** What Synchronized and SynchronizedArray share: the lock, and acquire/release passed through to it. */
abstract class SynchronizedBase<O extends SharedCValue | SharedCArray> implements Disposable {
  protected readonly obj: O;
  readonly #lock: SharedLock;
  readonly #ownsLock: boolean;

  constructor(obj: O, lock: SharedLock, ownsLock: boolean) {
    this.obj = obj;
    this.#lock = lock;
    this.#ownsLock = ownsLock;
  }

  get_lock(): SharedLock {
    return this.#lock;
  }

  /** The unsynchronized object underneath (SharedCValue or SharedCArray). */
  get_obj(): O {
    return this.obj;
  }

  acquire(block = true, timeout: number | null = null): boolean {
    return this.#lock.acquire(block, timeout);
  }

  release(): void {
    this.#lock.release();
  }

  /** Unmaps the shared memory here (and removes it if this process created it); closes the lock if it was made for this object. */
  close(): void {
    this.obj.close();
    if (this.#ownsLock) (this.#lock as Partial<Disposable & { close(): void }>).close?.();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** The object crosses with its lock, so both processes use the same one. */
  [reduceSymbol](): Reduction {
    const [, , args] = this.obj[reduceSymbol]();
    return [MODULE, 'rebuild_ctype', [...args.slice(0, 3), this.#lock]];
  }

  /** Runs `read` holding the lock (each access takes it, as in CPython: `v.value += 1` is not atomic). */
  protected locked<T>(read: () => T): T {
    this.#lock.acquire();
    try {
      return read();
    } finally {
      this.#lock.release();
    }
  }
}

/** Value(): a shared C value whose every access takes its lock. */
export class Synchronized<C extends Typecode = Typecode> extends SynchronizedBase<SharedCValue<C>> {
  get value(): TypecodeValues[C] {
    return this.locked(() => this.obj.value);
  }

  set value(value: TypecodeInputs[C]) {
    this.locked(() => { this.obj.value = value; });
  }

  /** A one-element typed array over the shared bytes; reads and writes through it bypass the lock. */
  get view(): TypecodeViews[C] {
    return this.obj.view;
  }

  /**
   * Adds `delta` (default 1) holding the lock, with C's wrap-around, and
   * returns the new value: the atomic `with v.get_lock(): v.value += delta`.
   */
  increment(delta: number | bigint = 1): TypecodeValues[C] {
    if (this.obj.typecode === 'c' || this.obj.typecode === 'u') throw new TypeError(`cannot increment a '${this.obj.typecode}' value`);
    return this.locked(() => {
      const current = this.obj.value as number | bigint;
      this.obj.value = (typeof current === 'bigint' ? current + BigInt(delta) : current + Number(delta)) as TypecodeInputs[C];
      return this.obj.value;
    });
  }

  override toString(): string {
    return `<Synchronized wrapper for ${String(this.obj)}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** Array(): a shared C array whose every access (an item, a slice) takes its lock. */
export class SynchronizedArray<C extends Typecode = Typecode> extends SynchronizedBase<SharedCArray<C>> implements Iterable<TypecodeValues[C]> {
  get length(): number {
    return this.obj.length;
  }

  /** A typed array over the shared bytes (no copy); access through it bypasses the lock. */
  get view(): TypecodeViews[C] {
    return this.obj.view;
  }

  get(index: number): TypecodeValues[C] {
    return this.locked(() => this.obj.get(index));
  }

  set(index: number, value: TypecodeInputs[C]): void {
    this.locked(() => this.obj.set(index, value));
  }

  getSlice(start?: number, stop?: number): Array<TypecodeValues[C]> | Buffer | string {
    return this.locked(() => this.obj.getSlice(start, stop));
  }

  setSlice(start: number | undefined, stop: number | undefined, values: Iterable<TypecodeInputs[C]> | Uint8Array | string): void {
    this.locked(() => this.obj.setSlice(start, stop, values));
  }

  /** 'c' and 'u' arrays: the text up to the first NUL (see SharedCArray.value). */
  get value(): C extends 'c' ? Buffer : string {
    return this.locked(() => this.obj.value);
  }

  set value(value: Uint8Array | string) {
    this.locked(() => { this.obj.value = value; });
  }

  /** 'c' arrays: all the bytes. */
  get raw(): Buffer {
    return this.locked(() => this.obj.raw);
  }

  set raw(value: Uint8Array) {
    this.locked(() => { this.obj.raw = value; });
  }

  *[Symbol.iterator](): Iterator<TypecodeValues[C]> {
    for (let i = 0; i < this.obj.length; i++) yield this.get(i);
  }

  override toString(): string {
    return `<SynchronizedArray wrapper for ${String(this.obj)}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** The camelCase aliases: the same functions as the Python names. */
interface SynchronizedBase<O extends SharedCValue | SharedCArray> {
  getLock: SynchronizedBase<O>['get_lock'];
  getObj: SynchronizedBase<O>['get_obj'];
}
for (const [alias, name] of [['getLock', 'get_lock'], ['getObj', 'get_obj']] as const) {
  Object.defineProperty(SynchronizedBase.prototype, alias, { value: SynchronizedBase.prototype[name], writable: true, configurable: true });
}

/** Python's sharedctypes.synchronized(obj, lock=None): wraps a raw value or array with a lock (a new RLock by default). */
export function synchronized<C extends Typecode>(obj: SharedCValue<C>, lock?: SharedLock | null): Synchronized<C>;
export function synchronized<C extends Typecode>(obj: SharedCArray<C>, lock?: SharedLock | null): SynchronizedArray<C>;
export function synchronized(obj: SharedCValue | SharedCArray, lock: SharedLock | null = null): Synchronized | SynchronizedArray {
  if (obj instanceof SynchronizedBase) throw new AssertionError('object already synchronized');
  const chosen = lockFrom(lock);
  return obj instanceof SharedCArray ? new SynchronizedArray(obj, chosen.lock, chosen.created) : new Synchronized(obj as SharedCValue, chosen.lock, chosen.created);
}

interface ValueFunction {
  <C extends Typecode>(typecode: C, value: TypecodeInputs[C] | undefined, options: { lock: false }): SharedCValue<C>;
  <C extends Typecode>(typecode: C, value?: TypecodeInputs[C], options?: { lock?: true | null | SharedLock }): Synchronized<C>;
  new <C extends Typecode>(typecode: C, value: TypecodeInputs[C] | undefined, options: { lock: false }): SharedCValue<C>;
  new <C extends Typecode>(typecode: C, value?: TypecodeInputs[C], options?: { lock?: true | null | SharedLock }): Synchronized<C>;
}
interface ArrayFunction {
  <C extends Typecode>(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string, options: { lock: false }): SharedCArray<C>;
  <C extends Typecode>(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string, options?: { lock?: true | null | SharedLock }): SynchronizedArray<C>;
  new <C extends Typecode>(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string, options: { lock: false }): SharedCArray<C>;
  new <C extends Typecode>(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string, options?: { lock?: true | null | SharedLock }): SynchronizedArray<C>;
}

/**
 * A C value in shared memory guarded by a lock: `lock` true (default) or null
 * makes a new RLock, false returns the raw value, or pass a Lock/RLock.
 */
export const Value = function Value(typecode: Typecode, value?: unknown, options: { lock?: LockOption } = {}) {
  const { lock = true } = options;
  if (lock === false) return new SharedCValue(typecode, value as never);
  const chosen = lockFrom(lock);
  return new Synchronized(new SharedCValue(typecode, value as never), chosen.lock, chosen.created);
} as ValueFunction;

/** A C array in shared memory guarded by a lock (see Value); also exported as Array. */
export const SharedArray = function Array(typecode: Typecode, sizeOrInitializer: unknown, options: { lock?: LockOption } = {}) {
  const { lock = true } = options;
  if (lock === false) return new SharedCArray(typecode, sizeOrInitializer as never);
  const chosen = lockFrom(lock);
  return new SynchronizedArray(new SharedCArray(typecode, sizeOrInitializer as never), chosen.lock, chosen.created);
} as ArrayFunction;
export { SharedArray as Array };

/**
 * The reconstructor of a value or array crossing to this process (its
 * [reduceSymbol] arguments): maps the sender's segment by name, and wraps it
 * with the sender's lock if it had one.
 */
export function rebuild_ctype(typecode: Typecode, name: string, length: number | null, lock: SharedLock | false): SharedCValue | SharedCArray | Synchronized | SynchronizedArray {
  const obj = length === null ? new SharedCValue(typecode, undefined, name) : new SharedCArray(typecode, length, name);
  if (lock === false) return obj;
  return obj instanceof SharedCArray ? new SynchronizedArray(obj, lock, false) : new Synchronized(obj, lock, false);
}

registerReconstructor(MODULE, 'rebuild_ctype', rebuild_ctype);
