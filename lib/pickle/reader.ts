// The unpickler: protocols 0–5, every opcode CPython 3.11 reads. It is a loop
// over an explicit stack (no recursion on the input's depth), checks every
// declared length against the bytes actually present before allocating, and
// resolves globals only through the registry's allow-list. Every failure is an
// UnpicklingError naming the byte offset of the opcode.
import { UnpicklingError } from '../errors.js';
import { Global, createInstance, describe, lookupGlobal } from './registry.js';
import { Deque, Dict, FrozenSet, Float, PickleBuffer, Tuple, takeHashedNodes } from './types.js';

export interface LoadsOptions {
  /** Protocol 5 out-of-band buffers, consumed in order by NEXT_BUFFER. */
  buffers?: Iterable<unknown>;
  /** How Python 2 `str` (STRING, BINSTRING) is decoded: 'ASCII' (CPython's default), 'latin1', 'utf-8', or 'bytes' to keep bytes. */
  encoding?: 'ASCII' | 'ascii' | 'latin1' | 'latin-1' | 'utf-8' | 'utf8' | 'bytes';
}

const mapSet = Map.prototype.set;
const EMPTY = Buffer.alloc(0);
const SHORT_STRING = 16;
const WORK_PER_BYTE = 4;
const BASE_WORK = 1 << 18;

/** The shallow size of a value, for the work budget. */
function size(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  if (Array.isArray(value) || ArrayBuffer.isView(value)) return (value as { length: number }).length >>> 0;
  if (value instanceof Map || value instanceof Set) return value.size;
  return 0;
}
const STRING_CACHE_SIZE = 4096;
const stringCache: (string | undefined)[] = new Array(STRING_CACHE_SIZE).fill(undefined);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** An int as the mapping has it: a number when exact, else a bigint. */
function intValue(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
}

/** A float as the mapping has it: integral values become Float so they are written back as floats. */
function floatValue(value: number): number | Float {
  return Number.isSafeInteger(value) && !(value === 0 && 1 / value < 0) ? new Float(value) : value;
}

class Unpickler {
  buf: Buffer = EMPTY;
  end = 0;
  readonly stack: unknown[] = [];
  readonly marks: number[] = [];
  fence = 0;
  readonly memo: unknown[] = [];
  memoLength = 0;
  pos = 0;
  op = 0;
  buffers: Iterator<unknown> | null = null;
  encoding: NonNullable<LoadsOptions['encoding']> = 'ASCII';
  options: LoadsOptions | undefined = undefined;
  busy = false;
  /** Work left: operations that reuse memoized data (REDUCE, BUILD, hashing keys) can cost more than their bytes, so the total is bounded by the input's size. */
  work = 0;

  start(buf: Buffer, options: LoadsOptions | undefined): void {
    this.work = WORK_PER_BYTE * buf.length + BASE_WORK;
    takeHashedNodes();
    this.buf = buf;
    this.end = buf.length;
    this.pos = 0;
    this.op = 0;
    this.fence = 0;
    this.memoLength = 0;
    this.buffers = null;
    this.options = options;
    this.encoding = options?.encoding ?? 'ASCII';
  }

  /** Drops every reference into the last pickle, so the shared unpickler keeps nothing alive. */
  finish(): void {
    this.buf = EMPTY;
    if (this.stack.length !== 0) this.stack.length = 0;
    if (this.marks.length !== 0) this.marks.length = 0;
    const memo = this.memo;
    if (memo.length > 64) memo.length = 0;
    else for (let i = memo.length; i-- > 0;) memo[i] = undefined;
    this.options = undefined;
    this.buffers = null;
  }


