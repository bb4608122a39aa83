// The unpickler: protocols 0–5, every opcode CPython 3.11 reads. It is a loop
// over an explicit stack (no recursion on the input's depth), checks every
// declared length against the bytes actually present before allocating, and
// resolves globals only through the registry's allow-list. Every failure is an
// UnpicklingError naming the byte offset of the opcode.
import { UnpicklingError } from '../errors.js';
import { Global, createInstance, describe, lookupGlobal } from './registry.js';
import { Deque, Dict, FrozenSet, Float, PickleBuffer, Tuple } from './types.js';

export interface LoadsOptions {
  /** Protocol 5 out-of-band buffers, consumed in order by NEXT_BUFFER. */
  buffers?: Iterable<unknown>;
  /** How Python 2 `str` (STRING, BINSTRING) is decoded: 'ASCII' (CPython's default), 'latin1', 'utf-8', or 'bytes' to keep bytes. */
  encoding?: 'ASCII' | 'ascii' | 'latin1' | 'latin-1' | 'utf-8' | 'utf8' | 'bytes';
}

const mapSet = Map.prototype.set;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** An int as the mapping has it: a number when exact, else a bigint. */
function intValue(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
}

/** A float as the mapping has it: integral values become Float so they are written back as floats. */
function floatValue(value: number): number | Float {
  return Number.isSafeInteger(value) && !(value === 0 && 1 / value < 0) ? new Float(value) : value;
}

