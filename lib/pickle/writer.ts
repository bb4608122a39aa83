// The pickler: protocols 2–5, byte for byte what CPython 3.11's C pickler
// writes for the corresponding values (memo for shared references and cycles,
// 64 KiB frames at protocol 4+, large bytes/str outside frames, batches of 1000).
import { PicklingError } from '../errors.js';
import { isReducible, reduceSymbol } from '../reduction.js';
import { EXCEPTIONS, Global, writers } from './registry.js';
import {
  Complex, Decimal, Deque, FrozenSet, Float, OrderedDict, PickleBuffer, PyDate, PyDateTime, PyTime, TimeDelta, TimeZone, Tuple, ZoneInfo,
  type TzInfo,
} from './types.js';

export interface DumpsOptions {
  /** 2–5; default 4 (CPython 3.11's DEFAULT_PROTOCOL). */
  protocol?: number;
  /** Protocol 5: receives each PickleBuffer; a falsy return keeps it out of band. */
  buffer_callback?: (buffer: PickleBuffer) => unknown;
}

const FRAME_SIZE_TARGET = 64 * 1024;
const FRAME_SIZE_MIN = 4;
const FRAME_HEADER = 9;
const BATCHSIZE = 1000;
const SMALL_MEMO = 32;
const SLAB_SIZE = 64 * 1024;
const SLAB_MIN_FREE = 4096;
const MAX_DEPTH = 1000; // CPython's own recursion limit; deeper pickles could not be read back by Python's pickler either

/** How a failure deep inside the object is reported: the path is built while unwinding. */
class PathError extends PicklingError {
  readonly path: string[] = [];
  constructor(readonly reason: string) { super(reason); }
}