  fail(message: string): never {
    throw new UnpicklingError(`${message} (at byte ${this.op})`);
  }
  need(n: number): void {
    if (n > this.end - this.pos) this.fail(this.pos >= this.end ? 'pickle data was truncated' : `pickle data was truncated: ${n} bytes declared, ${this.end - this.pos} left`);
  }
  u32(): number {
    this.need(4);
    const value = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return value;
  }
  u64(): number {
    this.need(8);
    const low = this.buf.readUInt32LE(this.pos);
    const high = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
    if (high > 0x1fffff) this.fail('declared length exceeds the data');
    return high * 0x100000000 + low;
  }
  line(): string {
    const nl = this.buf.indexOf(10, this.pos);
    if (nl < 0) this.fail('pickle data was truncated (no newline)');
    const text = this.buf.toString('latin1', this.pos, nl);
    this.pos = nl + 1;
    return text;
  }
  pop(): unknown {
    if (this.stack.length <= this.fence) this.fail('unpickling stack underflow');
    return this.stack.pop();
  }
  top(): unknown {
    if (this.stack.length <= this.fence) this.fail('unpickling stack underflow');
    return this.stack[this.stack.length - 1];
  }
  popMark(): number {
    if (this.marks.length === 0) this.fail('could not find MARK');
    const mark = this.marks.pop()!;
    this.fence = this.marks.length > 0 ? this.marks[this.marks.length - 1] : 0;
    return mark;
  }
  text(start: number, length: number): string {
    if (length <= SHORT_STRING) {
      // Short ASCII strings (dict keys, mostly) come from a small cache: no allocation,
      // and the same string each time, whose hash the Maps they key already know.
      const buf = this.buf;
      let hash = length;
      for (let i = start; i < start + length; i++) {
        const c = buf[i];
        if (c >= 0x80) return this.utf8(start, length);
        hash = Math.imul(hash, 31) + c;
      }
      const slot = hash & (STRING_CACHE_SIZE - 1);
      const cached = stringCache[slot];
      if (cached !== undefined && cached.length === length) {
        let i = 0;
        while (i < length && cached.charCodeAt(i) === buf[start + i]) i++;
        if (i === length) return cached;
      }
      let out = '';
      for (let i = start; i < start + length; i++) out += String.fromCharCode(buf[i]);
      stringCache[slot] = out;
      return out;
    }
    return this.utf8(start, length);
  }
  utf8(start: number, length: number): string {
    const decoded = this.buf.toString('utf8', start, start + length);
    if (decoded.indexOf('\uFFFD') < 0) return decoded;
    return surrogatePassDecode(this.buf.subarray(start, start + length)) ?? this.fail("'utf-8' codec can't decode the string");
  }
  bytes(length: number): Buffer {
    this.need(length);
    const out = Buffer.allocUnsafe(length);
    this.buf.copy(out, 0, this.pos, this.pos + length);
    this.pos += length;
    return out;
  }
  pyString(raw: Buffer): unknown {
    switch (this.encoding) {
      case 'bytes': return raw;
      case 'latin1': case 'latin-1': return raw.toString('latin1');
      case 'utf-8': case 'utf8': return surrogatePassDecode(raw) ?? this.fail("'utf-8' codec can't decode the string");
      default:
        for (let i = 0; i < raw.length; i++) if (raw[i] >= 0x80) this.fail("'ascii' codec can't decode a Python 2 str (pass { encoding: 'latin1' } or 'bytes')");
        return raw.toString('latin1');
    }
  }
  memoGet(index: number): void {
    const value = this.memo[index];
    if (value === undefined) this.fail(`Memo value not found at index ${index}`);
    this.stack.push(value);
  }
  /** Pushes a value, taking a MEMOIZE right behind it in the same step (protocol 4 writes one after nearly every value). */
  pushMemoized(value: unknown): void {
    this.stack.push(value);
    if (this.pos < this.end && this.buf[this.pos] === 0x94) {
      this.pos++;
      const index = this.memoLength;
      if (this.memo[index] === undefined) this.memoLength++;
      this.memo[index] = value;
    }
  }
  memoPut(index: number): void {
    if (this.memo[index] === undefined) this.memoLength++;
    this.memo[index] = this.top();
  }
  textIndex(): number {
    const raw = this.line();
    if (!/^\s*\d+\s*$/.test(raw)) this.fail(`invalid memo index ${JSON.stringify(raw)}`);
    return Number(raw);
  }
  resolve(module: unknown, name: unknown): Global {
    if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL requires str');
    const entry = lookupGlobal(module, name);
    if (entry === undefined) this.fail(`global '${module}.${name}' is not allowed (only the codec's own types and registered classes are)`);
    return entry;
  }
  call(callable: unknown, args: unknown): unknown {
    if (!(callable instanceof Global) || callable.call === undefined) this.fail(`${describe(callable)} object is not callable`);
    if (!Array.isArray(args)) this.fail(`argument list must be a tuple, not ${describe(args)}`);
    let cost = args.length;
    for (const arg of args) cost += size(arg);
    this.charge(cost);
    return callable.call(args);
  }
  charge(cost: number): void {
    this.work -= cost;
    if (this.work < 0) this.fail('pickle does far more work than its size accounts for (memoized data reused over and over)');
  }
  instantiate(cls: unknown, args: unknown[]): unknown {
    if (!(cls instanceof Global)) this.fail(`${describe(cls)} object is not a class`);
    if (args.length === 0 && cls.create) return cls.create([], null);
    return this.call(cls, args);
  }
  /** APPEND/APPENDS: the stack items from `from` on go into the list just below them. */
  append(from: number): void {
    const stack = this.stack;
    if (from - 1 < this.fence) this.fail('unpickling stack underflow');
    const target = stack[from - 1] as object | null;
    if ((target !== null && target.constructor === Array) || (Array.isArray(target) && !(target instanceof Tuple))) {
      for (let i = from; i < stack.length; i++) target.push(stack[i]);
      if (target instanceof Deque && target.maxlen !== null && target.length > target.maxlen) target.splice(0, target.length - target.maxlen);
    } else {
      if (target instanceof Tuple) this.fail("'tuple' object has no attribute 'append'");
      const method = (target as { append?: unknown } | null)?.append;
      if (typeof method !== 'function') this.fail(`${describe(target)} object has no attribute 'append'`);
      for (let i = from; i < stack.length; i++) method.call(target, stack[i]);
    }
    while (stack.length > from) stack.pop();
  }
  setItem(target: unknown, key: unknown, value: unknown): void {
    if (typeof key === 'string' && target !== null && (target as object).constructor === Dict) {
      mapSet.call(target, key, value);
      return;
    }
    if (target instanceof Dict) {
      if (typeof key === 'string') mapSet.call(target, key, value);
      else {
        this.checkHashable(key);
        target.set(key, value);
        this.charge(takeHashedNodes());
      }
      return;
    }
    const method = (target as { __setitem__?: unknown } | null)?.__setitem__;
    if (typeof method !== 'function') this.fail(`${describe(target)} object does not support item assignment`);
    method.call(target, key, value);
  }
  checkHashable(key: unknown): void {
    if (key === null || typeof key !== 'object') return;
    if ((Array.isArray(key) && !(key instanceof Tuple)) || key instanceof Map || (key instanceof Set && !(key instanceof FrozenSet)) ||
      (key instanceof Uint8Array && !Buffer.isBuffer(key))) {
      this.fail(`unhashable type: '${describe(key)}'`);
    }
  }
  build(inst: unknown, state: unknown): void {
    if (inst === null || typeof inst !== 'object') this.fail(`cannot set the state of ${describe(inst)}`);
    // Setting properties costs more than reading bytes: BUILD is charged four times its state.
    this.charge(4 * (1 + size(state) + (state instanceof Tuple ? size(state[0]) + size(state[1]) : 0)));
    const setstate = (inst as { __setstate__?: unknown }).__setstate__;
    if (typeof setstate === 'function') {
      setstate.call(inst, state);
      return;
    }
    let slots: unknown = null;
    if (state instanceof Tuple && state.length === 2) [state, slots] = state;
    for (const part of [state, slots]) {
      if (part === null || part === undefined) continue;
      if (!(part instanceof Map)) this.fail('state is not a dictionary');
      for (const [key, value] of part) {
        if (typeof key !== 'string') this.fail('slot state is not a dictionary of str');
        if (key === '__proto__') Object.defineProperty(inst, key, { value, writable: true, enumerable: true, configurable: true });
        else (inst as Record<string, unknown>)[key] = value;
      }
    }
  }
  nextBuffer(): unknown {
    if (this.buffers === null) {
      if (this.options?.buffers === undefined) this.fail('pickle stream refers to out-of-band data but no *buffers* argument was given');
      this.buffers = this.options.buffers[Symbol.iterator]();
    }
    const next = this.buffers.next();
    if (next.done) this.fail('not enough out-of-band buffers');
    const value = next.value;
    if (value instanceof PickleBuffer) return value.readonly ? Buffer.from(value.data.buffer, value.data.byteOffset, value.data.byteLength) : value.data;
    return value;
  }
  splice(mark: number): unknown[] {
    const items = this.stack.slice(mark);
    this.stack.length = mark;
    return items;
  }
  tupleFrom(mark: number): Tuple {
    const t = new Tuple();
    for (let i = mark; i < this.stack.length; i++) t.push(this.stack[i]);
    this.stack.length = mark;
    return t;
  }

