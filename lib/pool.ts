// Python's multiprocessing.Pool. Each worker is a daemonic Process running
// poolWorker() below, with its own socketpair to the pool: no kernel queue is
// spent on a pool. The pool side is one state machine driven either by the
// event loop (FdPoller, for the async forms) or by a blocking poll() (for
// Python's synchronous get/map/join), so both work and never race.
// A task is sent ahead to a worker only as far as its recent tasks were
// short, and a worker that dies fails the task it was running (which CPython
// would wait for forever) and is replaced; its other tasks go to the others.
import { endianness } from 'node:os';
import { inspect } from 'node:util';
import { frameHeader } from './connection.js';
import * as errors from './errors.js';
import { ProcessError, TimeoutError, ValueError, isOSError } from './errors.js';
import { reduceSymbol } from './reduction.js';
import { READABLE, WRITABLE, binding, type FdPoller, type PollerBinding } from './native.js';
import {
  Process, closeChannel, cpu_count, exportedFunction, formatException, moduleSpecifier, native,
  parentChannel, parseHeader, targetName, waitOptions, wakeable, withKeywords, type Target,
} from './process.js';
import { deadlineAfter, secondsUntil, waitSeconds, type WaitOptions } from './timeouts.js';
import { dumps, loads } from './pickle.js';

const { FdPoller: Poller } = binding<PollerBinding>();
const sys = native.socket;

/** The remote traceback of a task's exception: the `cause` of the error get() re-throws. */
export class RemoteTraceback extends Error {
  constructor(readonly tb: string) {
    super(`\n"""\n${tb}\n"""`);
  }
}
Object.defineProperty(RemoteTraceback.prototype, 'name', { value: 'RemoteTraceback', writable: true, configurable: true });

/** A task's result could not be sent back (it could not be pickled). */
export class MaybeEncodingError extends Error {
  constructor(readonly exc: string, readonly value: string) {
    super(`Error sending result: '${value}'. Reason: '${exc}'`);
  }
}
Object.defineProperty(MaybeEncodingError.prototype, 'name', { value: 'MaybeEncodingError', writable: true, configurable: true });

// ---------------------------------------------------------------------------
// Exceptions crossing: [type name, message, remote stack, OS fields]

export type ExceptionRecord = [name: string, message: string, stack: string, fields: [string, string | number][]];

export function exceptionRecord(error: Error): ExceptionRecord {
  const extra: [string, string | number][] = [];
  for (const key of ['code', 'errno', 'syscall', 'path', 'exc', 'value']) {
    const value = (error as unknown as Record<string, unknown>)[key];
    if (typeof value === 'string' || typeof value === 'number') extra.push([key, value]);
  }
  return [error.name, error.message, formatException(error), extra];
}

const knownErrors: Record<string, new (...args: never[]) => Error> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, MaybeEncodingError, RemoteTraceback,
  ...Object.fromEntries(Object.entries(errors).filter(([, value]) => typeof value === 'function' && value.prototype instanceof Error)) as
    Record<string, new (...args: never[]) => Error>,
};

/** The task's exception, rebuilt here: its class when we know it, its name, message and fields; the remote stack as cause. */
export function rebuildException([name, message, stack, extra]: ExceptionRecord): Error {
  const cls = Object.hasOwn(knownErrors, name) ? knownErrors[name] : Error;
  const error = Reflect.construct(Error, [message], cls) as Error;
  if (error.name !== name) Object.defineProperty(error, 'name', { value: name, writable: true, configurable: true });
  for (const [key, value] of extra) Object.defineProperty(error, key, { value, writable: true, configurable: true, enumerable: true });
  error.cause = new RemoteTraceback(stack);
  return error;
}

// ---------------------------------------------------------------------------
// Messages between the pool and its workers

const enum Kind { Apply, Map, Starmap, Stop }
const enum Outcome { Value, Exception, Thrown, InitFailed }
type TaskMessage = [job: number, index: number, fn: string, kind: Kind, payload: unknown];
type ResultMessage = [job: number, index: number, outcome: Outcome, value: unknown];

// On the wire a message is a frame (frameHeader) holding a small binary
// envelope, what to do with which task, then the user values:
//   task:   u8 kind, u32 job, u32 index, u8 format, u16 length + name of the function, payload
//   result: u8 outcome, u32 job, u32 index, u8 format, payload
// The payload is a pickle, or, for a list of plain numbers (map's usual
// chunk and result), their float64s in this machine's byte order: a number
// comes back the same number as through a pickle, without the per-item
// opcodes on either side.
const enum Format { Pickle, Numbers }

/** A map task's items: a range of the input, copied into a list only to be pickled. */
class Chunk {
  constructor(readonly items: readonly unknown[], readonly start: number, readonly end: number) {}

  list(): unknown[] {
    return this.items.slice(this.start, this.end);
  }
}

/** A worker's map results while they are all numbers. */
class NumberResults {
  constructor(readonly floats: Float64Array) {}
}

function isNumberList(value: unknown): value is number[] {
  if (!globalThis.Array.isArray(value) || Object.getPrototypeOf(value) !== globalThis.Array.prototype) return false;
  for (let i = 0; i < value.length; i++) if (typeof value[i] !== 'number') return false;
  return true;
}

/** Appends a message to the channel's output; throws, having appended nothing, when its value cannot be pickled. */
function writeMessage(channel: Channel, kind: number, job: number, index: number, fn: string, value: unknown): void {
  let numbers: ArrayLike<unknown> | null = null;
  let start = 0;
  let end = 0;
  if (value instanceof NumberResults) {
    numbers = value.floats;
    end = numbers.length;
  } else if (value instanceof Chunk) {
    // Written as numbers until an item is something else (checked while copied).
    ({ items: numbers, start, end } = value);
  } else if (isNumberList(value)) {
    numbers = value;
    end = value.length;
  }
  const pickle = numbers === null ? dumps(value) : null;
  const name = fn === '' ? null : encodedName(fn);
  const envelope = 10 + (name === null ? 0 : 2 + name.length);
  const payloadLength = pickle !== null ? pickle.length : 8 * (end - start);
  const header = frameHeader(envelope + payloadLength);
  const at = channel.reserve(header.length + envelope + payloadLength);
  const data = channel.output;
  data.set(header, at);
  let offset = data.writeUInt8(kind, at + header.length);
  offset = data.writeUInt32BE(job, offset);
  offset = data.writeUInt32BE(index, offset);
  offset = data.writeUInt8(numbers !== null ? Format.Numbers : Format.Pickle, offset);
  if (name !== null) {
    offset = data.writeUInt16BE(name.length, offset);
    data.set(name, offset);
    offset += name.length;
  }
  if (pickle !== null) {
    data.set(pickle, offset);
  } else if (!writeFloats(data, offset, numbers as ArrayLike<unknown>, start, end)) {
    channel.truncate(at);
    writeMessage(channel, kind, job, index, fn, (value as Chunk).list());
  }
}

