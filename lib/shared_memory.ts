// Python's multiprocessing.shared_memory: SharedMemory and ShareableList,
// byte for byte as CPython lays them out, so the same name opens the same
// block (and the same list) from CPython and from Node.
import { randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import { inspect } from 'node:util';
import { SharedMemorySegment } from './posix/shm.js';
import { disown, own } from './heap.js';
import { IndexError, ValueError, isOSError } from './errors.js';
import { MODULE, reduceSymbol, type Reduction } from './reduction.js';
import { Float, registerReconstructor } from './pickle.js';

export interface SharedMemoryOptions {
  /** CPython's name: no leading '/' ('psm_1234'). Generated ('psm_' + 8 hex digits) when omitted with create. */
  name?: string | null;
  create?: boolean;
  /** Bytes, for create; an existing block keeps its own size. */
  size?: number;
  /**
   * As CPython 3.13's `track`: false leaves a generated block alone when its
   * creator exits (someone else will unlink it). Attaching never tracks.
   */
  track?: boolean;
}

/** CPython's names have no leading '/': the kernel's name is '/' + name. */
function kernelName(name: string): string {
  if (typeof name !== 'string') throw new TypeError(`name must be a string such as 'psm_1234', not ${typeof name}`);
  if (name.startsWith('/')) {
    throw new TypeError(`SharedMemory names have no leading '/' (as in CPython): use ${JSON.stringify(name.slice(1))}, not ${JSON.stringify(name)}`);
  }
  return `/${name}`;
}

/**
 * A block of shared memory, as CPython's SharedMemory: the creator makes it
 * (create: true), others attach by name, and exactly one process unlinks it.
 * A block made with a generated name is removed when its creator exits, if
 * it has not unlinked it before; attaching never makes a process responsible.
 */
export class SharedMemory implements Disposable {
  readonly #segment: SharedMemorySegment;

  constructor(options: SharedMemoryOptions | string = {}) {
    const { name = null, create = false, size = 0, track = true } = typeof options === 'string' ? { name: options } : options;
    if (typeof size !== 'number' || Number.isNaN(size)) throw new TypeError(`'size' must be a number, not ${typeof size}`);
    if (!(size >= 0)) throw new ValueError("'size' must be a positive integer");
    if (!Number.isSafeInteger(size)) throw new TypeError(`'size' must be an integer, not ${size}`);
    if (create && size === 0) throw new ValueError("'size' must be a positive number different from zero");
    if (name === null && !create) throw new ValueError("'name' can only be None if create=True");
    if (name !== null) {
      this.#segment = new SharedMemorySegment(kernelName(name), create ? { create, exclusive: true, size } : {});
      return;
    }
    for (;;) {
      const generated = `/psm_${randomBytes(4).toString('hex')}`;
      try {
        this.#segment = new SharedMemorySegment(generated, { create: true, exclusive: true, size });
      } catch (error) {
        if (isOSError(error, 'EEXIST')) continue;
        throw error;
      }
      if (track) own(generated);
      return;
    }
  }

  /** The name without its leading '/', as CPython reports it. */
  get name(): string {
    return this.#segment.name.slice(1);
  }

  get size(): number {
    return this.#segment.size;
  }

  /** The block's bytes (CPython's memoryview); after close() the getter throws and old Buffers are empty. */
  get buf(): Buffer {
    if (this.#segment.closed) throw new ValueError(`SharedMemory '${this.name}' is closed`);
    return this.#segment.buffer;
  }

  /** Unmaps the block here; it lives on for other processes until unlinked. Idempotent. */
  close(): void {
    this.#segment.close();
  }

  /** Destroys the block's name (once, from one process); existing mappings stay usable. */
  unlink(): void {
    SharedMemory.unlink(this.name);
  }

  static unlink(name: string): void {
    const kernel = kernelName(name);
    SharedMemorySegment.unlink(kernel);
    disown(kernel);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Pickled as CPython pickles it, so a Python process unpickles a SharedMemory attached to the same block. */
  [reduceSymbol](): Reduction {
    return ['multiprocessing.shared_memory', 'SharedMemory', [this.name, false, this.size]];
  }

  toString(): string {
    return `SharedMemory('${this.name}', size=${this.size})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * What a ShareableList holds: Python's int (a number, or a bigint beyond
 * 2^53), float (a number; a pickle Float stores an integral one as a float),
 * bool, str, bytes (Buffer) and None (null).
 */
export type ShareableItem = number | bigint | boolean | string | Buffer | Float | null;

// Every slot is a multiple of 8 bytes; formats are Python struct codes.
const ALIGNMENT = 8;
const FORMAT_INT = 'q';
const FORMAT_FLOAT = 'd';
const FORMAT_BOOL = 'xxxxxxx?';
const FORMAT_NONE = 'xxxxxx?x';
// The back-transform codes CPython stores per item.
const CODE_VALUE = 0;
const CODE_STR = 1;
const CODE_BYTES = 2;
const CODE_NONE = 3;
const LITTLE_ENDIAN = endianness() === 'LE';

interface Encoded {
  format: string;
  code: number;
  bytes?: Buffer;
}

/** Python's len() of a str: code points. */
function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** The struct format, back-transform code and (for str/bytes) bytes of one item, as CPython chooses them. */
function encodeItem(item: unknown): Encoded {
  if (item === null || item === undefined) return { format: FORMAT_NONE, code: CODE_NONE };
  if (typeof item === 'boolean') return { format: FORMAT_BOOL, code: CODE_VALUE };
  if (typeof item === 'bigint') {
    if (BigInt.asIntN(64, item) !== item) throw new RangeError('argument out of range (a ShareableList stores ints as signed 64-bit)');
    return { format: FORMAT_INT, code: CODE_VALUE };
  }
  if (typeof item === 'number') return { format: Number.isSafeInteger(item) ? FORMAT_INT : FORMAT_FLOAT, code: CODE_VALUE };
  if (item instanceof Float) return { format: FORMAT_FLOAT, code: CODE_VALUE };
  if (typeof item === 'string' || item instanceof Uint8Array) {
    const bytes = typeof item === 'string' ? Buffer.from(item, 'utf8') : Buffer.from(item.buffer, item.byteOffset, item.byteLength);
    // CPython sizes a str by its code points; where its UTF-8 would not fit
    // (CPython would store it truncated), the slot is made large enough.
    const slot = (length: number) => ALIGNMENT * (Math.floor(length / ALIGNMENT) + 1);
    let capacity = slot(typeof item === 'string' ? codePoints(item) : bytes.length);
    if (bytes.length > capacity) capacity = slot(bytes.length);
    return { format: `${capacity}s`, code: typeof item === 'string' ? CODE_STR : CODE_BYTES, bytes };
  }
  throw new TypeError(`a ShareableList holds numbers, bigints, booleans, strings, Buffers and null, not ${describe(item)}`);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? `a ${(value as object).constructor?.name ?? 'object'}` : `a ${typeof value}`;
}

/** Bytes an item takes in the data area. */
function slotSize(format: string): number {
  return format.endsWith('s') ? Number(format.slice(0, -1)) : ALIGNMENT;
}

/** Python's == between two stored values (1 == 1.0 == True; bytes by content). */
function pythonEquals(a: unknown, b: unknown): boolean {
  const numeric = (x: unknown) => typeof x === 'number' || typeof x === 'bigint' || typeof x === 'boolean' || x instanceof Float;
  if (numeric(a) && numeric(b)) {
    const number = (x: unknown) => (typeof x === 'boolean' || x instanceof Float ? Number(x) : x as number | bigint);
    // eslint-disable-next-line eqeqeq -- loose equality compares a number with a bigint by value
    return number(a) == number(b);
  }
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  if (a === undefined) return b === null;
  return a === b;
}

/** Python's repr, for messages. */
function pythonRepr(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'string') return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (value instanceof Uint8Array) {
    const escaped = [...value].map((byte) => (byte >= 0x20 && byte < 0x7f && byte !== 0x27 && byte !== 0x5c
      ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`)).join('');
    return `b'${escaped}'`;
  }
  return String(value);
}

/**
 * A fixed-length list in one shared memory block, in CPython's layout:
 * int64 N; (N + 1) int64 offsets into the data area; the data area (8-byte
 * slots; str/bytes in multiples of 8); N 8-byte struct formats; N int8 codes.
 * `new ShareableList(sequence)` creates (with `{ name }`, under that name);
 * `new ShareableList(null, { name })` attaches.
 */
export class ShareableList implements Disposable, Iterable<ShareableItem> {
  readonly shm: SharedMemory;
  readonly #count: number;
  readonly #offsets: number[];
  readonly #formatsAt: number;
  readonly #codesAt: number;

  constructor(sequence?: Iterable<ShareableItem> | null, options: { name?: string | null } = {}) {
    const name = options.name ?? null;
    const dataStart = (count: number) => (count + 2) * ALIGNMENT;
    if (name === null || (sequence !== null && sequence !== undefined)) {
      const items = [...(sequence ?? [])];
      const encoded = items.map(encodeItem);
      const offsets = [0];
      for (const { format } of encoded) offsets.push(offsets[offsets.length - 1] + slotSize(format));
      const count = items.length;
      const size = dataStart(count) + offsets[count] + count * ALIGNMENT + count;
      this.shm = new SharedMemory({ name, create: true, size });
      this.#count = count;
      this.#offsets = offsets;
      this.#formatsAt = dataStart(count) + offsets[count];
      this.#codesAt = this.#formatsAt + count * ALIGNMENT;
      const view = this.#view();
      view.setBigInt64(0, BigInt(count), LITTLE_ENDIAN);
      offsets.forEach((offset, i) => view.setBigInt64((i + 1) * ALIGNMENT, BigInt(offset), LITTLE_ENDIAN));
      items.forEach((item, i) => this.#store(i, item, encoded[i]));
    } else {
      this.shm = new SharedMemory({ name });
      const view = this.#view();
      const count = Number(view.getBigInt64(0, LITTLE_ENDIAN));
      this.#count = count;
      this.#offsets = Array.from({ length: count + 1 }, (_, i) => Number(view.getBigInt64((i + 1) * ALIGNMENT, LITTLE_ENDIAN)));
      this.#formatsAt = dataStart(count) + this.#offsets[count];
      this.#codesAt = this.#formatsAt + count * ALIGNMENT;
    }
  }

  get length(): number {
    return Number(this.#view().getBigInt64(0, LITTLE_ENDIAN));
  }

  /** The struct formats of all items, as CPython's `format`. */
  get format(): string {
    return Array.from({ length: this.#count }, (_, i) => this.#formatOf(i)).join('');
  }

  get(index: number): ShareableItem {
    const position = this.#position(index, 'index out of range');
    const buf = this.shm.buf;
    const at = (this.#count + 2) * ALIGNMENT + this.#offsets[position];
    const format = this.#formatOf(position);
    const code = buf.readInt8(this.#codesAt + position);
    if (code === CODE_NONE) return null;
    if (code === CODE_STR || code === CODE_BYTES) {
      let end = at + slotSize(format);
      while (end > at && buf[end - 1] === 0) end--;
      return code === CODE_STR ? buf.toString('utf8', at, end) : Buffer.from(buf.subarray(at, end));
    }
    const view = this.#view();
    switch (format) {
      case FORMAT_INT: {
        const value = view.getBigInt64(at, LITTLE_ENDIAN);
        return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
      }
      case FORMAT_FLOAT:
        return view.getFloat64(at, LITTLE_ENDIAN);
      case FORMAT_BOOL:
        return buf[at + 7] !== 0;
      default:
        throw new ValueError(`item ${position} has a struct format this library does not read: ${JSON.stringify(format)}`);
    }
  }

  set(index: number, value: ShareableItem): void {
    const position = this.#position(index, 'assignment index out of range');
    const encoded = encodeItem(value);
    if (encoded.bytes !== undefined) {
      const allocated = this.#offsets[position + 1] - this.#offsets[position];
      if (encoded.bytes.length > allocated) throw new ValueError('bytes/str item exceeds available storage');
      const current = this.#formatOf(position);
      encoded.format = current.endsWith('s') ? current : `${allocated}s`;
    }
    this.#store(position, value, encoded);
  }

  count(value: ShareableItem): number {
    let found = 0;
    for (const entry of this) if (pythonEquals(value, entry)) found++;
    return found;
  }

  index(value: ShareableItem): number {
    let position = 0;
    for (const entry of this) {
      if (pythonEquals(value, entry)) return position;
      position++;
    }
    throw new ValueError(`${pythonRepr(value)} not in this container`);
  }

  *[Symbol.iterator](): Iterator<ShareableItem> {
    for (let i = 0; i < this.#count; i++) yield this.get(i);
  }

  /** Unmaps the list's block here (shm.close()). */
  close(): void {
    this.shm.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Crosses to another process by name, as CPython's does. */
  [reduceSymbol](): Reduction {
    return [MODULE, 'ShareableList', [this.shm.name]];
  }

  toString(): string {
    return `ShareableList([${[...this].map(pythonRepr).join(', ')}], name='${this.shm.name}')`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  #position(index: number, message: string): number {
    if (!Number.isInteger(index)) throw new TypeError(`list indices must be integers, not ${typeof index}`);
    const position = index >= 0 ? index : index + this.#count;
    // CPython 3.11 reads garbage for indexes below -length; this raises as it should.
    if (position < 0 || position >= this.#count) throw new IndexError(message);
    return position;
  }

  #formatOf(position: number): string {
    const buf = this.shm.buf;
    const at = this.#formatsAt + position * ALIGNMENT;
    let end = at + ALIGNMENT;
    while (end > at && buf[end - 1] === 0) end--;
    return buf.toString('utf8', at, end);
  }

  #view(): DataView {
    const buf = this.shm.buf;
    return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Writes an item's value, format and code (not atomically, as in CPython). */
  #store(position: number, value: ShareableItem, { format, code, bytes }: Encoded): void {
    const buf = this.shm.buf;
    const at = (this.#count + 2) * ALIGNMENT + this.#offsets[position];
    const view = this.#view();
    if (bytes !== undefined) {
      buf.fill(0, at, at + slotSize(format));
      bytes.copy(buf, at);
    } else if (format === FORMAT_INT) {
      view.setBigInt64(at, BigInt(value as number | bigint), LITTLE_ENDIAN);
    } else if (format === FORMAT_FLOAT) {
      view.setFloat64(at, Number(value), LITTLE_ENDIAN);
    } else {
      // bool and None: pad bytes, then the flag ('?') at byte 7 (bool) or 6 (None, always false).
      buf.fill(0, at, at + ALIGNMENT);
      if (value === true) buf[at + 7] = 1;
    }
    buf.fill(0, this.#formatsAt + position * ALIGNMENT, this.#formatsAt + (position + 1) * ALIGNMENT);
    buf.write(format, this.#formatsAt + position * ALIGNMENT, 'latin1');
    buf.writeInt8(code, this.#codesAt + position);
  }
}

// Unpickling: CPython's own SharedMemory pickle (name, create, size) attaches,
// as does a ShareableList by name.
registerReconstructor('multiprocessing.shared_memory', 'SharedMemory',
  (name: string, create = false, size = 0) => new SharedMemory({ name, create, size }));
registerReconstructor(MODULE, 'ShareableList', (name: string) => new ShareableList(null, { name }));