  run(): unknown {
    try {
      while (this.pos < this.end) {
        this.op = this.pos;
        const code = this.buf[this.pos++];
        switch (code) {
          case 0x80: { // PROTO
            this.need(1);
            const proto = this.buf[this.pos++];
            if (proto > 5) this.fail(`unsupported pickle protocol: ${proto}`);
            break;
          }
          case 0x95: { // FRAME
            const length = this.u64();
            if (length > this.end - this.pos) this.fail(`FRAME of ${length} bytes but only ${this.end - this.pos} left`);
            break;
          }
          case 0x2e: // STOP
            if (this.stack.length === 0) this.fail('unpickling stack underflow');
            return this.stack.pop();
          // ---- stack
          case 0x28: // MARK
            this.marks.push(this.stack.length);
            this.fence = this.stack.length;
            break;
          case 0x30: // POP
            if (this.stack.length > this.fence) this.stack.pop();
            else this.popMark();
            break;
          case 0x31: // POP_MARK
            this.stack.length = this.popMark();
            break;
          case 0x32: // DUP
            this.stack.push(this.top());
            break;
          // ---- atoms
          case 0x4e: this.stack.push(null); break; // NONE
          case 0x88: this.stack.push(true); break; // NEWTRUE
          case 0x89: this.stack.push(false); break; // NEWFALSE
          case 0x4b: // BININT1
            this.need(1);
            this.stack.push(this.buf[this.pos++]);
            break;
          case 0x4d: // BININT2
            this.need(2);
            this.stack.push(this.buf[this.pos] | (this.buf[this.pos + 1] << 8));
            this.pos += 2;
            break;
          case 0x4a: // BININT
            this.need(4);
            this.stack.push(this.buf.readInt32LE(this.pos));
            this.pos += 4;
            break;
          case 0x8a: { // LONG1
            this.need(1);
            const n = this.buf[this.pos++];
            this.need(n);
            this.stack.push(decodeLong(this.buf, this.pos, n));
            this.pos += n;
            break;
          }
          case 0x8b: { // LONG4
            this.need(4);
            const n = this.buf.readInt32LE(this.pos);
            this.pos += 4;
            if (n < 0) this.fail('LONG pickle has negative byte count');
            this.need(n);
            this.stack.push(decodeLong(this.buf, this.pos, n));
            this.pos += n;
            break;
          }
          case 0x49: { // INT (text; 00/01 are the bools of protocol 0)
            const raw = this.line();
            if (raw === '00') this.stack.push(false);
            else if (raw === '01') this.stack.push(true);
            else this.stack.push(parseIntText(raw) ?? this.fail(`invalid literal for int(): ${JSON.stringify(raw)}`));
            break;
          }
          case 0x4c: { // LONG (text)
            const raw = this.line();
            this.stack.push(parseIntText(raw.endsWith('L') ? raw.slice(0, -1) : raw) ?? this.fail(`invalid literal for int(): ${JSON.stringify(raw)}`));
            break;
          }
          case 0x46: { // FLOAT (text)
            const value = parseFloatText(this.line());
            if (value === null) this.fail('could not convert string to float');
            this.stack.push(floatValue(value));
            break;
          }
          case 0x47: // BINFLOAT
            this.need(8);
            this.stack.push(floatValue(this.buf.readDoubleBE(this.pos)));
            this.pos += 8;
            break;
          // ---- strings and bytes
          case 0x8c: { // SHORT_BINUNICODE
            this.need(1);
            const n = this.buf[this.pos++];
            this.need(n);
            const value = this.text(this.pos, n);
            this.pos += n;
            this.pushMemoized(value);
            break;
          }
          case 0x58: { // BINUNICODE
            const n = this.u32();
            this.need(n);
            this.stack.push(this.text(this.pos, n));
            this.pos += n;
            break;
          }
          case 0x8d: { // BINUNICODE8
            const n = this.u64();
            this.need(n);
            this.stack.push(this.utf8(this.pos, n));
            this.pos += n;
            break;
          }
          case 0x56: // UNICODE (raw-unicode-escape text)
            this.stack.push(rawUnicodeEscape(this.line()) ?? this.fail('invalid raw-unicode-escape data'));
            break;
          case 0x53: { // STRING (quoted Python 2 str)
            const raw = this.line().replace(/\r$/, '');
            if (raw.length < 2 || raw[0] !== raw[raw.length - 1] || (raw[0] !== "'" && raw[0] !== '"')) this.fail('the STRING opcode argument must be quoted');
            this.stack.push(this.pyString(escapeDecode(raw.slice(1, -1)) ?? this.fail('invalid escape in STRING')));
            break;
          }
          case 0x54: { // BINSTRING
            this.need(4);
            const n = this.buf.readInt32LE(this.pos);
            this.pos += 4;
            if (n < 0) this.fail('BINSTRING pickle has negative byte count');
            this.stack.push(this.pyString(this.bytes(n)));
            break;
          }
          case 0x55: { // SHORT_BINSTRING
            this.need(1);
            const n = this.buf[this.pos++];
            this.stack.push(this.pyString(this.bytes(n)));
            break;
          }
          case 0x43: { // SHORT_BINBYTES
            this.need(1);
            const n = this.buf[this.pos++];
            this.stack.push(this.bytes(n));
            break;
          }
          case 0x42: this.stack.push(this.bytes(this.u32())); break; // BINBYTES
          case 0x8e: this.stack.push(this.bytes(this.u64())); break; // BINBYTES8
          case 0x96: { // BYTEARRAY8
            const n = this.u64();
            this.need(n);
            const out = new Uint8Array(n);
            out.set(this.buf.subarray(this.pos, this.pos + n));
            this.pos += n;
            this.stack.push(out);
            break;
          }
          case 0x97: this.stack.push(this.nextBuffer()); break; // NEXT_BUFFER
          case 0x98: { // READONLY_BUFFER
            const value = this.top();
            if (!(value instanceof Uint8Array)) this.fail(`READONLY_BUFFER needs a buffer, not ${describe(value)}`);
            if (!Buffer.isBuffer(value)) this.stack[this.stack.length - 1] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
            break;
          }
          // ---- containers
          case 0x5d: this.pushMemoized([]); break; // EMPTY_LIST
          case 0x7d: this.pushMemoized(new Dict()); break; // EMPTY_DICT
          case 0x29: this.stack.push(new Tuple()); break; // EMPTY_TUPLE
          case 0x8f: this.stack.push(new Set()); break; // EMPTY_SET
          case 0x6c: this.stack.push(this.splice(this.popMark())); break; // LIST
          case 0x74: this.stack.push(this.tupleFrom(this.popMark())); break; // TUPLE
          case 0x85: case 0x86: case 0x87: { // TUPLE1..3
            const n = code - 0x84;
            if (this.stack.length - this.fence < n) this.fail('unpickling stack underflow');
            this.stack.push(this.tupleFrom(this.stack.length - n));
            break;
          }
          case 0x64: { // DICT
            const items = this.splice(this.popMark());
            if (items.length % 2 !== 0) this.fail('odd number of items for DICT');
            const dict = new Dict();
            for (let i = 0; i < items.length; i += 2) this.setItem(dict, items[i], items[i + 1]);
            this.stack.push(dict);
            break;
          }
          case 0x91: { // FROZENSET
            const items = this.splice(this.popMark());
            for (const item of items) this.checkHashable(item);
            this.charge(items.length);
            this.stack.push(new FrozenSet(items));
            break;
          }
          case 0x61: // APPEND
            if (this.stack.length <= this.fence) this.fail('unpickling stack underflow');
            this.append(this.stack.length - 1);
            break;
          case 0x65: // APPENDS
            this.append(this.popMark());
            break;
          case 0x73: { // SETITEM
            const value = this.pop();
            const key = this.pop();
            this.setItem(this.top(), key, value);
            break;
          }
          case 0x75: { // SETITEMS
            const mark = this.popMark();
            if (mark <= this.fence || mark > this.stack.length) this.fail('unpickling stack underflow');
            if ((this.stack.length - mark) % 2 !== 0) this.fail('odd number of items for SETITEMS');
            const target = this.stack[mark - 1];
            for (let i = mark; i < this.stack.length; i += 2) this.setItem(target, this.stack[i], this.stack[i + 1]);
            while (this.stack.length > mark) this.stack.pop();
            break;
          }
          case 0x90: { // ADDITEMS
            const items = this.splice(this.popMark());
            const target = this.top();
            if (!(target instanceof Set) || target instanceof FrozenSet) this.fail(`${describe(target)} object has no attribute 'add'`);
            for (const item of items) {
              this.checkHashable(item);
              target.add(item);
            }
            break;
          }
          // ---- memo
          case 0x94: this.memoPut(this.memoLength); break; // MEMOIZE
          case 0x71: // BINPUT
            this.need(1);
            this.memoPut(this.buf[this.pos++]);
            break;
          case 0x72: this.memoPut(this.u32()); break; // LONG_BINPUT
          case 0x70: this.memoPut(this.textIndex()); break; // PUT
          case 0x68: // BINGET
            this.need(1);
            this.memoGet(this.buf[this.pos++]);
            break;
          case 0x6a: this.memoGet(this.u32()); break; // LONG_BINGET
          case 0x67: this.memoGet(this.textIndex()); break; // GET
          // ---- globals and objects
          case 0x63: { // GLOBAL
            const module = this.line();
            const name = this.line();
            this.stack.push(this.resolve(module, name));
            break;
          }
          case 0x93: { // STACK_GLOBAL
            const name = this.pop();
            const module = this.pop();
            this.stack.push(this.resolve(module, name));
            break;
          }
          case 0x52: { // REDUCE
            const args = this.pop();
            const callable = this.pop();
            this.stack.push(this.call(callable, args));
            break;
          }
          case 0x81: { // NEWOBJ
            const args = this.pop();
            const cls = this.pop();
            if (!Array.isArray(args)) this.fail('NEWOBJ expected an arg tuple');
            this.stack.push(createInstance(cls, args, null));
            break;
          }
          case 0x92: { // NEWOBJ_EX
            const kwargs = this.pop();
            const args = this.pop();
            const cls = this.pop();
            if (!Array.isArray(args)) this.fail('NEWOBJ_EX args argument must be a tuple');
            if (!(kwargs instanceof Map)) this.fail('NEWOBJ_EX kwargs argument must be a dict');
            this.stack.push(createInstance(cls, args, kwargs));
            break;
          }
          case 0x69: { // INST
            const module = this.line();
            const name = this.line();
            const args = this.splice(this.popMark());
            this.stack.push(this.instantiate(this.resolve(module, name), args));
            break;
          }
          case 0x6f: { // OBJ
            const items = this.splice(this.popMark());
            if (items.length === 0) this.fail('unpickling stack underflow');
            this.stack.push(this.instantiate(items[0], items.slice(1)));
            break;
          }
          case 0x62: { // BUILD
            const state = this.pop();
            this.build(this.top(), state);
            break;
          }
          case 0x50: case 0x51: // PERSID, BINPERSID
            this.fail('A load persistent id instruction was encountered, but no persistent_load function was specified.');
          // falls through (fail throws)
          case 0x82: case 0x83: case 0x84: { // EXT1, EXT2, EXT4
            const size = code === 0x82 ? 1 : code === 0x83 ? 2 : 4;
            this.need(size);
            this.fail(`unregistered extension code ${this.buf.readUIntLE(this.pos, size)}`);
          }
          // falls through (fail throws)
          default:
            this.fail(`invalid load key, '\\x${code.toString(16).padStart(2, '0')}'`);
        }
      }
      this.fail(this.end === 0 ? 'Ran out of input' : 'pickle data was truncated');
    } catch (error) {
      if (error instanceof UnpicklingError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw new UnpicklingError(`${message} (at byte ${this.op})`, { cause: error });
    }
  }
}

let shared: Unpickler | null = null;

/** `pickle.loads(data)`: the value of a pickle of any protocol 0–5. */
export function loads(data: Uint8Array, options?: LoadsOptions): unknown {
  if (!(data instanceof Uint8Array)) throw new TypeError(`loads() needs a Buffer or Uint8Array, not ${describe(data)}`);
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  // One reusable unpickler; a loads from inside a reconstructor gets its own.
  const unpickler = shared !== null && !shared.busy ? shared : new Unpickler();
  shared ??= unpickler;
  unpickler.busy = true;
  unpickler.start(buf, options);
  try {
    return unpickler.run();
  } finally {
    unpickler.finish();
    unpickler.busy = false;
  }
}

/** Python's decode_long: little-endian two's complement of n bytes. */
function decodeLong(buf: Buffer, start: number, n: number): number | bigint {
  if (n === 0) return 0;
  if (n <= 6) return buf.readIntLE(start, n);
  let value = BigInt(`0x${Buffer.from(buf.subarray(start, start + n)).reverse().toString('hex')}`);
  if (buf[start + n - 1] & 0x80) value -= 1n << BigInt(n * 8);
  return intValue(value);
}

function parseIntText(raw: string): number | bigint | null {
  const textValue = raw.trim().replace(/_/g, '');
  if (!/^[+-]?\d+$/.test(textValue)) return null;
  return intValue(BigInt(textValue));
}

function parseFloatText(raw: string): number | null {
  const textValue = raw.trim().toLowerCase();
  if (/^[+-]?(inf|infinity)$/.test(textValue)) return textValue.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/.test(textValue)) return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(textValue)) return null;
  return Number(textValue);
}