function fail(reason: string): never {
  throw new PathError(reason);
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function segmentForKey(key: unknown): string {
  if (typeof key === 'string') return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  if (typeof key === 'number' || typeof key === 'bigint' || typeof key === 'boolean') return `[${String(key)}]`;
  return '[<key>]';
}

const EMPTY_BUFFER = Buffer.alloc(0);

/** Python 2 names protocol 2 writes for builtins (fix_imports, _compat_pickle.REVERSE_*). */
const PY2_EXCEPTION_NAMES: Record<string, string> = {
  BlockingIOError: 'OSError', BrokenPipeError: 'OSError', ChildProcessError: 'OSError', ConnectionAbortedError: 'OSError',
  ConnectionError: 'OSError', ConnectionRefusedError: 'OSError', ConnectionResetError: 'OSError', FileExistsError: 'OSError',
  FileNotFoundError: 'OSError', InterruptedError: 'OSError', IsADirectoryError: 'OSError', NotADirectoryError: 'OSError',
  PermissionError: 'OSError', ProcessLookupError: 'OSError', TimeoutError: 'OSError', ModuleNotFoundError: 'ImportError',
};

const TYPED_ARRAY_CODES = new Map<Function, [string, number]>([
  [Int8Array, ['b', 1]], [Uint8ClampedArray, ['B', 0]], [Int16Array, ['h', 4]], [Uint16Array, ['H', 2]],
  [Int32Array, ['i', 8]], [Uint32Array, ['I', 6]], [BigInt64Array, ['q', 12]], [BigUint64Array, ['Q', 10]],
  [Float32Array, ['f', 14]], [Float64Array, ['d', 16]],
]);

class Pickler {
  // Pickles are written one after another into a slab and returned as views of it
  // (no copy); `base` is where the current one starts. A pickle that outgrows the
  // slab moves to a bigger buffer of its own.
  buf: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE);
  base = 0;
  pos = 0;
  proto = 4;
  framing = false;
  frameStart = -1;
  depth = 0;
  // The memo: index → object (undefined for temporaries). Small pickles search it
  // linearly (no hashing, nothing allocated); past SMALL_MEMO entries a Map takes over.
  readonly memoKeys: unknown[] = [];
  memoCount = 0;
  memoMap: Map<unknown, number> | null = null;
  readonly bigMemo = new Map<unknown, number>();
  readonly globalMemo = new Map<string, number>();
  bufferCallback: ((buffer: PickleBuffer) => unknown) | undefined;
  busy = false;

  dump(obj: unknown, options?: DumpsOptions): Buffer {
    const proto = options?.protocol ?? 4;
    if (!Number.isInteger(proto) || proto < 2 || proto > 5) throw new RangeError(`pickle protocol must be 2..5 (got ${String(proto)}); protocols 0 and 1 are read but not written`);
    this.proto = proto;
    this.bufferCallback = options?.buffer_callback;
    if (this.bufferCallback !== undefined && proto < 5) throw new PicklingError('buffer_callback needs protocol >= 5');
    if (this.buf.length - this.base < SLAB_MIN_FREE) {
      this.buf = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.base = 0;
    }
    this.depth = 0;
    this.buf[this.base] = 0x80;
    this.buf[this.base + 1] = proto;
    this.pos = this.base + 2;
    this.framing = proto >= 4;
    if (this.framing) this.startFrame();
    try {
      this.save(obj);
      this.byte(0x2e); // STOP
      if (this.framing) this.commitFrame(false);
    } catch (error) {
      throw finish(error);
    } finally {
      const keys = this.memoKeys;
      for (let i = this.memoCount < SMALL_MEMO ? this.memoCount : SMALL_MEMO; i-- > 0;) keys[i] = undefined;
      this.memoCount = 0;
      if (this.memoMap !== null) {
        this.memoMap.clear();
        this.memoMap = null;
      }
      if (this.globalMemo.size > 0) this.globalMemo.clear();
      this.bufferCallback = undefined;
    }
    const out = this.buf.subarray(this.base, this.pos);
    // The next pickle goes after this one, unless this one had a buffer of its own.
    this.base = this.buf.length > SLAB_SIZE ? this.buf.length : (this.pos + 7) & ~7;
    return out;
  }

  // ---- output -------------------------------------------------------------

  grow(n: number): void {
    const used = this.pos - this.base;
    // Double for many small writes; a big payload gets what it needs plus room for the rest.
    const size = n > SLAB_SIZE ? used + n + SLAB_SIZE : Math.max(SLAB_SIZE, (used + n) * 2);
    const bigger = Buffer.allocUnsafeSlow(size);
    this.buf.copy(bigger, 0, this.base, this.pos);
    this.buf = bigger;
    this.frameStart -= this.base;
    this.pos = used;
    this.base = 0;
  }

  byte(b: number): void {
    if (this.pos + 1 > this.buf.length) this.grow(1);
    this.buf[this.pos++] = b;
  }

  bytes2(a: number, b: number): void {
    if (this.pos + 2 > this.buf.length) this.grow(2);
    this.buf[this.pos++] = a;
    this.buf[this.pos++] = b;
  }

  u32(op: number, value: number): void {
    if (this.pos + 5 > this.buf.length) this.grow(5);
    const buf = this.buf;
    buf[this.pos] = op;
    buf.writeUInt32LE(value, this.pos + 1);
    this.pos += 5;
  }

  u64(op: number, value: number): void {
    if (this.pos + 9 > this.buf.length) this.grow(9);
    this.buf[this.pos] = op;
    this.buf.writeUInt32LE(value % 0x100000000, this.pos + 1);
    this.buf.writeUInt32LE(Math.floor(value / 0x100000000), this.pos + 5);
    this.pos += 9;
  }

  ascii(text: string): void {
    if (this.pos + text.length > this.buf.length) this.grow(text.length);
    this.pos += this.buf.write(text, this.pos, 'latin1');
  }

  startFrame(): void {
    if (this.pos + FRAME_HEADER > this.buf.length) this.grow(FRAME_HEADER);
    this.frameStart = this.pos;
    this.pos += FRAME_HEADER;
  }

  /** Ends the current frame (a frame under 4 bytes loses its header, as in CPython); optionally starts the next. */
  commitFrame(next: boolean): void {
    const start = this.frameStart;
    const length = this.pos - start - FRAME_HEADER;
    if (length >= FRAME_SIZE_MIN) {
      const buf = this.buf;
      buf[start] = 0x95;
      buf.writeUInt32LE(length % 0x100000000, start + 1);
      buf.writeUInt32LE(Math.floor(length / 0x100000000), start + 5);
    } else {
      this.buf.copyWithin(start, start + FRAME_HEADER, this.pos);
      this.pos -= FRAME_HEADER;
    }
    this.frameStart = -1;
    if (next) this.startFrame();
  }

  /** Before each object, as CPython's pickler: a frame past 64 KiB is committed. */
  boundary(): void {
    if (this.framing && this.pos - this.frameStart - FRAME_HEADER >= FRAME_SIZE_TARGET) this.commitFrame(true);
  }

  /** A header and a payload; a payload of 64 KiB or more goes outside any frame. */
  payload(data: Uint8Array, header: () => void): void {
    const large = this.framing && data.length >= FRAME_SIZE_TARGET;
    if (large) {
      this.commitFrame(false);
    }
    header();
    if (this.pos + data.length > this.buf.length) this.grow(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    if (large) this.startFrame();
  }

  // ---- memo ---------------------------------------------------------------

  /** The memo index of `key`, or -1. */
  memoLookup(key: unknown): number {
    if (this.memoMap !== null) return this.memoMap.get(key) ?? -1;
    const keys = this.memoKeys;
    for (let i = 0; i < this.memoCount; i++) if (keys[i] === key) return i;
    return -1;
  }

  memoize(obj: unknown): void {
    const index = this.memoCount++;
    if (this.memoMap !== null) this.memoMap.set(obj, index);
    else {
      this.memoKeys[index] = obj;
      if (this.memoCount > SMALL_MEMO) this.spillMemo();
    }
    this.put(index);
  }

  /** Writes the memo opcode for an object nobody will look up (a temporary CPython memoizes too). */
  memoizeAnonymous(): number {
    const index = this.memoCount++;
    if (this.memoMap === null) {
      this.memoKeys[index] = undefined;
      if (this.memoCount > SMALL_MEMO) this.spillMemo();
    }
    this.put(index);
    return index;
  }

  spillMemo(): void {
    const map = this.bigMemo;
    for (let i = 0; i < SMALL_MEMO; i++) if (this.memoKeys[i] !== undefined) map.set(this.memoKeys[i], i);
    this.memoKeys.fill(undefined, 0, SMALL_MEMO);
    if (this.memoKeys[SMALL_MEMO] !== undefined) map.set(this.memoKeys[SMALL_MEMO], SMALL_MEMO);
    this.memoKeys[SMALL_MEMO] = undefined;
    this.memoMap = map;
  }

  put(index: number): void {
    if (this.proto >= 4) this.byte(0x94); // MEMOIZE
    else if (index < 256) this.bytes2(0x71, index); // BINPUT
    else this.u32(0x72, index); // LONG_BINPUT
  }

  get(index: number): void {
    if (index < 256) this.bytes2(0x68, index); // BINGET
    else this.u32(0x6a, index); // LONG_BINGET
  }

  // ---- values -------------------------------------------------------------

  save(obj: unknown): void {
    if (this.framing) this.boundary();
    switch (typeof obj) {
      case 'number': this.saveNumber(obj); break;
      case 'string': this.saveString(obj); break;
      case 'boolean': this.byte(obj ? 0x88 : 0x89); break;
      case 'object':
        if (obj === null) this.byte(0x4e);
        else this.saveObject(obj);
        break;
      case 'undefined': this.byte(0x4e); break;
      case 'bigint': this.saveBigInt(obj); break;
      case 'function': fail(`cannot pickle 'function' object${obj.name ? ` (${obj.name})` : ''}`);
      default: fail(`cannot pickle '${typeof obj}' object`);
    }
  }

  saveNumber(value: number): void {
    if (Number.isInteger(value) && !(value === 0 && 1 / value < 0)) {
      if (value >= 0) {
        if (value <= 0xff) return this.bytes2(0x4b, value); // BININT1
        if (value <= 0xffff) {
          if (this.pos + 3 > this.buf.length) this.grow(3);
          this.buf[this.pos] = 0x4d; // BININT2
          this.buf[this.pos + 1] = value & 0xff;
          this.buf[this.pos + 2] = value >> 8;
          this.pos += 3;
          return;
        }
      }
      if (value >= -0x80000000 && value <= 0x7fffffff) {
        if (this.pos + 5 > this.buf.length) this.grow(5);
        this.buf[this.pos] = 0x4a; // BININT
        this.buf.writeInt32LE(value, this.pos + 1);
        this.pos += 5;
        return;
      }
      if (Number.isSafeInteger(value)) return this.saveSafeLong(value);
    }
    this.saveFloat(value);
  }

  saveFloat(value: number): void {
    if (this.pos + 9 > this.buf.length) this.grow(9);
    this.buf[this.pos] = 0x47; // BINFLOAT
    this.buf.writeDoubleBE(value, this.pos + 1);
    this.pos += 9;
  }

  /** LONG1 for an integer beyond int32 but within 2^53: the minimal two's complement bytes, as CPython writes, without BigInt. */
  saveSafeLong(value: number): void {
    let size = 5;
    while (value < -(2 ** (8 * size - 1)) || value >= 2 ** (8 * size - 1)) size++;
    if (this.pos + 10 > this.buf.length) this.grow(10);
    this.buf[this.pos] = 0x8a; // LONG1
    this.buf[this.pos + 1] = size;
    // ToUint32 is the value modulo 2^32; the floor division keeps the sign in the high word.
    this.buf.writeUInt32LE(value >>> 0, this.pos + 2);
    this.buf.writeInt32LE(Math.floor(value / 2 ** 32), this.pos + 6);
    this.pos += 2 + size;
  }

  saveBigInt(value: bigint): void {
    if (value >= 0n && value <= 0xffffn) return this.saveNumber(Number(value));
    if (value >= -0x80000000n && value <= 0x7fffffffn) return this.saveNumber(Number(value));
    const bytes = encodeLong(value);
    if (bytes.length < 256) {
      this.bytes2(0x8a, bytes.length); // LONG1
    } else {
      this.u32(0x8b, bytes.length); // LONG4
    }
    if (this.pos + bytes.length > this.buf.length) this.grow(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  saveString(text: string): void {
    const memo = this.memoLookup(text);
    if (memo >= 0) return this.get(memo);
    this.writeString(text);
    this.memoize(text);
  }

  /** SHORT_BINUNICODE / BINUNICODE / BINUNICODE8 with UTF-8 (lone surrogates as 'surrogatepass'). */
  writeString(text: string): void {
    const n = text.length;
    if (this.proto >= 4 && n <= 85) {
      // At most 255 UTF-8 bytes: the short form with a 1-byte length.
      if (this.pos + 2 + n * 3 > this.buf.length) this.grow(2 + n * 3);
      const buf = this.buf;
      const start = this.pos + 2;
      let i = 0;
      if (n <= 24) {
        for (; i < n; i++) {
          const c = text.charCodeAt(i);
          if (c >= 0x80) break;
          buf[start + i] = c;
        }
      }
      let length = i;
      if (i < n) {
        if (!isWellFormed(text)) return this.writeLongString(surrogatePass(text));
        length = buf.write(text, start);
      }
      buf[this.pos] = 0x8c;
      buf[this.pos + 1] = length;
      this.pos = start + length;
      return;
    }
    if (!isWellFormed(text)) return this.writeLongString(surrogatePass(text));
    if (n > FRAME_SIZE_TARGET / 3 || this.proto < 4) {
      this.writeLongString(Buffer.from(text, 'utf8'));
      return;
    }
    // Up to 64 KiB of UTF-8: encode in place after the longest header, then fix the header.
    if (this.pos + 5 + n * 3 > this.buf.length) this.grow(5 + n * 3);
    const length = this.buf.write(text, this.pos + 5);
    if (length < 256) {
      this.buf.copyWithin(this.pos + 2, this.pos + 5, this.pos + 5 + length);
      this.buf[this.pos] = 0x8c;
      this.buf[this.pos + 1] = length;
      this.pos += 2 + length;
    } else {
      this.buf[this.pos] = 0x58;
      this.buf.writeUInt32LE(length, this.pos + 1);
      this.pos += 5 + length;
    }
  }

  writeLongString(data: Buffer): void {
    const length = data.length;
    this.payload(data, () => {
      if (length < 256 && this.proto >= 4) this.bytes2(0x8c, length);
      else if (length <= 0xffffffff) this.u32(0x58, length);
      else this.u64(0x8d, length);
    });
  }

  saveBytes(data: Uint8Array, obj: object): void {
    if (this.proto < 3) {
      // Protocol 2 has no bytes opcodes: _codecs.encode(data.decode('latin1'), 'latin1'), or bytes() when empty.
      if (data.length === 0) {
        this.saveGlobal('builtins', 'bytes');
        this.byte(0x29);
        this.byte(0x52);
      } else {
        this.saveGlobal('_codecs', 'encode');
        this.writeString(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1'));
        this.memoizeAnonymous();
        this.saveString('latin1');
        this.byte(0x86);
        this.memoizeAnonymous();
        this.byte(0x52);
      }
      this.memoize(obj);
      return;
    }
    const length = data.length;
    this.payload(data, () => {
      if (length < 256) this.bytes2(0x43, length); // SHORT_BINBYTES
      else if (length <= 0xffffffff) this.u32(0x42, length); // BINBYTES
      else this.u64(0x8e, length); // BINBYTES8
    });
    this.memoize(obj);
  }

  saveByteArray(data: Uint8Array, obj: object): void {
    if (this.proto >= 5) {
      this.payload(data, () => this.u64(0x96, data.length)); // BYTEARRAY8
      this.memoize(obj);
      return;
    }
    // bytearray(bytes) as REDUCE (bytearray() when empty); the bytes are a temporary CPython memoizes too.
    if (data.length === 0) return this.saveReduce('builtins', 'bytearray', [], obj);
    this.saveGlobal('builtins', 'bytearray');
    this.saveBytes(data, {});
    this.byte(0x85);
    this.memoizeAnonymous();
    this.byte(0x52);
    this.memoize(obj);
  }

  saveGlobal(module: string, name: string): void {
    const key = `${module}\n${name}`;
    const memo = this.globalMemo.get(key);
    if (memo !== undefined) return this.get(memo);
    if (this.proto >= 4) {
      // CPython's module names are interned strings (shared with equal str values), the
      // qualified names fresh objects (memoized, never shared); array.array's module is fresh too.
      if (module === 'array' && name === 'array') {
        this.writeString(module);
        this.memoizeAnonymous();
      } else {
        this.saveString(module);
      }
      this.writeString(name);
      this.memoizeAnonymous();
      this.byte(0x93); // STACK_GLOBAL
    } else {
      if (this.proto < 3) [module, name] = py2Name(module, name);
      this.byte(0x63); // GLOBAL
      this.ascii(`${module}\n${name}\n`);
    }
    this.globalMemo.set(key, this.memoizeAnonymous());
  }

  /** callable(*args) as CPython's save_reduce: the global, the args tuple, REDUCE, then the result memoized. */
  saveReduce(module: string, name: string, args: readonly unknown[], obj: object | null): void {
    this.saveGlobal(module, name);
    this.saveTupleItems(args, null);
    this.byte(0x52);
    if (obj !== null) this.memoize(obj);
  }

  saveObject(obj: object): void {
    const memo = this.memoLookup(obj);
    if (memo >= 0) return this.get(memo);
    if (++this.depth > MAX_DEPTH) fail(`object nested more than ${MAX_DEPTH} levels deep`);
    const ctor = obj.constructor;
    if (ctor === Object || (ctor === undefined && Object.getPrototypeOf(obj) === null)) this.savePlainObject(obj as Record<string, unknown>);
    else if (ctor === Array) this.saveList(obj as unknown[]);
    else if (ctor === Tuple) this.saveTuple(obj as unknown[]);
    else if (obj instanceof Map) {
      if (obj instanceof OrderedDict) {
        this.saveReduce('collections', 'OrderedDict', [], obj);
        this.saveSetItems(obj, true);
      } else {
        this.saveDict(obj);
      }
    }
    else if (Buffer.isBuffer(obj)) this.saveBytes(obj, obj);
    else if (ArrayBuffer.isView(obj)) this.saveTypedArray(obj);
    else if (obj instanceof ArrayBuffer) this.saveBytes(new Uint8Array(obj), obj);
    else if (obj instanceof Set) {
      if (obj instanceof FrozenSet) this.saveFrozenSet(obj); else this.saveSet(obj);
    }
    else if (obj instanceof Float) { this.saveFloat(obj.value); }
    else if (obj instanceof Deque) {
      this.saveReduce('collections', 'deque', obj.maxlen === null ? [] : [new Tuple(), obj.maxlen], obj);
      this.saveAppends(obj, true);
    }
    else if (Array.isArray(obj)) this.saveList(obj);
    else this.saveOther(obj);
    this.depth--;
  }

  saveOther(obj: object): void {
    const registered = writers.get(obj.constructor);
    if (registered !== undefined) return this.saveRegistered(obj, registered.module, registered.name, registered.reduce);
    if (isReducible(obj)) {
      const reduction = obj[reduceSymbol]();
      if (!Array.isArray(reduction) || reduction.length !== 3 || typeof reduction[0] !== 'string' || typeof reduction[1] !== 'string' || !Array.isArray(reduction[2])) {
        fail(`[reduceSymbol]() of ${obj.constructor?.name ?? 'object'} must return [module, name, args]`);
      }
      return this.saveReduce(reduction[0], reduction[1], reduction[2], obj);
    }
    if (obj instanceof Date) {
      if (Number.isNaN(obj.getTime())) fail('cannot pickle an invalid Date');
      return this.saveDateTime(PyDateTime.fromDate(obj), obj);
    }
    if (obj instanceof PyDateTime) return this.saveDateTime(obj, obj);
    if (obj instanceof PyDate) return this.saveDateState('date', dateState(obj), null, obj);
    if (obj instanceof PyTime) return this.saveDateState('time', timeState(obj, this.proto), obj.tzinfo, obj);
    if (obj instanceof TimeDelta) return this.saveReduce('datetime', 'timedelta', [obj.days, obj.seconds, obj.microseconds], obj);
    if (obj instanceof TimeZone) return this.saveReduce('datetime', 'timezone', obj.name === null ? [obj.offset] : [obj.offset, obj.name], obj);
    if (obj instanceof ZoneInfo) return this.saveZoneInfo(obj);
    if (obj instanceof Decimal) return this.saveReduce('decimal', 'Decimal', [obj.value], obj);
    if (obj instanceof Complex) return this.saveReduce('builtins', 'complex', [new Float(obj.real), new Float(obj.imag)], obj);
    if (obj instanceof PickleBuffer) return this.savePickleBuffer(obj);
    if (obj instanceof Global) return this.saveGlobal(obj.module, obj.name);
    if (obj instanceof Error) return this.saveError(obj);
    fail(`cannot pickle '${obj.constructor?.name ?? 'object'}' object (register it with registerClass)`);
  }

  saveRegistered(obj: object, module: string, name: string, reduce: ((obj: any) => unknown[]) | undefined): void {
    if (reduce !== undefined) return this.saveReduce(module, name, reduce(obj), obj);
    // A plain instance, as object.__reduce_ex__(2+) writes it: cls, (), NEWOBJ, then its state.
    this.saveGlobal(module, name);
    this.byte(0x29);
    this.byte(0x81);
    this.memoize(obj);
    const getState = (obj as { __getstate__?: () => unknown }).__getstate__;
    const state = typeof getState === 'function' ? getState.call(obj) : ownState(obj);
    if (state === null || state === undefined) return;
    this.save(state);
    this.byte(0x62); // BUILD
  }

  saveError(error: Error): void {
    let name = EXCEPTIONS.has(error.name) ? error.name : 'Exception';
    const args = Array.isArray((error as { args?: unknown }).args) ? (error as unknown as { args: unknown[] }).args : [error.message];
    if (this.proto < 3 && PY2_EXCEPTION_NAMES[name]) name = PY2_EXCEPTION_NAMES[name];
    this.saveReduce('builtins', name, args, error);
    const state = ownState(error);
    if (state === null) return;
    this.save(state);
    this.byte(0x62); // BUILD
  }

  saveDateTime(value: PyDateTime, obj: object): void {
    const s = Buffer.allocUnsafe(10);
    s[0] = value.year >> 8;
    s[1] = value.year & 0xff;
    s[2] = value.month | (value.fold && this.proto > 3 ? 0x80 : 0);
    s[3] = value.day;
    s[4] = value.hour;
    s[5] = value.minute;
    s[6] = value.second;
    s[7] = value.microsecond >> 16;
    s[8] = (value.microsecond >> 8) & 0xff;
    s[9] = value.microsecond & 0xff;
    this.saveDateState('datetime', s, value.tzinfo, obj);
  }

  /** getattr(ZoneInfo, '_unpickle')(key, 1), as CPython writes a ZoneInfo (a bound classmethod) at every protocol. */
  saveZoneInfo(zone: ZoneInfo): void {
    this.saveGlobal('builtins', 'getattr');
    this.saveGlobal('zoneinfo', 'ZoneInfo');
    this.saveString('_unpickle');
    this.byte(0x86);
    this.memoizeAnonymous();
    this.byte(0x52);
    this.memoizeAnonymous();
    this.saveTupleItems([zone.key, 1], null);
    this.byte(0x52);
    this.memoize(zone);
  }

  saveDateState(name: string, state: Buffer, tzinfo: TzInfo | null, obj: object): void {
    this.saveReduce('datetime', name, tzinfo === null ? [state] : [state, tzinfo], obj);
  }

  saveTypedArray(view: ArrayBufferView): void {
    const ctor = view.constructor;
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    if (ctor === Uint8Array) return this.saveByteArray(bytes, view);
    const code = TYPED_ARRAY_CODES.get(ctor);
    if (code === undefined) fail(`cannot pickle '${ctor?.name ?? 'ArrayBufferView'}' object`);
    if (this.proto < 3) {
      // array(typecode, [items]) as protocol 2 writes it.
      const items = Array.from(view as unknown as ArrayLike<number | bigint>, (item) => (code[0] === 'f' || code[0] === 'd' ? new Float(item as number) : item));
      return this.saveReduce('array', 'array', [code[0], items], view);
    }
    this.saveGlobal('array', '_array_reconstructor');
    this.byte(0x28);
    this.saveGlobal('array', 'array');
    this.saveString(code[0]);
    this.saveNumber(code[1]);
    this.saveBytes(Buffer.from(bytes), {});
    this.byte(0x74);
    this.memoizeAnonymous();
    this.byte(0x52);
    this.memoize(view);
  }

  savePickleBuffer(pb: PickleBuffer): void {
    if (this.proto < 5) fail('PickleBuffer can only be pickled with protocol >= 5');
    const inBand = this.bufferCallback === undefined || Boolean(this.bufferCallback(pb));
    if (inBand) {
      if (pb.readonly) this.saveBytes(pb.data, pb);
      else this.saveByteArray(pb.data, pb);
      return;
    }
    this.byte(0x97); // NEXT_BUFFER
    if (pb.readonly) this.byte(0x98); // READONLY_BUFFER
  }

  // ---- containers ---------------------------------------------------------

  saveList(list: unknown[]): void {
    this.byte(0x5d); // EMPTY_LIST
    this.memoize(list);
    this.saveAppends(list);
  }

  /**
   * APPEND/APPENDS in batches of 1000, as CPython: a list (batch_list_exact) writes a
   * lone item with APPEND and every batch with MARK; an iterator (deque, batch_list)
   * writes a lone last item with APPEND.
   */
  saveAppends(list: unknown[], iterator = false): void {
    const n = list.length;
    if (n === 0) return;
    let i = 0;
    try {
      if (n === 1) {
        this.save(list[0]);
        this.byte(0x61);
        return;
      }
      while (i < n) {
        if (iterator && n - i === 1) {
          this.save(list[i++]);
          this.byte(0x61);
          return;
        }
        this.byte(0x28);
        const end = Math.min(n, i + BATCHSIZE);
        for (; i < end; i++) this.save(list[i]);
        this.byte(0x65);
      }
    } catch (error) {
      throw addPath(error, `[${i}]`);
    }
  }

  saveTuple(items: unknown[]): void {
    if (items.length === 0) {
      this.byte(0x29); // EMPTY_TUPLE
      return;
    }
    this.saveTupleItems(items, items);
  }

  /** A tuple's items and opcode, memoized; a tuple reached again through its own items (a cycle) is fetched back. */
  saveTupleItems(items: readonly unknown[], obj: object | null): void {
    const n = items.length;
    if (n === 0) return this.byte(0x29);
    const small = n <= 3;
    if (!small) this.byte(0x28);
    let i = 0;
    try {
      for (; i < n; i++) this.save(items[i]);
    } catch (error) {
      throw addPath(error, `[${i}]`);
    }
    if (obj !== null) {
      const memo = this.memoLookup(obj);
      if (memo >= 0) {
        // Recursive tuple: drop what was pushed and fetch the memoized one.
        if (small) for (let j = 0; j < n; j++) this.byte(0x30);
        else this.byte(0x31);
        return this.get(memo);
      }
    }
    this.byte(small ? 0x84 + n : 0x74); // TUPLE1..3 / TUPLE
    if (obj !== null) this.memoize(obj);
    else this.memoizeAnonymous();
  }

  savePlainObject(obj: Record<string, unknown>): void {
    this.byte(0x7d); // EMPTY_DICT
    this.memoize(obj);
    const keys = Object.keys(obj);
    const n = keys.length;
    if (n === 0) return;
    let i = 0;
    try {
      if (n === 1) {
        if (this.framing) this.boundary();
        this.saveString(keys[0]);
        this.save(obj[keys[0]]);
        this.byte(0x73); // SETITEM
        return;
      }
      // CPython's batch_dict_exact: MARK … SETITEMS per 1000, and one more (empty) batch after a full one.
      let count: number;
      do {
        this.byte(0x28);
        count = 0;
        for (; i < n && count < BATCHSIZE; i++, count++) {
          const key = keys[i];
          if (this.framing) this.boundary();
          this.saveString(key);
          this.save(obj[key]);
        }
        this.byte(0x75);
      } while (count === BATCHSIZE);
    } catch (error) {
      throw addPath(error, segmentForKey(keys[i]));
    }
  }

  saveDict(map: Map<unknown, unknown>): void {
    this.byte(0x7d); // EMPTY_DICT
    this.memoize(map);
    this.saveSetItems(map, false);
  }

  /**
   * SETITEM/SETITEMS as CPython: a dict (batch_dict_exact) writes one item with SETITEM,
   * else MARK … SETITEMS per 1000 plus an empty batch after a full one; an iterator
   * (OrderedDict's items, batch_dict) writes a lone last item with SETITEM.
   */
  saveSetItems(map: Map<unknown, unknown>, iterator: boolean): void {
    const n = map.size;
    if (n === 0) return;
    let key: unknown;
    try {
      if (n === 1) {
        for (const [k, v] of map) {
          key = k;
          this.save(k);
          this.save(v);
        }
        this.byte(0x73); // SETITEM
        return;
      }
      const entries = map.entries();
      let left = n;
      let count: number;
      do {
        if (iterator && left <= 1) {
          if (left === 1) {
            const [k, v] = entries.next().value!;
            key = k;
            this.save(k);
            this.save(v);
            this.byte(0x73);
          }
          return;
        }
        this.byte(0x28);
        for (count = 0; count < BATCHSIZE && left > 0; count++, left--) {
          const [k, v] = entries.next().value!;
          key = k;
          this.save(k);
          this.save(v);
        }
        this.byte(0x75); // SETITEMS
      } while (count === BATCHSIZE);
    } catch (error) {
      throw addPath(error, segmentForKey(key));
    }
  }

  saveSet(set: Set<unknown>): void {
    if (this.proto < 4) return this.saveReduce('builtins', 'set', [[...set]], set);
    this.byte(0x8f); // EMPTY_SET
    this.memoize(set);
    if (set.size === 0) return;
    let count = 0;
    let i = 0;
    try {
      this.byte(0x28);
      for (const item of set) {
        if (count === BATCHSIZE) {
          this.byte(0x90);
          this.byte(0x28);
          count = 0;
        }
        this.save(item);
        count++;
        i++;
      }
      this.byte(0x90); // ADDITEMS
      if (count === BATCHSIZE) {
        // CPython's loop runs once more after a full batch and writes an empty one.
        this.byte(0x28);
        this.byte(0x90);
      }
    } catch (error) {
      throw addPath(error, `{${i}}`);
    }
  }

  saveFrozenSet(set: Set<unknown>): void {
    if (this.proto < 4) return this.saveReduce('builtins', 'frozenset', [[...set]], set);
    this.byte(0x28);
    let i = 0;
    try {
      for (const item of set) {
        this.save(item);
        i++;
      }
    } catch (error) {
      throw addPath(error, `{${i}}`);
    }
    const memo = this.memoLookup(set);
    if (memo >= 0) {
      this.byte(0x31);
      return this.get(memo);
    }
    this.byte(0x91); // FROZENSET
    this.memoize(set);
  }
}

function addPath(error: unknown, segment: string): unknown {
  if (error instanceof PathError) error.path.unshift(segment);
  else if (error instanceof RangeError && String(error.message).indexOf('call stack') >= 0) {
    const deep = new PathError('object nested too deeply to pickle');
    deep.path.unshift(segment);
    return deep;
  }
  return error;
}

function finish(error: unknown): unknown {
  const wrapped = addPath(error, '');
  if (wrapped instanceof PathError) {
    const path = `obj${wrapped.path.join('')}`;
    const shown = path.length > 200 ? `${path.slice(0, 100)}…${path.slice(-100)}` : path;
    return new PicklingError(`${wrapped.reason} at ${shown}`);
  }
  return wrapped;
}

/** The own enumerable properties of an instance as its state dict, or null when there are none (CPython 3.11's object.__getstate__). */
function ownState(obj: object): Record<string, unknown> | null {
  const keys = Object.keys(obj);
  if (keys.length === 0) return null;
  const state: Record<string, unknown> = {};
  for (const key of keys) state[key] = (obj as Record<string, unknown>)[key];
  return state;
}

function py2Name(module: string, name: string): [string, string] {
  if (module === 'builtins') return EXCEPTIONS.has(name) ? ['exceptions', name] : ['__builtin__', name];
  if (module === 'copyreg') return ['copy_reg', name];
  return [module, name];
}

function dateState(value: PyDate): Buffer {
  return Buffer.from([value.year >> 8, value.year & 0xff, value.month, value.day]);
}

function timeState(value: PyTime, proto: number): Buffer {
  return Buffer.from([value.hour | (value.fold && proto > 3 ? 0x80 : 0), value.minute, value.second,
    value.microsecond >> 16, (value.microsecond >> 8) & 0xff, value.microsecond & 0xff]);
}

/** Python's encode_long: minimal little-endian two's complement. */
export function encodeLong(value: bigint): Buffer {
  if (value === 0n) return EMPTY_BUFFER;
  let hex = (value < 0n ? -value : value).toString(16);
  const bits = hex.length * 4 - Math.clz32(parseInt(hex[0], 16)) + 28;
  const size = (bits >> 3) + 1;
  const twos = value < 0n ? (1n << BigInt(size * 8)) + value : value;
  hex = twos.toString(16).padStart(size * 2, '0');
  const out = Buffer.from(hex, 'hex').reverse();
  if (value < 0n && size > 1 && out[size - 1] === 0xff && (out[size - 2] & 0x80) !== 0) return out.subarray(0, size - 1);
  return out;
}

/** False when the string has a lone surrogate (String.prototype.isWellFormed, Node 20+). */
function isWellFormed(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** A JS string with lone surrogates as CPython's 'surrogatepass' UTF-8 (3 bytes per surrogate). */
function surrogatePass(text: string): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) { i++; continue; }
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      parts.push(Buffer.from(text.slice(start, i), 'utf8'), Buffer.from([0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)]));
      start = i + 1;
    }
  }
  parts.push(Buffer.from(text.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

let shared: Pickler | null = null;

/** `pickle.dumps(obj, protocol)`: the bytes CPython's pickler writes for the corresponding value. */
export function dumps(obj: unknown, options?: DumpsOptions): Buffer {
  // One reusable pickler; a nested dumps (from a reduce hook) gets its own.
  const pickler = shared !== null && !shared.busy ? shared : new Pickler();
  shared ??= pickler;
  pickler.busy = true;
  try {
    return pickler.dump(obj, options);
  } finally {
    pickler.busy = false;
  }
}
