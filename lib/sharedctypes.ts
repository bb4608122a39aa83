// Python's multiprocessing.sharedctypes: C values and arrays in shared
// memory. Each object has a shared memory segment of its own (lib/heap.ts)
// holding exactly its C bytes (native order, ctypes' sizes on Linux x86-64,
// where every type's alignment is its size and a segment starts on a page),
// so a child process given the object maps the same bytes.
import { inspect } from 'node:util';
import { SharedMemorySegment } from './posix/shm.js';
import { allocate, free } from './heap.js';
import { AttributeError, IndexError, ValueError } from './errors.js';
import { MODULE, reduceSymbol, type Reduction } from './reduction.js';

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
  f: number | bigint | boolean; d: number | bigint | boolean; c: Uint8Array | number; u: string;
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
      if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return Number(value);
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

function viewOf(ctype: CType, segment: SharedMemorySegment, length: number): AnyView {
  const buffer = segment.buffer;
  return new ctype.view(buffer.buffer, buffer.byteOffset, length);
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

/** The object's segment: a new one owned by `holder`, or another process's by name. */
function segmentFor(holder: object, name: string | null, bytes: number): SharedMemorySegment {
  return name === null ? allocate(bytes, holder) : new SharedMemorySegment(name);
}

/** A ctypes value (c_int, c_double...) in shared memory: RawValue(), or Value(..., { lock: false }). */
export class SharedCValue<C extends Typecode = Typecode> implements Disposable {
  readonly typecode: C;
  readonly #ctype: CType;
  readonly #segment: SharedMemorySegment;
  readonly #owner: boolean;
  readonly #view: TypecodeViews[C];

  /** @internal Use RawValue() or Value(); `name` attaches to another process's value. */
  constructor(typecode: C, value?: TypecodeInputs[C], name: string | null = null) {
    this.typecode = typecode;
    this.#ctype = ctypeOf(typecode);
    this.#segment = segmentFor(this, name, this.#ctype.view.BYTES_PER_ELEMENT);
    this.#owner = name === null;
    this.#view = viewOf(this.#ctype, this.#segment, 1) as TypecodeViews[C];
    if (value !== undefined) this.value = value as TypecodeValues[C];
  }

  get value(): TypecodeValues[C] {
    return fromElement(this.#ctype, this.#view[0]) as TypecodeValues[C];
  }

  set value(value: TypecodeInputs[C]) {
    this.#view[0] = toElement(this.#ctype, value) as never;
  }

  /** A one-element typed array over the shared bytes (no copy), e.g. for Atomics on integer typecodes. */
  get view(): TypecodeViews[C] {
    return this.#view;
  }

  /** Unmaps the value here; the creator also removes its segment (other processes keep their mappings). */
  close(): void {
    if (this.#owner) free(this, this.#segment);
    else this.#segment.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'rebuild_ctype', [this.typecode, this.#segment.name, null, false]];
  }

  toString(): string {
    return `${this.#ctype.name}(${inspect(this.value)})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** A ctypes array in shared memory: RawArray(), or Array(..., { lock: false }). */
export class SharedCArray<C extends Typecode = Typecode> implements Disposable, Iterable<TypecodeValues[C]> {
  readonly typecode: C;
  readonly length: number;
  readonly #ctype: CType;
  readonly #segment: SharedMemorySegment;
  readonly #owner: boolean;
  readonly #view: TypecodeViews[C];

  /** @internal Use RawArray() or Array(); `name` attaches to another process's array. */
  constructor(typecode: C, sizeOrInitializer: number | Iterable<TypecodeInputs[C]> | Uint8Array | string, name: string | null = null) {
    this.typecode = typecode;
    this.#ctype = ctypeOf(typecode);
    let initializer: ArrayLike<unknown> | null = null;
    if (typeof sizeOrInitializer === 'number') {
      if (!Number.isInteger(sizeOrInitializer)) throw new TypeError(`'float' object cannot be interpreted as an integer`);
      if (sizeOrInitializer < 0) throw new ValueError(`Array length must be >= 0, not ${sizeOrInitializer}`);
      this.length = sizeOrInitializer;
    } else {
      initializer = initializerOf(this.#ctype, sizeOrInitializer);
      this.length = initializer.length;
    }
    this.#segment = segmentFor(this, name, this.length * this.#ctype.view.BYTES_PER_ELEMENT);
    this.#owner = name === null;
    this.#view = viewOf(this.#ctype, this.#segment, this.length) as TypecodeViews[C];
    if (initializer !== null) this.setSlice(0, this.length, initializer as never);
  }

  /** A typed array over the shared bytes (no copy): fast bulk access, and Atomics for integer typecodes. */
  get view(): TypecodeViews[C] {
    return this.#view;
  }

  get(index: number): TypecodeValues[C] {
    return fromElement(this.#ctype, this.#view[this.#position(index)]) as TypecodeValues[C];
  }

  set(index: number, value: TypecodeInputs[C]): void {
    const position = this.#position(index);
    this.#view[position] = toElement(this.#ctype, value) as never;
  }

  /** arr[start:stop]: a list, or bytes for 'c' and a str for 'u' as in Python. */
  getSlice(start?: number, stop?: number): Array<TypecodeValues[C]> | Buffer | string {
    const [from, to] = sliceBounds(this.length, start, stop);
    if (this.#ctype.kind === 'char') return Buffer.from(this.#view.subarray(from, to) as Uint8Array);
    const values = Array.from(this.#view.subarray(from, to) as ArrayLike<number | bigint>, (element) => fromElement(this.#ctype, element));
    return (this.#ctype.kind === 'wchar' ? values.join('') : values) as Array<TypecodeValues[C]> | string;
  }

  /** arr[start:stop] = values: exactly as many values as the slice holds. */
  setSlice(start: number | undefined, stop: number | undefined, values: Iterable<TypecodeInputs[C]> | Uint8Array | string): void {
    const [from, to] = sliceBounds(this.length, start, stop);
    const items = initializerOf(this.#ctype, values);
    if (items.length !== to - from) throw new ValueError('Can only assign sequence of same size');
    // Converted first, so a bad item leaves the array untouched.
    const elements = Array.from(items, (item) => toElement(this.#ctype, item));
    elements.forEach((element, i) => { this.#view[from + i] = element as never; });
  }

  /** 'c' and 'u' arrays: the text up to the first NUL; set it NUL-terminated (when there is room). */
  get value(): C extends 'c' ? Buffer : string {
    this.#text();
    const end = (this.#view as Uint8Array | Uint32Array).indexOf(0);
    return this.getSlice(0, end === -1 ? this.length : end) as C extends 'c' ? Buffer : string;
  }

  set value(value: Uint8Array | string) {
    const items = this.#checkedText(value);
    this.setSlice(0, items.length, items as never);
    if (items.length < this.length) this.#view[items.length] = 0 as never;
  }

  /** 'c' arrays: all the bytes; setting writes them at the start (no NUL added). */
  get raw(): Buffer {
    if (this.#text() !== 'char') throw new AttributeError(`'${this.#ctype.name}' array has no attribute 'raw'`);
    return this.getSlice() as Buffer;
  }

  set raw(value: Uint8Array) {
    if (this.#text() !== 'char') throw new AttributeError(`'${this.#ctype.name}' array has no attribute 'raw'`);
    const items = this.#checkedText(value);
    this.setSlice(0, items.length, items as never);
  }

  *[Symbol.iterator](): Iterator<TypecodeValues[C]> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  /** Unmaps the array here; the creator also removes its segment (other processes keep their mappings). */
  close(): void {
    if (this.#owner) free(this, this.#segment);
    else this.#segment.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'rebuild_ctype', [this.typecode, this.#segment.name, this.length, false]];
  }

  toString(): string {
    return `<${this.#ctype.name}_Array_${this.length} ${inspect(this.getSlice())}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  #position(index: number): number {
    if (!Number.isInteger(index)) throw new TypeError('indices must be integers');
    const position = index < 0 ? index + this.length : index;
    if (position < 0 || position >= this.length) throw new IndexError('invalid index');
    return position;
  }

  /** 'char' or 'wchar' for arrays that hold text; others have no value/raw. */
  #text(): 'char' | 'wchar' {
    if (this.#ctype.kind !== 'char' && this.#ctype.kind !== 'wchar') {
      throw new AttributeError(`'${this.#ctype.name}' array has no attribute 'value'`);
    }
    return this.#ctype.kind;
  }

  #checkedText(value: Uint8Array | string): ArrayLike<unknown> {
    const kind = this.#text();
    if (kind === 'char' && !(value instanceof Uint8Array)) throw new TypeError(`bytes expected instead of ${pythonType(value)} instance`);
    if (kind === 'wchar' && typeof value !== 'string') throw new TypeError(`unicode string expected instead of ${pythonType(value)} instance`);
    const items = initializerOf(this.#ctype, value);
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

/**
 * The reconstructor of a value or array crossing to this process (its
 * [reduceSymbol] arguments): maps the sender's segment by name.
 */
export function rebuild_ctype<C extends Typecode>(typecode: C, name: string, length: number | null, lock: false): SharedCValue<C> | SharedCArray<C> {
  void lock;
  return length === null ? new SharedCValue(typecode, undefined, name) : new SharedCArray(typecode, length, name);
}