const encodedNames = new Map<string, Buffer>();

/** A task function's name in UTF-8, encoded once (a pool sends it with every task). */
function encodedName(fn: string): Buffer {
  let name = encodedNames.get(fn);
  if (name === undefined) encodedNames.set(fn, name = Buffer.from(fn));
  return name;
}

// The loops over numbers are functions of their own, typed-array only: they
// stay optimized when a caller is deoptimized (its first large message...).

/**
 * numbers[start, end) as float64s at `offset` in `data` (through a scratch
 * array when that is not 8-aligned); false, having written nothing whole, at
 * an item that is not a number.
 */
function writeFloats(data: Buffer, offset: number, numbers: ArrayLike<unknown>, start: number, end: number): boolean {
  if (end - start <= FEW_NUMBERS) {
    for (let i = start; i < end; i++) if (typeof numbers[i] !== 'number') return false;
    for (let i = start; i < end; i++) writeDouble.call(data, numbers[i] as number, offset + 8 * (i - start));
    return true;
  }
  const aligned = (data.byteOffset + offset) % 8 === 0;
  const floats = aligned ? new Float64Array(data.buffer, data.byteOffset + offset, end - start) : scratchFloats.take(end - start);
  if (numbers instanceof Float64Array) floats.set(numbers.subarray(start, end));
  else if (!copyNumbers(floats, numbers, start)) return false;
  if (!aligned) data.set(bytesOf(floats), offset);
  return true;
}

/** An element loop (TypedArray.prototype.set from an Array is many times slower in V8), stopped by an item that is not a number. */
function copyNumbers(floats: Float64Array, numbers: ArrayLike<unknown>, start: number): boolean {
  for (let i = 0; i < floats.length; i++) {
    const item = numbers[start + i];
    if (typeof item !== 'number') return false;
    floats[i] = item;
  }
  return true;
}

function bytesOf(floats: Float64Array): Uint8Array {
  return new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
}

/** The float64s in `bytes`, copied into `into` (or, unless given, viewed when 8-aligned). */
function floatsIn(bytes: Buffer, into?: Floats): Float64Array {
  if (into === undefined && bytes.byteOffset % 8 === 0) return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
  const floats = (into ?? scratchFloats).take(bytes.length / 8);
  if (floats.length <= FEW_NUMBERS) for (let i = 0; i < floats.length; i++) floats[i] = readDouble.call(bytes, 8 * i);
  else bytesOf(floats).set(bytes);
  return floats;
}

/** The numbers in `bytes`; a few (chunksize 1's) are read in place: typed-array views would cost more than they save. */
function numberList(bytes: Buffer): number[] {
  const list = new globalThis.Array<number>(bytes.length / 8);
  if (list.length <= FEW_NUMBERS) {
    for (let i = 0; i < list.length; i++) list[i] = readDouble.call(bytes, 8 * i);
    return list;
  }
  const floats = floatsIn(bytes);
  for (let i = 0; i < floats.length; i++) list[i] = floats[i];
  return list;
}

const FEW_NUMBERS = 8;
const readDouble = endianness() === 'LE' ? Buffer.prototype.readDoubleLE : Buffer.prototype.readDoubleBE;
const writeDouble = endianness() === 'LE' ? Buffer.prototype.writeDoubleLE : Buffer.prototype.writeDoubleBE;

/** Float64Arrays kept from task to task: a fresh one for each chunk would cost its page faults. */
class Floats {
  #array = new Float64Array(0);