export function loads(data: Uint8Array, options?: LoadsOptions): unknown {
  if (!(data instanceof Uint8Array)) throw new TypeError(`loads() needs a Buffer or Uint8Array, not ${describe(data)}`);
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const end = buf.length;
  const stack: unknown[] = [];
  const marks: number[] = [];
  let fence = 0;
  const memo: unknown[] = [];
  let memoLength = 0;
  let pos = 0;
  let op = 0;
  let buffers: Iterator<unknown> | null = null;
  const encoding = options?.encoding ?? 'ASCII';

  function fail(message: string): never {
    throw new UnpicklingError(`${message} (at byte ${op})`);
  }
  function need(n: number): void {
    if (n > end - pos) fail(pos >= end ? 'pickle data was truncated' : `pickle data was truncated: ${n} bytes declared, ${end - pos} left`);
  }
  function u32(): number {
    need(4);
    const value = buf.readUInt32LE(pos);
    pos += 4;
    return value;
  }
  function u64(): number {
    need(8);
    const low = buf.readUInt32LE(pos);
    const high = buf.readUInt32LE(pos + 4);
    pos += 8;
    if (high > 0x1fffff) fail('declared length exceeds the data');
    return high * 0x100000000 + low;
  }
  function line(): string {
    const nl = buf.indexOf(10, pos);
    if (nl < 0) fail('pickle data was truncated (no newline)');
    const text = buf.toString('latin1', pos, nl);
    pos = nl + 1;
    return text;
  }
  function pop(): unknown {
    if (stack.length <= fence) fail('unpickling stack underflow');
    return stack.pop();
  }
  function top(): unknown {
    if (stack.length <= fence) fail('unpickling stack underflow');
    return stack[stack.length - 1];
  }
  function popMark(): number {
    if (marks.length === 0) fail('could not find MARK');
    const mark = marks.pop()!;
    fence = marks.length > 0 ? marks[marks.length - 1] : 0;
    return mark;
  }
  function text(start: number, length: number): string {
    if (length <= 16) {
      let out = '';
      for (let i = start; i < start + length; i++) {
        const c = buf[i];
        if (c >= 0x80) return utf8(start, length);
        out += String.fromCharCode(c);
      }
      return out;
    }
    return utf8(start, length);
  }
  function utf8(start: number, length: number): string {
    const decoded = buf.toString('utf8', start, start + length);
    if (decoded.indexOf('\uFFFD') < 0) return decoded;
    return surrogatePassDecode(buf.subarray(start, start + length)) ?? fail("'utf-8' codec can't decode the string");
  }
  function bytes(length: number): Buffer {
    need(length);
    const out = Buffer.allocUnsafe(length);
    buf.copy(out, 0, pos, pos + length);
    pos += length;
    return out;
  }
  function pyString(raw: Buffer): unknown {
    switch (encoding) {
      case 'bytes': return raw;
      case 'latin1': case 'latin-1': return raw.toString('latin1');
      case 'utf-8': case 'utf8': return surrogatePassDecode(raw) ?? fail("'utf-8' codec can't decode the string");
      default:
        for (let i = 0; i < raw.length; i++) if (raw[i] >= 0x80) fail("'ascii' codec can't decode a Python 2 str (pass { encoding: 'latin1' } or 'bytes')");
        return raw.toString('latin1');
    }
  }
  function memoGet(index: number): void {
    const value = memo[index];
    if (value === undefined) fail(`Memo value not found at index ${index}`);
    stack.push(value);
  }
  function memoPut(index: number): void {
    if (memo[index] === undefined) memoLength++;
    memo[index] = top();
  }
  function textIndex(): number {
    const raw = line();
    if (!/^\s*\d+\s*$/.test(raw)) fail(`invalid memo index ${JSON.stringify(raw)}`);
    return Number(raw);
  }
  function resolve(module: unknown, name: unknown): Global {
    if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL requires str');
    const entry = lookupGlobal(module, name);
    if (entry === undefined) fail(`global '${module}.${name}' is not allowed (only the codec's own types and registered classes are)`);
    return entry;
  }
  function call(callable: unknown, args: unknown): unknown {
    if (!(callable instanceof Global) || callable.call === undefined) fail(`${describe(callable)} object is not callable`);
    if (!Array.isArray(args)) fail(`argument list must be a tuple, not ${describe(args)}`);
    return callable.call(args);
  }
  function instantiate(cls: unknown, args: unknown[]): unknown {
    if (!(cls instanceof Global)) fail(`${describe(cls)} object is not a class`);
    if (args.length === 0 && cls.create) return cls.create([], null);
    return call(cls, args);
  }
  function append(target: unknown, items: unknown[]): void {
    if (target instanceof Tuple) fail("'tuple' object has no attribute 'append'");
    if (Array.isArray(target)) {
      for (let i = 0; i < items.length; i++) target.push(items[i]);
      if (target instanceof Deque && target.maxlen !== null && target.length > target.maxlen) target.splice(0, target.length - target.maxlen);
      return;
    }
    const method = (target as { append?: unknown } | null)?.append;
    if (typeof method !== 'function') fail(`${describe(target)} object has no attribute 'append'`);
    for (const item of items) method.call(target, item);
  }
  function setItem(target: unknown, key: unknown, value: unknown): void {
    if (target instanceof Dict) {
      if (typeof key === 'string') mapSet.call(target, key, value);
      else {
        checkHashable(key);
        target.set(key, value);
      }
      return;
    }
    const method = (target as { __setitem__?: unknown } | null)?.__setitem__;
    if (typeof method !== 'function') fail(`${describe(target)} object does not support item assignment`);
    method.call(target, key, value);
  }
  function checkHashable(key: unknown): void {
    if (key === null || typeof key !== 'object') return;
    if ((Array.isArray(key) && !(key instanceof Tuple)) || key instanceof Map || (key instanceof Set && !(key instanceof FrozenSet)) ||
      (key instanceof Uint8Array && !Buffer.isBuffer(key))) {
      fail(`unhashable type: '${describe(key)}'`);
    }
  }
  function build(inst: unknown, state: unknown): void {
    if (inst === null || typeof inst !== 'object') fail(`cannot set the state of ${describe(inst)}`);
    const setstate = (inst as { __setstate__?: unknown }).__setstate__;
    if (typeof setstate === 'function') {
      setstate.call(inst, state);
      return;
    }
    let slots: unknown = null;
    if (state instanceof Tuple && state.length === 2) [state, slots] = state;
    for (const part of [state, slots]) {
      if (part === null || part === undefined) continue;
      if (!(part instanceof Map)) fail('state is not a dictionary');
      for (const [key, value] of part) {
        if (typeof key !== 'string') fail('slot state is not a dictionary of str');
        Object.defineProperty(inst, key, { value, writable: true, enumerable: true, configurable: true });
      }
    }
  }
  function nextBuffer(): unknown {
    if (buffers === null) {
      if (options?.buffers === undefined) fail('pickle stream refers to out-of-band data but no *buffers* argument was given');
      buffers = options.buffers[Symbol.iterator]();
    }
    const next = buffers.next();
    if (next.done) fail('not enough out-of-band buffers');
    const value = next.value;
    if (value instanceof PickleBuffer) return value.readonly ? Buffer.from(value.data.buffer, value.data.byteOffset, value.data.byteLength) : value.data;
    return value;
  }
  function splice(mark: number): unknown[] {
    const items = stack.slice(mark);
    stack.length = mark;
    return items;
  }
  function tupleFrom(mark: number): Tuple {
    const t = new Tuple();
    for (let i = mark; i < stack.length; i++) t.push(stack[i]);
    stack.length = mark;
    return t;
  }

  try {
    while (pos < end) {
      op = pos;
      const code = buf[pos++];
      switch (code) {
        case 0x80: { // PROTO
          need(1);
          const proto = buf[pos++];
          if (proto > 5) fail(`unsupported pickle protocol: ${proto}`);
          break;
        }
        case 0x95: { // FRAME
          const length = u64();
          if (length > end - pos) fail(`FRAME of ${length} bytes but only ${end - pos} left`);
          break;
        }
        case 0x2e: // STOP
          if (stack.length === 0) fail('unpickling stack underflow');
          return stack.pop();
        // ---- stack
        case 0x28: // MARK
          marks.push(stack.length);
          fence = stack.length;
          break;
        case 0x30: // POP
          if (stack.length > fence) stack.pop();
          else popMark();
          break;
        case 0x31: // POP_MARK
          stack.length = popMark();
          break;
        case 0x32: // DUP
          stack.push(top());
          break;
        // ---- atoms
        case 0x4e: stack.push(null); break; // NONE
        case 0x88: stack.push(true); break; // NEWTRUE
        case 0x89: stack.push(false); break; // NEWFALSE
        case 0x4b: // BININT1
          need(1);
          stack.push(buf[pos++]);
          break;
        case 0x4d: // BININT2
          need(2);
          stack.push(buf[pos] | (buf[pos + 1] << 8));
          pos += 2;
          break;
        case 0x4a: // BININT
          need(4);
          stack.push(buf.readInt32LE(pos));
          pos += 4;
          break;
        case 0x8a: { // LONG1
          need(1);
          const n = buf[pos++];
          need(n);
          stack.push(decodeLong(buf, pos, n));
          pos += n;
          break;
        }
        case 0x8b: { // LONG4
          need(4);
          const n = buf.readInt32LE(pos);
          pos += 4;
          if (n < 0) fail('LONG pickle has negative byte count');
          need(n);
          stack.push(decodeLong(buf, pos, n));
          pos += n;
          break;
        }
        case 0x49: { // INT (text; 00/01 are the bools of protocol 0)
          const raw = line();
          if (raw === '00') stack.push(false);
          else if (raw === '01') stack.push(true);
          else stack.push(parseIntText(raw) ?? fail(`invalid literal for int(): ${JSON.stringify(raw)}`));
          break;
        }
        case 0x4c: { // LONG (text)
          const raw = line();
          stack.push(parseIntText(raw.endsWith('L') ? raw.slice(0, -1) : raw) ?? fail(`invalid literal for int(): ${JSON.stringify(raw)}`));
          break;
        }
        case 0x46: { // FLOAT (text)
          const value = parseFloatText(line());
          if (value === null) fail('could not convert string to float');
          stack.push(floatValue(value));
          break;
        }
        case 0x47: // BINFLOAT
          need(8);
          stack.push(floatValue(buf.readDoubleBE(pos)));
          pos += 8;
          break;
        // ---- strings and bytes
        case 0x8c: { // SHORT_BINUNICODE
          need(1);
          const n = buf[pos++];
          need(n);
          stack.push(text(pos, n));
          pos += n;
          break;
        }
        case 0x58: { // BINUNICODE
          const n = u32();
          need(n);
          stack.push(text(pos, n));
          pos += n;
          break;
        }
        case 0x8d: { // BINUNICODE8
          const n = u64();
          need(n);
          stack.push(utf8(pos, n));
          pos += n;
          break;
        }
        case 0x56: // UNICODE (raw-unicode-escape text)
          stack.push(rawUnicodeEscape(line()) ?? fail('invalid raw-unicode-escape data'));
          break;
        case 0x53: { // STRING (quoted Python 2 str)
          const raw = line().replace(/\r$/, '');
          if (raw.length < 2 || raw[0] !== raw[raw.length - 1] || (raw[0] !== "'" && raw[0] !== '"')) fail('the STRING opcode argument must be quoted');
          stack.push(pyString(escapeDecode(raw.slice(1, -1)) ?? fail('invalid escape in STRING')));
          break;
        }
        case 0x54: { // BINSTRING
          need(4);
          const n = buf.readInt32LE(pos);
          pos += 4;
          if (n < 0) fail('BINSTRING pickle has negative byte count');
          stack.push(pyString(bytes(n)));
          break;
        }
        case 0x55: { // SHORT_BINSTRING
          need(1);
          const n = buf[pos++];
          stack.push(pyString(bytes(n)));
          break;
        }
        case 0x43: { // SHORT_BINBYTES
          need(1);
          const n = buf[pos++];
          stack.push(bytes(n));
          break;
        }
        case 0x42: stack.push(bytes(u32())); break; // BINBYTES
        case 0x8e: stack.push(bytes(u64())); break; // BINBYTES8
        case 0x96: { // BYTEARRAY8
          const n = u64();
          need(n);
          const out = new Uint8Array(n);
          out.set(buf.subarray(pos, pos + n));
          pos += n;
          stack.push(out);
          break;
        }
        case 0x97: stack.push(nextBuffer()); break; // NEXT_BUFFER
        case 0x98: { // READONLY_BUFFER
          const value = top();
          if (!(value instanceof Uint8Array)) fail(`READONLY_BUFFER needs a buffer, not ${describe(value)}`);
          if (!Buffer.isBuffer(value)) stack[stack.length - 1] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
          break;
        }
        // ---- containers
        case 0x5d: stack.push([]); break; // EMPTY_LIST
        case 0x7d: stack.push(new Dict()); break; // EMPTY_DICT
        case 0x29: stack.push(new Tuple()); break; // EMPTY_TUPLE
        case 0x8f: stack.push(new Set()); break; // EMPTY_SET
        case 0x6c: stack.push(splice(popMark())); break; // LIST
        case 0x74: stack.push(tupleFrom(popMark())); break; // TUPLE
        case 0x85: case 0x86: case 0x87: { // TUPLE1..3
          const n = code - 0x84;
          if (stack.length - fence < n) fail('unpickling stack underflow');
          stack.push(tupleFrom(stack.length - n));
          break;
        }
        case 0x64: { // DICT
          const items = splice(popMark());
          if (items.length % 2 !== 0) fail('odd number of items for DICT');
          const dict = new Dict();
          for (let i = 0; i < items.length; i += 2) setItem(dict, items[i], items[i + 1]);
          stack.push(dict);
          break;
        }
        case 0x91: stack.push(new FrozenSet(splice(popMark()).map((item) => (checkHashable(item), item)))); break; // FROZENSET
        case 0x61: { // APPEND
          const value = pop();
          append(top(), [value]);
          break;
        }
        case 0x65: { // APPENDS
          const items = splice(popMark());
          append(top(), items);
          break;
        }
        case 0x73: { // SETITEM
          const value = pop();
          const key = pop();
          setItem(top(), key, value);
          break;
        }
        case 0x75: { // SETITEMS
          const mark = popMark();
          if (mark <= fence || mark > stack.length) fail('unpickling stack underflow');
          if ((stack.length - mark) % 2 !== 0) fail('odd number of items for SETITEMS');
          const target = stack[mark - 1];
          for (let i = mark; i < stack.length; i += 2) setItem(target, stack[i], stack[i + 1]);
          stack.length = mark;
          break;
        }
        case 0x90: { // ADDITEMS
          const items = splice(popMark());
          const target = top();
          if (!(target instanceof Set) || target instanceof FrozenSet) fail(`${describe(target)} object has no attribute 'add'`);
          for (const item of items) {
            checkHashable(item);
            target.add(item);
          }
          break;
        }
        // ---- memo
        case 0x94: memoPut(memoLength); break; // MEMOIZE
        case 0x71: // BINPUT
          need(1);
          memoPut(buf[pos++]);
          break;
        case 0x72: memoPut(u32()); break; // LONG_BINPUT
        case 0x70: memoPut(textIndex()); break; // PUT
        case 0x68: // BINGET
          need(1);
          memoGet(buf[pos++]);
          break;
        case 0x6a: memoGet(u32()); break; // LONG_BINGET
        case 0x67: memoGet(textIndex()); break; // GET
        // ---- globals and objects
        case 0x63: { // GLOBAL
          const module = line();
          const name = line();
          stack.push(resolve(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = pop();
          const module = pop();
          stack.push(resolve(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = pop();
          const callable = pop();
          stack.push(call(callable, args));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = pop();
          const cls = pop();
          if (!Array.isArray(args)) fail('NEWOBJ expected an arg tuple');
          stack.push(createInstance(cls, args, null));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = pop();
          const args = pop();
          const cls = pop();
          if (!Array.isArray(args)) fail('NEWOBJ_EX args argument must be a tuple');
          if (!(kwargs instanceof Map)) fail('NEWOBJ_EX kwargs argument must be a dict');
          stack.push(createInstance(cls, args, kwargs));
          break;
        }
        case 0x69: { // INST
          const module = line();
          const name = line();
          const args = splice(popMark());
          stack.push(instantiate(resolve(module, name), args));
          break;
        }
        case 0x6f: { // OBJ
          const items = splice(popMark());
          if (items.length === 0) fail('unpickling stack underflow');
          stack.push(instantiate(items[0], items.slice(1)));
          break;
        }
        case 0x62: { // BUILD
          const state = pop();
          build(top(), state);
          break;
        }
        case 0x50: case 0x51: // PERSID, BINPERSID
          fail('A load persistent id instruction was encountered, but no persistent_load function was specified.');
        // falls through (fail throws)
        case 0x82: case 0x83: case 0x84: { // EXT1, EXT2, EXT4
          const size = code === 0x82 ? 1 : code === 0x83 ? 2 : 4;
          need(size);
          fail(`unregistered extension code ${buf.readUIntLE(pos, size)}`);
        }
        // falls through (fail throws)
        default:
          fail(`invalid load key, '\\x${code.toString(16).padStart(2, '0')}'`);
      }
    }
    fail(end === 0 ? 'Ran out of input' : 'pickle data was truncated');
  } catch (error) {
    if (error instanceof UnpicklingError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new UnpicklingError(`${message} (at byte ${op})`, { cause: error });
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