/** UTF-8 that may carry lone surrogates encoded as 3 bytes (CPython's 'surrogatepass'); null if invalid. */
export function surrogatePassDecode(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // Decode piecewise: valid runs by the strict decoder, ED A0..BF xx as a lone surrogate.
  }
  let out = '';
  let start = 0;
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] === 0xed && bytes[i + 1] >= 0xa0 && bytes[i + 1] <= 0xbf && bytes[i + 2] >= 0x80 && bytes[i + 2] <= 0xbf) {
      try {
        out += strictUtf8.decode(bytes.subarray(start, i));
      } catch {
        return null;
      }
      out += String.fromCharCode(0xd000 | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f));
      i += 2;
      start = i + 1;
    }
  }
  try {
    return out + strictUtf8.decode(bytes.subarray(start));
  } catch {
    return null;
  }
}

/** Protocol 0's UNICODE argument: latin-1 text with \uXXXX and \UXXXXXXXX escapes. */
function rawUnicodeEscape(raw: string): string | null {
  return raw.replace(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})/g, (_, hex: string) => {
    const code = parseInt(hex.slice(1), 16);
    return code > 0x10ffff ? '\uFFFD' : String.fromCodePoint(code);
  });
}

/** Python's escape_decode of a STRING argument (the repr of a Python 2 str); null if invalid. */
function escapeDecode(raw: string): Buffer | null {
  const out: number[] = [];
  const simple: Record<string, number> = { '\\': 92, "'": 39, '"': 34, a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11 };
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c !== 92) {
      if (c > 0xff) return null;
      out.push(c);
      continue;
    }
    const next = raw[++i];
    if (next === undefined) return null;
    if (next in simple) out.push(simple[next]);
    else if (next === '\n') continue;
    else if (next === 'x') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (next >= '0' && next <= '7') {
      let digits = next;
      while (digits.length < 3 && raw[i + 1] >= '0' && raw[i + 1] <= '7') digits += raw[++i];
      out.push(parseInt(digits, 8) & 0xff);
    } else {
      out.push(92, next.charCodeAt(0));
    }
  }
  return Buffer.from(out);
}