  /** `count` float64s, overwritten by the next take(). */
  take(count: number): Float64Array {
    if (count > KEPT_BYTES / 8) return new Float64Array(count);
    if (this.#array.length < count) this.#array = new Float64Array(Math.max(count, 2 * this.#array.length));
    return this.#array.subarray(0, count);
  }
}

const scratchFloats = new Floats();
const taskItems = new Floats();
const taskResults = new Floats();

/** A task for this worker; a chunk of numbers is a Float64Array (only indexed), valid until the next task. */
function decodeTask(data: Buffer): TaskMessage {
  const kind = data.readUInt8(0) as Kind;
  if (kind === Kind.Stop) return [0, 0, '', kind, null];
  const length = data.readUInt16BE(10);
  const body = data.subarray(12 + length);
  // A copy, not a view: the channel reads on while the task awaits.
  const payload = data.readUInt8(9) === Format.Pickle ? loads(body) : floatsIn(body, taskItems);
  return [data.readUInt32BE(1), data.readUInt32BE(5), data.toString('utf8', 12, 12 + length), kind, payload];
}

/** Appends a result; one that cannot be pickled becomes a MaybeEncodingError, as in CPython. */
function writeResult(channel: Channel, [job, index, outcome, value]: ResultMessage): void {
  try {
    writeMessage(channel, outcome, job, index, '', value);
  } catch (error) {
    const reason = outcome === Outcome.Exception ? (value as ExceptionRecord)[1] : inspect(error);
    const failure = new MaybeEncodingError(reason, inspect(value, { depth: 1 }));
    writeMessage(channel, Outcome.Exception, job, index, '', exceptionRecord(failure));
  }
}

function decodeResult(data: Buffer): ResultMessage {
  const body = data.subarray(10);
  const value = data.readUInt8(9) === Format.Pickle ? loads(body) : numberList(body);
  return [data.readUInt32BE(1), data.readUInt32BE(5), data.readUInt8(0) as Outcome, value];
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

// ---------------------------------------------------------------------------
// Channels

/** A channel's buffers up to this size are kept for the next messages; larger ones are let go once empty. */
const KEPT_BYTES = 4 << 20;
const INITIAL_BYTES = 64 << 10;
/** Output is sent as soon as this much waits: a large task starts (or result arrives) while the next is encoded. */
const SEND_BYTES = 64 << 10;

/**
 * One end of a pool channel, used without blocking by the pool and by its
 * worker alike: frames are read into, and written from, buffers kept from
 * message to message. A busy pool then allocates nothing per message for its
 * I/O; the page faults of fresh buffers cost more than copying the bytes.
 */
class Channel {
  #input: Buffer = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  #start = 0;
  #end = 0;
  #output: Buffer = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  #sent = 0;
  #queued = 0;

  constructor(readonly fd: number) {}

  /** The next whole frame received, or null: a view, valid until the next read(). */
  frame(): Buffer | null {
    const header = parseHeader(this.#input, this.#start, this.#end);
    if (header === null) return null;
    const from = this.#start + header[0];
    if (this.#end - from < header[1]) return null;
    this.#start = from + header[1];
    return this.#input.subarray(from, this.#start);
  }

  /** Reads what has arrived: the number of bytes, 0 at end of file, -1 when nothing had. */
  read(): number {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
      if (this.#input.length > KEPT_BYTES) this.#input = Buffer.allocUnsafeSlow(INITIAL_BYTES);
    }
    // Room to read into, and for all of the next frame from its start.
    const header = parseHeader(this.#input, this.#start, this.#end);
    const frameEnd = this.#start + (header === null ? 12 : header[0] + header[1]);
    if (this.#end === this.#input.length || frameEnd > this.#input.length) {
      const pending = this.#end - this.#start;
      this.#input = relocate(this.#input, this.#start, this.#end, Math.max(frameEnd - this.#start, pending + 1));
      this.#start = 0;
      this.#end = pending;
    }
    const n = sys.read(this.fd, this.#input, this.#end, this.#input.length - this.#end, 0);
    if (n > 0) this.#end += n;
    return n;
  }

  /** Bytes written but not sent yet. */
  get pending(): number {
    return this.#queued - this.#sent;
  }

  /** Where reserve()'s bytes are written. */
  get output(): Buffer {
    return this.#output;
  }

  /** The offset in `output` of `length` bytes to write, queued after the others. */
  reserve(length: number): number {
    if (this.#sent === this.#queued) {
      this.#sent = this.#queued = 0;
      if (this.#output.length > KEPT_BYTES) this.#output = Buffer.allocUnsafeSlow(INITIAL_BYTES);
    }
    if (this.#queued + length > this.#output.length) {
      const pending = this.pending;
      this.#output = relocate(this.#output, this.#sent, this.#queued, pending + length);
      this.#sent = 0;
      this.#queued = pending;
    }
    const at = this.#queued;
    this.#queued += length;
    return at;
  }

  /** Takes back the bytes reserved last, from `at` on. */
  truncate(at: number): void {
    this.#queued = at;
  }

  /** Sends what the other end has room for (`wait`: all of it); throws EPIPE or ECONNRESET when it is gone. */
  send(wait = false): void {
    while (this.#sent < this.#queued) {
      const n = sys.send(this.fd, this.#output, this.#sent, this.#queued - this.#sent, wait ? -1 : 0);
      if (n < 0) return;
      this.#sent += n;
    }
  }
}

/** bytes[start, end) moved to the front of a buffer of at least `size` bytes: the same one when it is large enough. */
function relocate(bytes: Buffer, start: number, end: number, size: number): Buffer {
  if (size <= bytes.length) {
    bytes.copyWithin(0, start, end);
    return bytes;
  }
  let length = bytes.length;
  while (length < size) length *= 2;
  const grown = Buffer.allocUnsafeSlow(length);
  bytes.copy(grown, 0, start, end);
  return grown;
}

// ---------------------------------------------------------------------------
// The worker

/** A map chunk's results so far: numbers go straight into float64s (no list to build and copy) until one is something else. */
interface ChunkResults {
  floats: Float64Array | null;
  results: unknown[];
  /** What the call mapChunk() stopped at returned. */
  thenable: PromiseLike<unknown> | null;
}

/**
 * Calls fn on the items from `from` on while it returns at once; returns the
 * index of the first call that returned a thenable (for the caller to
 * await), or items.length. A function of its own, called for every chunk: it
 * is optimized while chunks are small, not first interpreted on a large one.
 */
function mapChunk(fn: (...args: unknown[]) => unknown, kind: Kind, items: ArrayLike<unknown>, from: number, chunk: ChunkResults): number {
  for (let i = from; i < items.length; i++) {
    const result = kind === Kind.Map ? fn(items[i]) : fn(...(items[i] as unknown[]));
    if (isThenable(result)) {
      chunk.thenable = result;
      return i;
    }
    keepResult(chunk, i, result);
  }
  return items.length;
}

function keepResult(chunk: ChunkResults, index: number, result: unknown): void {
  if (chunk.floats !== null) {
    if (typeof result === 'number') {
      chunk.floats[index] = result;
      return;
    }
    chunk.results = globalThis.Array.from(chunk.floats.subarray(0, index));
    chunk.floats = null;
  }
  chunk.results.push(result);
}

/** A pool worker's main loop (the target of its Process): run tasks in order until told to stop. */
export async function poolWorker(specifier: string | null, initializer: string | null, initargs: unknown[], maxtasks: number | null): Promise<void> {
  const channel = new Channel(parentChannel());
  const gone = () => process.exit(0);  // the pool closed our channel, or died
  const finish = () => {
    try {
      channel.send(true);
    } finally {
      process.exit(0);
    }
  };
  let mod: Record<string, unknown> = {};
  try {
    if (specifier !== null) mod = await import(specifier) as Record<string, unknown>;
    if (initializer !== null) await exportedFunction(mod, initializer, String(specifier))(...initargs);
  } catch (error) {
    writeResult(channel, [0, 0, Outcome.InitFailed, exceptionRecord(error instanceof Error ? error : new Error(String(error)))]);
    finish();
    return;
  }
  const functions = new Map<string, (...args: unknown[]) => unknown>();
  const lookup = (name: string) => {
    let fn = functions.get(name);
    if (fn === undefined) functions.set(name, fn = exportedFunction(mod, name, String(specifier)));
    return fn;
  };
  let running = false;
  let completed = 0;
  let watching = 0;
  const watch = () => {
    const events = READABLE | (channel.pending > 0 ? WRITABLE : 0);
    if (events !== watching) poller.start(watching = events);
  };
  // Results go out together while tasks are short (one write for many);
  // before waiting on a promise, every millisecond, and once 64 KiB wait,
  // they are sent, so a worker that dies has sent what it finished.
  let sentAt = 0;
  const send = () => {
    try {
      channel.send();
    } catch {
      gone();
    }
    sentAt = performance.now();
    watch();
  };
  const receive = () => {
    for (;;) {
      let n: number;
      try {
        n = channel.read();
      } catch {
        n = 0;
      }
      if (n === 0) gone();
      if (n < 0) break;
    }
    if (!running) void run();
  };
  const run = async () => {
    running = true;
    sentAt = performance.now();
    for (let data = channel.frame(); data !== null; data = channel.frame()) {
      const [job, index, name, kind, payload] = decodeTask(data);
      if (kind === Kind.Stop) return finish();
      let reply: ResultMessage;
      try {
        const fn = lookup(name);
        let value: unknown;
        if (kind === Kind.Apply) {
          const [args, kwds] = payload as [unknown[], Record<string, unknown> | null];
          value = fn(...withKeywords(args, kwds));
          if (isThenable(value)) {
            send();
            value = await value;
          }
        } else {
          const items = payload as ArrayLike<unknown>;
          const chunk: ChunkResults = { floats: taskResults.take(items.length), results: [], thenable: null };
          for (let i = mapChunk(fn, kind, items, 0, chunk); i < items.length; i = mapChunk(fn, kind, items, i + 1, chunk)) {
            send();
            keepResult(chunk, i, await chunk.thenable);
          }
          value = chunk.floats !== null ? new NumberResults(chunk.floats) : chunk.results;
        }
        reply = [job, index, Outcome.Value, value];
      } catch (error) {
        reply = error instanceof Error ? [job, index, Outcome.Exception, exceptionRecord(error)] : [job, index, Outcome.Thrown, error];
      }
      writeResult(channel, reply);
      if (maxtasks !== null && ++completed >= maxtasks) return finish();
      if (channel.pending >= SEND_BYTES || performance.now() - sentAt > 1) send();
    }
    send();
    running = false;
  };
  const poller: FdPoller = new Poller(channel.fd, (status, events) => {
    if (events & WRITABLE) send();
    if (status < 0 || events & READABLE) receive();
  });
  watch();
  receive();
}

// ---------------------------------------------------------------------------
// Results

type Callback<T> = (value: T) => void;
type ErrorCallback = (error: unknown) => void;

/** Runs a user's callback outside the pool's machinery: what it throws is uncaught, not the pool's. */
function invoke<T>(callback: ((value: T) => void) | undefined, value: T): void {
  if (callback === undefined) return;
  try {
    callback(value);
  } catch (error) {
    process.nextTick(() => { throw error; });
  }
}

let jobCounter = 0;

/** Python's AsyncResult (ApplyResult): also a thenable, so `await pool.apply_async(...)` gives the value. */
export class AsyncResult<T = unknown> implements PromiseLike<T> {
  readonly #engine: Engine;
  readonly job = ++jobCounter;
  #ready = false;
  #success = false;
  #value: unknown;
  readonly #callback?: Callback<T>;
  readonly #errorCallback?: ErrorCallback;
  readonly #waiters = new Set<() => void>();

  /** @internal */
  constructor(engine: Engine, callback?: Callback<T>, errorCallback?: ErrorCallback) {
    this.#engine = engine;
    this.#callback = callback;
    this.#errorCallback = errorCallback;
  }

  ready(): boolean {
    return this.#ready;
  }

  successful(): boolean {
    if (!this.#ready) throw new ValueError(`${this} not ready`);
    return this.#success;
  }

  /** Waits until the result is ready, at most `timeout` seconds. */
  wait(timeout: number | null = null): void {
    const seconds = waitSeconds(timeout);
    this.#engine.pumpUntil(() => this.#ready, deadlineAfter(seconds));
  }

  /** The task's value; re-throws its exception; TimeoutError when not ready in `timeout` seconds. */
  get(timeout: number | null = null): T {
    this.wait(timeout);
    return this.#outcome();
  }

  waitAsync(timeout: number | null | WaitOptions = null): Promise<void> {
    const { timeout: seconds, signal } = waitOptions(timeout);
    const wait = waitSeconds(seconds);
    if (this.#ready) return Promise.resolve();
    return this.#engine.waitFor(this.#waiters, wait, signal);
  }

  async getAsync(timeout: number | null | WaitOptions = null): Promise<T> {
    await this.waitAsync(timeout);
    return this.#outcome();
  }

  then<R1 = T, R2 = never>(onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null): Promise<R1 | R2> {
    return this.getAsync().then(onfulfilled, onrejected);
  }

  toString(): string {
    return `<${this.constructor.name} job=${this.job} ${this.#ready ? 'ready' : 'pending'}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  #outcome(): T {
    if (!this.#ready) throw new TimeoutError();
    if (this.#success) return this.#value as T;
    throw this.#value;
  }

  /** @internal A task of this job finished (index: its chunk). */
  _set(_index: number, success: boolean, value: unknown): void {
    this._complete(success, value);
  }

  /** @internal Ends the job without callbacks (a terminated pool). */
  _abandon(error: Error): void {
    if (this.#ready) return;
    this.#finish(false, error);
  }

  protected _complete(success: boolean, value: unknown): void {
    if (this.#ready) return;
    if (success) invoke(this.#callback, value as T);
    else invoke(this.#errorCallback, value);
    this.#finish(success, value);
  }

  #finish(success: boolean, value: unknown): void {
    this.#success = success;
    this.#value = value;
    this.#ready = true;
    this.#engine.jobs.delete(this.job);
    for (const waiter of [...this.#waiters]) waiter();
  }
}

/** The result of map_async/starmap_async: a list, in input order; the first failure once every chunk is done. */
export class MapResult<T = unknown> extends AsyncResult<T[]> {
  #chunks: T[][];
  #left: number;
  #failure: { value: unknown } | null = null;

  /** @internal */
  constructor(engine: Engine, readonly length: number, readonly chunksize: number,
    callback?: Callback<T[]>, errorCallback?: ErrorCallback) {
    super(engine, callback, errorCallback);
    this.#left = length === 0 ? 0 : Math.ceil(length / chunksize);
    this.#chunks = [];
    if (this.#left === 0) this._complete(true, []);
  }

  override _set(index: number, success: boolean, value: unknown): void {
    if (success && this.#failure === null) {
      this.#chunks[index] = value as T[];
    } else if (!success && this.#failure === null) {
      this.#failure = { value };
      this.#chunks = [];
    }
    if (--this.#left === 0) {
      if (this.#failure === null) this._complete(true, flatten(this.#chunks));
      else this._complete(false, this.#failure.value);
    }
  }
}

/**
 * The chunks' items in one list. concat copies whole chunks (several times
 * faster than an item loop, which is left for more chunks than a call takes arguments).
 */
function flatten<T>(chunks: T[][]): T[] {
  if (chunks.length <= 8192) return ([] as T[]).concat(...chunks);
  const items: T[] = [];
  for (const chunk of chunks) for (const item of chunk) items.push(item);
  return items;
}

/** What imap/imap_unordered return: iterable (each next() blocks, as in Python) and async-iterable. */
export class IMapIterator<T = unknown> implements IterableIterator<T>, AsyncIterable<T> {
  readonly #engine: Engine;
  readonly job = ++jobCounter;
  readonly #ordered: boolean;
  // Finished chunks, by chunk index (ordered) or in arrival order (unordered).
  readonly #chunks = new Map<number, [success: boolean, value: unknown]>();
  #arrived: [success: boolean, value: unknown][] = [];
  #next = 0;
  #items: unknown[] = [];
  #length: number | null = null;  // chunks, once the input is exhausted
  #delivered = 0;
  #abandoned: Error | null = null;
  readonly #waiters = new Set<() => void>();

  readonly #asyncInput: boolean;

  /** @internal */
  constructor(engine: Engine, ordered: boolean, asyncInput: boolean) {
    this.#engine = engine;
    this.#ordered = ordered;
    this.#asyncInput = asyncInput;
  }

  /** The next value: blocks until it is ready, at most `timeout` seconds (then TimeoutError). */
  next(timeout: number | null = null): IteratorResult<T> {
    if (this.#asyncInput && !this.#available()) {
      throw new TypeError('this imap reads an async iterable, which a blocked thread cannot: iterate it with for await');
    }
    const deadline = deadlineAfter(waitSeconds(timeout));
    this.#engine.pumpUntil(() => this.#available(), deadline);
    if (!this.#available()) throw new TimeoutError();
    return this.#take();
  }

  async nextAsync(timeout: number | null | WaitOptions = null): Promise<IteratorResult<T>> {
    const { timeout: seconds, signal } = waitOptions(timeout);
    const deadline = deadlineAfter(waitSeconds(seconds));
    while (!this.#available()) {
      const left = secondsUntil(deadline);
      if (left === 0) throw new TimeoutError();
      await this.#engine.waitFor(this.#waiters, left, signal);  // woken by any chunk, maybe not the next
    }
    return this.#take();
  }

  [Symbol.iterator](): this {
    return this;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return { next: () => this.nextAsync(), [Symbol.asyncIterator]() { return this; } };
  }

  toString(): string {
    return `<IMapIterator job=${this.job}>`;
  }

  /** Whether next() can answer now: an item, an exception, or the end. */
  #available(): boolean {
    if (this.#items.length > 0 || this.#abandoned !== null) return true;
    if (this.#length !== null && this.#delivered === this.#length) return true;
    return this.#ordered ? this.#chunks.has(this.#next) : this.#arrived.length > 0;
  }

  #take(): IteratorResult<T> {
    if (this.#items.length === 0 && this.#abandoned !== null) {
      const error = this.#abandoned;
      this.#length = this.#delivered;
      this.#chunks.clear();
      this.#arrived = [];
      this.#abandoned = null;
      throw error;
    }
    if (this.#items.length === 0) {
      if (this.#length !== null && this.#delivered === this.#length) return { done: true, value: undefined };
      let chunk: [boolean, unknown];
      if (this.#ordered) {
        chunk = this.#chunks.get(this.#next) as [boolean, unknown];
        this.#chunks.delete(this.#next++);
      } else {
        chunk = this.#arrived.shift() as [boolean, unknown];
      }
      this.#delivered++;
      const [success, value] = chunk;
      if (!success) throw value;
      this.#items = value as unknown[];
    }
    const value = this.#items.shift() as T;
    return { done: false, value };
  }

  /** @internal A chunk finished. */
  _set(index: number, success: boolean, value: unknown): void {
    if (this.#ordered) this.#chunks.set(index, [success, value]);
    else this.#arrived.push([success, value]);
    this.#wake();
  }

  /** @internal The input is exhausted after `chunks` chunks. */
  _setLength(chunks: number): void {
    this.#length = chunks;
    this.#wake();
  }

  /** @internal The pool ended first: next() throws `error` once, then the iteration ends. */
  _abandon(error: Error): void {
    this.#abandoned = error;
    this.#wake();
  }

  #wake(): void {
    if (this.#length !== null && this.#chunks.size + this.#arrived.length + this.#delivered >= this.#length) {
      this.#engine.jobs.delete(this.job);
    }
    for (const waiter of [...this.#waiters]) waiter();
  }
}

/** What the pool reports a job's finished tasks to. */
interface Job {
  readonly job: number;
  _set(index: number, success: boolean, value: unknown): void;
  _abandon(error: Error): void;
}

// ---------------------------------------------------------------------------
// The pool side

interface Task {
  job: Job;
  index: number;
  fn: string;
  kind: Kind;
  payload: unknown;
  /** When it was sent to a worker. */
  at: number;
}

/** Where tasks come from, in order: a job's chunks, pulled as workers can take them. */
interface TaskSource {
  /** The next task; null when there are no more; WAIT while an async input has none yet. */
  next(): Task | null | typeof WAIT;
}
const WAIT = Symbol('wait');

/** Chunks of an input: null at its end, WAIT while an async input has none ready; throws what the input throws. */
interface Chunks<T> {
  next(): T[] | null | typeof WAIT;
}

function syncChunks<T>(iterable: Iterable<T>, size: number): Chunks<T> {
  const iterator = iterable[Symbol.iterator]();
  return {
    next() {
      const chunk: T[] = [];
      while (chunk.length < size) {
        const step = iterator.next();
        if (step.done) break;
        chunk.push(step.value);
      }
      return chunk.length > 0 ? chunk : null;
    },
  };
}

/** Reads an async input `ahead` chunks in advance; `wake` tells the pool when more is ready. */
function asyncChunks<T>(iterable: AsyncIterable<T>, size: number, ahead: number, wake: () => void): Chunks<T> {
  const iterator = iterable[Symbol.asyncIterator]();
  const ready: T[][] = [];
  let done = false;
  let pulling = false;
  let failure: { error: unknown } | null = null;
  const pull = async () => {
    pulling = true;
    try {
      while (!done && ready.length < ahead) {
        const chunk: T[] = [];
        while (chunk.length < size) {
          const step = await iterator.next();
          if (step.done) {
            done = true;
            break;
          }
          chunk.push(step.value);
        }
        if (chunk.length > 0) ready.push(chunk);
      }
    } catch (error) {
      failure = { error };  // a partial chunk is dropped, as for a failing sync input
      done = true;
    }
    pulling = false;
    wake();
  };
  return {
    next() {
      const chunk = ready.shift();
      if (!pulling && !done) void pull();
      if (chunk !== undefined) return chunk;
      if (failure !== null) throw failure.error;
      return done ? null : WAIT;
    },
  };
}

class WorkerHandle {
  readonly outstanding: Task[] = [];
  readonly channel: Channel;
  readonly poller: FdPoller;
  sent = 0;
  stopSent = false;
  retired = false;
  alive = true;
  // Recent task duration (ms) and the time of the last result: how far ahead to send.
  serviceMs = -1;
  lastResultAt = 0;
  watching = 0;

  constructor(readonly process: Process, readonly fd: number, onReady: (status: number, events: number) => void) {
    this.channel = new Channel(fd);
    this.poller = new Poller(fd, onReady);
  }

  /**
   * Tasks sent ahead: about 2 ms of its measured work (up to 512 while tasks
   * take microseconds, one when they take long), so a worker seldom waits for
   * the pool and a sudden long task holds back little behind it.
   */
  get window(): number {
    if (this.serviceMs < 0) return 1;
    return Math.max(1, Math.min(512, Math.ceil(2 / Math.max(this.serviceMs, 1e-3))));
  }
}

const enum State { Run, Close, Terminate }

class Engine {
  readonly workers = new Set<WorkerHandle>();
  readonly jobs = new Map<number, Job>();
  readonly #sources: TaskSource[] = [];
  readonly #retry: Task[] = [];
  state = State.Run;
  broken: Error | null = null;
  #holds = 0;
  #exited: Process[] = [];

  constructor(readonly processes: number, readonly specifier: string | null, readonly initializer: string | null,
    readonly initargs: unknown[], readonly maxtasks: number | null) {
    for (let i = 0; i < processes; i++) this.#spawn();
  }

  #spawn(): void {
    const worker = new Process({
      module: import.meta.url, target: 'poolWorker', daemon: true,
      args: [this.specifier, this.initializer, this.initargs, this.maxtasks],
    });
    worker.name = worker.name.replace('Process', 'PoolWorker');
    const fd = worker.startWithChannel(this.specifier);
    const handle: WorkerHandle = new WorkerHandle(worker, fd, (status, events) => this.#onReady(handle, status, events));
    this.workers.add(handle);
  }

  submit(source: TaskSource, job: Job): void {
    if (this.state !== State.Run) throw new ValueError('Pool not running');
    if (this.broken !== null) {
      job._abandon(this.broken);
      return;
    }
    this.jobs.set(job.job, job);
    this.#sources.push(source);
    this.#dispatch();
    this.#watch();
  }

  close(): void {
    if (this.state === State.Run) this.state = State.Close;
    this.#dispatch();
    this.#watch();
  }

  terminate(): void {
    if (this.state === State.Terminate) return;
    this.state = State.Terminate;
    for (const worker of this.workers) {
      worker.process.terminate();
      this.#forget(worker);
      this.#exited.push(worker.process);
    }
    this.#sources.length = 0;
    this.#retry.length = 0;
    const error = new ProcessError('the pool was terminated before this task finished');
    for (const job of [...this.jobs.values()]) job._abandon(error);
    this.jobs.clear();
  }

  /** Synchronous: drives the pool with a blocking poll until `done()` or the deadline. */
  pumpUntil(done: () => boolean, deadline: number): void {
    while (!done()) {
      this.#dispatch();
      if (done()) return;
      const workers = [...this.workers];
      const left = secondsUntil(deadline);
      if (workers.length === 0) {
        if (this.#sources.length > 0 || this.jobs.size > 0) {
          throw new ProcessError('the pool has no workers left to run its tasks');
        }
        return;
      }
      const ready = native.poll(workers.map((w) => w.fd), workers.map((w) => READABLE | (w.channel.pending > 0 ? WRITABLE : 0)), left);
      // Serving one worker may retire others (a broken pool closes them all): skip those.
      for (let i = 0; i < workers.length; i++) {
        if (ready[i] !== 0 && workers[i].alive) this.#serve(workers[i], ready[i]);
      }
      if (left === 0) return;
    }
  }

  /** Waits (synchronously) for every worker to end: after close() or terminate(). */
  join(): void {
    this.pumpUntil(() => this.workers.size === 0, Infinity);
    for (const worker of this.#exited.splice(0)) {
      worker.join();
      worker.close();
    }
  }

  async joinAsync(): Promise<void> {
    while (this.workers.size > 0) await this.waitFor(this.#idleWaiters, Infinity);
    for (const worker of this.#exited.splice(0)) {
      await worker.joinAsync();
      worker.close();
    }
  }

  readonly #idleWaiters = new Set<() => void>();

  /** An async wait for a job: the event loop watches the workers meanwhile. */
  waitFor(waiters: Set<() => void>, seconds: number, signal?: AbortSignal): Promise<void> {
    return wakeable((wake) => {
      waiters.add(wake);
      this.#hold(1);
      return () => {
        waiters.delete(wake);
        this.#hold(-1);
      };
    }, seconds, signal);
  }

  #hold(delta: number): void {
    this.#holds += delta;
    this.#watch();
  }

  #onReady(worker: WorkerHandle, status: number, events: number): void {
    if (!worker.alive) return;
    this.#serve(worker, status < 0 ? READABLE : events);
    this.#dispatch();
    this.#watch();
  }

  #serve(worker: WorkerHandle, events: number): void {
    if (events & WRITABLE) this.#flush(worker);
    if (events & ~WRITABLE && worker.alive) this.#read(worker);
  }

  #read(worker: WorkerHandle): void {
    const { channel } = worker;
    for (;;) {
      // Each result is decoded before it is reported: a callback may read this channel again.
      for (let data = channel.frame(); data !== null; data = channel.frame()) {
        this.#result(worker, decodeResult(data));
        if (!worker.alive) return; // a result broke the pool and closed this worker
      }
      let n: number;
      try {
        n = channel.read();
      } catch (error) {
        if (!isOSError(error, 'ECONNRESET')) throw error;
        n = 0;
      }
      if (n === 0) return this.#died(worker);
      if (n < 0) return;
    }
  }

  #result(worker: WorkerHandle, [jobId, index, outcome, value]: ResultMessage): void {
    if (outcome === Outcome.InitFailed) {
      this.#broke(rebuildException(value as ExceptionRecord));
      return;
    }
    const sent = worker.outstanding.shift();
    const now = performance.now();
    if (sent !== undefined && worker.lastResultAt > 0) {
      const sample = now - Math.max(sent.at, worker.lastResultAt);
      worker.serviceMs = worker.serviceMs < 0 ? sample : (worker.serviceMs + sample) / 2;
    }
    worker.lastResultAt = now;
    const job = this.jobs.get(jobId);
    if (job !== undefined) {
      if (outcome === Outcome.Value) job._set(index, true, value);
      else job._set(index, false, outcome === Outcome.Exception ? rebuildException(value as ExceptionRecord) : value);
    }
    if (this.maxtasks !== null && worker.sent >= this.maxtasks && worker.outstanding.length === 0 && !worker.retired) {
      worker.retired = true;  // it exits by itself; its successor starts now
      if (this.#needsWorkers()) this.#spawn();
    }
  }

  #died(worker: WorkerHandle): void {
    this.#forget(worker);
    const { process: child } = worker;
    child.join(1);
    const exitcode = child.exitcode;
    const [running, ...unstarted] = worker.outstanding;
    if (running !== undefined) {
      running.job._set(running.index, false, new ProcessError(
        `pool worker ${child.name} (pid ${child.pid}) died while running this task (exitcode ${exitcode ?? 'unknown'})`));
    }
    this.#retry.unshift(...unstarted);
    if (exitcode !== null) child.close();
    else this.#exited.push(child);
    if (!worker.retired && this.#needsWorkers()) this.#spawn();
  }

  #broke(error: Error): void {
    this.broken = error;
    for (const worker of this.workers) {
      worker.process.kill();
      this.#forget(worker);
      this.#exited.push(worker.process);
    }
    this.#sources.length = 0;
    this.#retry.length = 0;
    for (const job of [...this.jobs.values()]) job._abandon(error);
    this.jobs.clear();
  }

  #needsWorkers(): boolean {
    return this.broken === null && (this.state === State.Run || (this.state === State.Close && this.jobs.size > 0));
  }

  #forget(worker: WorkerHandle): void {
    worker.alive = false;
    worker.poller.close();
    closeChannel(worker.fd);
    this.workers.delete(worker);
    if (this.workers.size === 0) for (const wake of [...this.#idleWaiters]) wake();
  }

  #nextTask(): Task | null {
    if (this.#retry.length > 0) return this.#retry.shift() as Task;
    for (let i = 0; i < this.#sources.length;) {
      const task = this.#sources[i].next();
      if (task === WAIT) {
        i++;  // an async input with nothing yet: the others go on
      } else if (task === null) {
        this.#sources.splice(i, 1);
      } else {
        return task;
      }
    }
    return null;
  }

  /** An async input has more: dispatch it. */
  kick(): void {
    this.#dispatch();
    this.#watch();
  }

  #dispatch(): void {
    if (this.state === State.Terminate) return;
    // A worker is topped up once half its window is done (fewer, larger
    // writes), one task at a time to the least loaded (even spread).
    // An idle worker may have died unwatched: find out before giving it a task to blame.
    for (const worker of [...this.workers]) {
      if (worker.outstanding.length === 0 && native.poll([worker.fd], [READABLE], 0)[0] !== 0) this.#read(worker);
    }
    const open = [...this.workers].filter((worker) => !worker.stopSent && !worker.retired &&
      (this.maxtasks === null || worker.sent < this.maxtasks) && worker.outstanding.length <= worker.window >> 1);
    while (open.length > 0) {
      let target = open[0];
      for (const worker of open) if (worker.outstanding.length < target.outstanding.length) target = worker;
      const task = this.#nextTask();
      if (task === null) break;
      try {
        writeMessage(target.channel, task.kind, task.job.job, task.index, task.fn, task.payload);
      } catch (error) {
        task.job._set(task.index, false, error);
        continue;
      }
      task.at = performance.now();
      target.outstanding.push(task);
      target.sent++;
      if (target.channel.pending >= SEND_BYTES) this.#flush(target);
      if (target.outstanding.length >= target.window || (this.maxtasks !== null && target.sent >= this.maxtasks)) {
        open.splice(open.indexOf(target), 1);
      }
    }
    if (this.state === State.Close && this.#retry.length === 0 && this.#sources.length === 0) {
      for (const worker of this.workers) {
        if (!worker.stopSent && worker.outstanding.length === 0) {
          worker.stopSent = true;
          writeMessage(worker.channel, Kind.Stop, 0, 0, '', null);
        }
      }
    }
    for (const worker of this.workers) if (worker.channel.pending > 0) this.#flush(worker);
  }

  /** Sends a worker what it has room for: many small tasks go out in one write. */
  #flush(worker: WorkerHandle): void {
    try {
      worker.channel.send();
    } catch (error) {
      if (!isOSError(error, 'EPIPE') && !isOSError(error, 'ECONNRESET')) throw error;  // it died: the read side tells
    }
  }

  /** The event loop watches the workers while anything is in flight or awaited. */
  #watch(): void {
    const busy = this.#holds > 0 || this.jobs.size > 0;
    for (const worker of this.workers) {
      const events = busy || worker.channel.pending > 0 ? READABLE | (worker.channel.pending > 0 ? WRITABLE : 0) : 0;
      if (events === worker.watching) continue;
      worker.watching = events;
      if (events === 0) worker.poller.stop();
      else worker.poller.start(events);
    }
  }
}

// ---------------------------------------------------------------------------
// Pool

export interface PoolOptions {
  /** The module exporting the task functions and the initializer (import.meta.url, a path or a package). */
  module?: string | URL;
  initializer?: Target | null;
  initargs?: unknown[];
  maxtasksperchild?: number | null;
}

export interface ResultCallbacks<T> {
  callback?: Callback<T>;
  error_callback?: ErrorCallback;
  /** The same as error_callback. */
  errorCallback?: ErrorCallback;
}

/** Python's multiprocessing.Pool. */
export class Pool {
  readonly #engine: Engine;
  readonly #specifier: string | null;

  constructor(processes: number | null = null, options: PoolOptions = {}) {
    const count = processes ?? cpu_count();
    if (typeof count !== 'number' || !Number.isInteger(count)) throw new TypeError('processes must be an integer or null');
    if (count < 1) throw new ValueError('Number of processes must be at least 1');
    const { maxtasksperchild = null, initializer = null, initargs = [] } = options;
    if (maxtasksperchild !== null && (typeof maxtasksperchild !== 'number' || !Number.isInteger(maxtasksperchild) || maxtasksperchild <= 0)) {
      throw new ValueError('maxtasksperchild must be a positive int or None');
    }
    if (initializer !== null && typeof initializer !== 'string' && typeof initializer !== 'function') {
      throw new TypeError('initializer must be a callable');
    }
    this.#specifier = options.module === undefined ? null : moduleSpecifier(options.module);
    const initializerName = initializer === null ? null : targetName(initializer, 'initializer');
    if (initializerName !== null) this.#function(initializer as Target);
    this.#engine = new Engine(count, this.#specifier, initializerName, [...initargs], maxtasksperchild);
  }

  apply<T = unknown>(fn: Target, args: unknown[] = [], kwds: Record<string, unknown> | null = null): T {
    return this.apply_async<T>(fn, args, { kwds }).get();
  }

  apply_async<T = unknown>(fn: Target, args: unknown[] = [],
    options: ResultCallbacks<T> & { kwds?: Record<string, unknown> | null } = {}): AsyncResult<T> {
    const name = this.#function(fn);
    const result = new AsyncResult<T>(this.#engine, options.callback, options.error_callback ?? options.errorCallback);
    let task: Task | null = { job: result, index: 0, fn: name, kind: Kind.Apply, payload: [[...args], options.kwds ?? null], at: 0 };
    this.#engine.submit({ next: () => { const t = task; task = null; return t; } }, result);
    return result;
  }

  map<T = unknown, R = unknown>(fn: Target, iterable: Iterable<T>, chunksize: number | null = null): R[] {
    return this.#mapAsync<T, R>(fn, iterable, chunksize, Kind.Map, {}).get();
  }

  map_async<T = unknown, R = unknown>(fn: Target, iterable: Iterable<T>, chunksize: number | null = null,
    callbacks: ResultCallbacks<R[]> = {}): MapResult<R> {
    return this.#mapAsync<T, R>(fn, iterable, chunksize, Kind.Map, callbacks);
  }

  starmap<R = unknown>(fn: Target, iterable: Iterable<unknown[]>, chunksize: number | null = null): R[] {
    return this.#mapAsync<unknown[], R>(fn, iterable, chunksize, Kind.Starmap, {}).get();
  }

  starmap_async<R = unknown>(fn: Target, iterable: Iterable<unknown[]>, chunksize: number | null = null,
    callbacks: ResultCallbacks<R[]> = {}): MapResult<R> {
    return this.#mapAsync<unknown[], R>(fn, iterable, chunksize, Kind.Starmap, callbacks);
  }

  /**
   * Results in input order, as they become available, consuming `iterable`
   * lazily; an async iterable input (a stream...) is read ahead of the
   * workers, and its results are read with `for await`.
   */
  imap<T = unknown, R = unknown>(fn: Target, iterable: Iterable<T> | AsyncIterable<T>, chunksize = 1): IMapIterator<R> {
    return this.#imap<T, R>(fn, iterable, chunksize, true);
  }

  /** Results in completion order. */
  imap_unordered<T = unknown, R = unknown>(fn: Target, iterable: Iterable<T> | AsyncIterable<T>, chunksize = 1): IMapIterator<R> {
    return this.#imap<T, R>(fn, iterable, chunksize, false);
  }

  /** No more tasks: the workers exit once the submitted ones are done. */
  close(): void {
    this.#engine.close();
  }

  /** Stops the workers now (SIGTERM); unfinished tasks fail. */
  terminate(): void {
    this.#engine.terminate();
  }

  /** Waits for the workers to exit; call close() or terminate() first. */
  join(): void {
    this.#checkJoinable();
    this.#engine.join();
  }

  async joinAsync(): Promise<void> {
    this.#checkJoinable();
    await this.#engine.joinAsync();
  }

  [Symbol.dispose](): void {
    this.terminate();
    this.#engine.join();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.terminate();
    await this.#engine.joinAsync();
  }

  toString(): string {
    const state = ['RUN', 'CLOSE', 'TERMINATE'][this.#engine.state];
    return `<Pool state=${state} pool_size=${this.#engine.processes}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  [reduceSymbol](): never {
    throw Object.assign(new Error('pool objects cannot be passed between processes or pickled'), { name: 'NotImplementedError' });
  }

  #checkJoinable(): void {
    if (this.#engine.state === State.Run) throw new ValueError('Pool is still running');
  }

  #function(fn: Target): string {
    if (this.#specifier === null) throw new TypeError('this pool has no module: new Pool(n, { module: import.meta.url }) names where its task functions are exported');
    return targetName(fn, 'func');
  }

  #checkRunning(): void {
    if (this.#engine.state !== State.Run) throw new ValueError('Pool not running');
  }

  #mapAsync<T, R>(fn: Target, iterable: Iterable<T>, chunksize: number | null, kind: Kind, callbacks: ResultCallbacks<R[]>): MapResult<R> {
    this.#checkRunning();
    const name = this.#function(fn);
    const items = globalThis.Array.isArray(iterable) ? iterable : [...iterable];
    if (chunksize === null) {
      chunksize = Math.ceil(items.length / (this.#engine.processes * 4));
    } else if (!Number.isInteger(chunksize) || chunksize < 1) {
      throw new ValueError(`Chunksize must be 1+, not ${chunksize}`);
    }
    const size = Math.max(1, chunksize);
    const result = new MapResult<R>(this.#engine, items.length, size, callbacks.callback, callbacks.error_callback ?? callbacks.errorCallback);
    if (items.length === 0) return result;
    let index = 0;
    this.#engine.submit({
      next: () => {
        if (index * size >= items.length) return null;
        const chunk = new Chunk(items, index * size, Math.min((index + 1) * size, items.length));
        return { job: result, index: index++, fn: name, kind, payload: chunk, at: 0 };
      },
    }, result);
    return result;
  }

  #imap<T, R>(fn: Target, iterable: Iterable<T> | AsyncIterable<T>, chunksize: number, ordered: boolean): IMapIterator<R> {
    this.#checkRunning();
    const name = this.#function(fn);
    if (!Number.isInteger(chunksize) || chunksize < 1) throw new ValueError(`Chunksize must be 1+, not ${chunksize}`);
    const isSync = typeof (iterable as Partial<Iterable<T>>)[Symbol.iterator] === 'function';
    const result = new IMapIterator<R>(this.#engine, ordered, !isSync);
    const chunks = isSync ? syncChunks(iterable as Iterable<T>, chunksize)
      : asyncChunks(iterable as AsyncIterable<T>, chunksize, 2 * this.#engine.processes, () => this.#engine.kick());
    let index = 0;
    this.#engine.submit({
      next: () => {
        let chunk: T[] | null | typeof WAIT;
        try {
          chunk = chunks.next();
        } catch (error) {
          // The input failed: the chunks before it are delivered, then its exception.
          result._set(index, false, error);
          result._setLength(index + 1);
          return null;
        }
        if (chunk === WAIT) return WAIT;
        if (chunk === null) {
          result._setLength(index);
          return null;
        }
        return { job: result, index: index++, fn: name, kind: Kind.Map, payload: new Chunk(chunk, 0, chunk.length), at: 0 };
      },
    }, result);
    return result;
  }
}

const methods = Pool.prototype as unknown as Record<string, unknown>;
methods.applyAsync = methods.apply_async;
methods.mapAsync = methods.map_async;
methods.starmapAsync = methods.starmap_async;
methods.imapUnordered = methods.imap_unordered;

export interface Pool {
  applyAsync: Pool['apply_async'];
  mapAsync: Pool['map_async'];
  starmapAsync: Pool['starmap_async'];
  imapUnordered: Pool['imap_unordered'];
}
