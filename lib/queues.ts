// Queue, SimpleQueue, JoinableQueue: Python's multiprocessing queues over a
// POSIX message queue (10 messages of 8 KiB by default).
//
// - put() never blocks on an unbounded queue: the encoded object goes to a
//   native feeder thread (native/feeder.cc) that moves it into the kernel
//   queue, also while this thread is blocked in a synchronous call, and keeps
//   the process alive until it did (Python's join_thread; also on
//   process.exit(), unless cancel_join_thread() was called).
// - Counts live in named semaphores beside the queue: `<name>.items` (objects
//   put and not yet got, so qsize() is exact across processes), `<name>.slots`
//   for a bounded queue (free places: put waits on it, get gives one back),
//   `<name>.unfinished` for a JoinableQueue.
// - An object whose encoding fits one kernel message is that message
//   (exactly pickle.dumps(obj, 4) with the default codec); a larger one is
//   handed over in a shared memory segment whose name travels in the queue,
//   so one consumer gets it whole; small objects may share a message (a batch
//   of at most MAX_BATCH) when consumers lag or a task puts several in a row.
//   docs/wire-format.md.
import { closeSync, readSync, writeSync } from 'node:fs';
import { serialize, deserialize } from 'node:v8';
import { AssertionError, Empty, Full, ValueError, handleError, isOSError, withHint } from './errors.js';
import { anonymousName, validateName } from './names.js';
import { binding } from './native.js';
import { dumps, loads, registerReconstructor } from './pickle.js';
import { reduceSymbol, MODULE, type Reduction } from './reduction.js';
import { track, untrack, type ResourceKind } from './resource_tracker.js';
import { waitSeconds, deadlineAfter, secondsUntil, type WaitOptions } from './timeouts.js';
import { MessageQueue, type MqueueBinding } from './posix/mqueue.js';
import { NamedSemaphore, SEM_VALUE_MAX } from './posix/semaphore.js';
import { SharedMemorySegment } from './posix/shm.js';

/** How objects become bytes: a name, or your own pair of functions. */
export interface Codec<T = unknown> {
  encode(obj: T): Uint8Array;
  decode(bytes: Buffer): T;
}
export type CodecName = 'pickle' | 'v8' | 'json' | 'raw';

export type OpenOptions = Omit<QueueOptions, 'name' | 'create' | 'exclusive'>;

export interface QueueOptions {
  /** A persistent queue any process can open by this name ('/jobs'); default: anonymous. */
  name?: string;
  /** With a name: create the queue if it does not exist (default true). */
  create?: boolean;
  /** With a name: fail with EEXIST if it exists. */
  exclusive?: boolean;
  /** Permission bits of a new queue (default 0o600). */
  mode?: number;
  /** 'pickle' (default), 'v8', 'json', 'raw' (Buffers, one kernel message each, no framing) or { encode, decode }. */
  codec?: CodecName | Codec;
  /** Let small objects share a kernel message when consumers lag (default: true for anonymous queues, false for named ones). */
  batch?: boolean;
  /** Kernel queue capacity (default /proc/sys/fs/mqueue/msg_default). */
  maxMessages?: number;
  /** Kernel message size (default /proc/sys/fs/mqueue/msgsize_default). */
  maxMessageSize?: number;
}

interface FeederHandle {
  /** Messages waiting, 0 when it went to the kernel at once; `hold`: it may wait (500 µs at most) for others to share its kernel message. */
  push(bytes: Uint8Array, batchable: boolean, hold?: boolean): number;
  /** Held messages go now. */
  release(): void;
  readonly pending: number;
  readonly error: number;
  flush(seconds: number): boolean;
  close(): void;
  drop(): void;
  keepAlive(flag: boolean): void;
}
interface FeederBinding {
  Feeder: new (name: string, maxBatch: number, onIdle: () => void) => FeederHandle;
}
const native = binding<FeederBinding>();
const mqueue = binding<MqueueBinding>();

/** The most objects one kernel message carries: bounds what one consumer can hold while others idle. */
export const MAX_BATCH = 8;
/** Frame bytes (docs/wire-format.md): a pickle never starts with one of these. */
const ESCAPED = 0x00;
const BATCH = 0x01;
const HANDOFF = 0x02;
const HANDOFF_HEADER = 9;
/** The largest hand-off scratch buffer a queue keeps between gets. */
const MAX_HANDOFF_SCRATCH = 16 << 20;

const CODECS: Record<CodecName, Codec> = {
  pickle: { encode: (obj) => dumps(obj, { protocol: 4 }), decode: (bytes) => loads(bytes) },
  v8: { encode: (obj) => serialize(obj), decode: (bytes) => deserialize(bytes) },
  json: {
    encode: (obj) => {
      const text = JSON.stringify(obj);
      if (text === undefined) throw new TypeError(`the 'json' codec cannot encode ${typeof obj}`);
      return Buffer.from(text);
    },
    decode: (bytes) => JSON.parse(bytes.toString('utf8')),
  },
  raw: {
    encode: (obj) => {
      if (obj instanceof Uint8Array) return obj;
      if (!ArrayBuffer.isView(obj)) throw new TypeError(`the 'raw' codec takes Buffers (or other ArrayBufferViews), not ${obj === null ? 'null' : typeof obj}`);
      return new Uint8Array(obj.buffer, obj.byteOffset, obj.byteLength);
    },
    decode: (bytes) => bytes,
  },
};

function resolveCodec(codec: CodecName | Codec | undefined): { name: CodecName | 'custom'; codec: Codec } {
  if (codec === undefined) return { name: 'pickle', codec: CODECS.pickle };
  if (typeof codec === 'string') {
    if (!Object.hasOwn(CODECS, codec)) throw new TypeError(`codec must be 'pickle', 'v8', 'json', 'raw' or { encode, decode }, not ${JSON.stringify(codec)}`);
    return { name: codec, codec: CODECS[codec] };
  }
  if (typeof codec?.encode !== 'function' || typeof codec?.decode !== 'function') {
    throw new TypeError('a custom codec is an object with encode(obj) => Uint8Array and decode(bytes) => obj');
  }
  return { name: 'custom', codec };
}

/** Queues with unflushed messages: the process waits for them at exit, as Python joins its feeder threads. */
const feeding = new Set<Queue<unknown>>();
/**
 * Feeders holding objects of a burst of puts (several in one task of the
 * event loop) so that they share kernel messages: released at the end of the
 * task, or before this thread blocks.
 */
const bursting = new Set<FeederHandle>();
function releaseBursts(): void {
  for (const feeder of bursting) feeder.release();
  bursting.clear();
}

/** Queues holding objects of a batch this process received but did not get: they go back at exit. */
const holding = new Set<Queue<unknown>>();
process.on('exit', () => {
  for (const queue of holding) queue.returnHeld();
  for (const queue of feeding) queue.flushAtExit();
});

/** Sleeps this thread (a synchronous wait, for join()). */
function sleepSync(milliseconds: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, milliseconds);
}

function tryUnlink(kind: ResourceKind, name: string): void {
  try {
    if (kind === 'queue') MessageQueue.unlink(name);
    else NamedSemaphore.unlink(name);
  } catch (error) {
    if (!isOSError(error, 'ENOENT')) throw error;
  }
}

const semaphoreNames = (name: string) => ({ items: `${name}.items`, slots: `${name}.slots`, unfinished: `${name}.unfinished` });

export class Queue<T = unknown> implements Disposable, AsyncDisposable, AsyncIterable<T> {
  /** The kernel queue's name (generated for an anonymous queue). */
  readonly name: string;
  /** The bound given at creation; 0 when unbounded. */
  readonly maxsize: number;
  protected readonly kernel: MessageQueue;
  readonly #items: NamedSemaphore;
  readonly #slots: NamedSemaphore | null;
  readonly #codecName: CodecName | 'custom';
  readonly #codec: Codec;
  readonly #raw: boolean;
  /** The codec copies what it keeps out of the bytes it decodes (pickle, json): they may be a reused buffer. */
  readonly #decodeCopies: boolean;
  readonly #batch: boolean;
  readonly #anonymous: boolean;
  #shared = false;
  #closed = false;
  #joinCancelled = false;
  #feeder: FeederHandle | null = null;
  /** Hand-off segments whose frames wait in the feeder: the tracker removes them if this process dies first. */
  #handOffsInFlight: string[] = [];
  /** Waiting for the feeder to empty ([Symbol.asyncDispose]). */
  #drainWaiters: (() => void)[] = [];
  /** Entries of a batch this process received and has not returned yet (each one as a single message would be). */
  #ready: Buffer[] = [];
  /** Where hand-off objects are read when the codec copies what it keeps (the largest so far, up to MAX_HANDOFF_SCRATCH). */
  #handOffScratch: Buffer | null = null;
  /** A put happened in this task of the event loop: the next ones are held to share kernel messages. */
  #inBurst = false;
  readonly #endBurst = () => {
    this.#inBurst = false;
    if (this.#feeder !== null && bursting.delete(this.#feeder)) this.#feeder.release();
  };
  /** Where get() receives messages (one kernel message long), allocated at the first get(). */
  #receiveScratch: Buffer | null = null;

  constructor(maxsize = 0, options: QueueOptions = {}) {
    if (typeof maxsize !== 'number' || !Number.isInteger(maxsize)) throw new TypeError(`maxsize must be an integer, not ${String(maxsize)}`);
    const anonymous = options.name === undefined;
    this.name = anonymous ? anonymousName() : validateName(options.name, 'queue name');
    if (Buffer.byteLength(this.name) + '.unfinished'.length + 4 > 255) throw new RangeError(`queue name ${this.name} is too long: a queue's semaphores add up to 15 bytes to it, and names are at most 255 bytes`);
    const create = anonymous || options.create !== false;
    const exclusive = anonymous || options.exclusive === true;
    const mode = options.mode ?? 0o600;
    ({ name: this.#codecName, codec: this.#codec } = resolveCodec(options.codec));
    this.#raw = this.#codecName === 'raw';
    this.#decodeCopies = this.#codecName === 'pickle' || this.#codecName === 'json';
    this.#batch = !this.#raw && (options.batch ?? anonymous);
    this.#anonymous = anonymous;
    const names = semaphoreNames(this.name);
    const made: [ResourceKind, string][] = [];
    // An anonymous object is tracked before it exists, so no SIGKILL can orphan it.
    const making = (kind: ResourceKind, name: string) => {
      made.push([kind, name]);
      if (anonymous) track(kind, name);
    };
    try {
      making('queue', this.name);
      this.kernel = new MessageQueue(this.name, { create, exclusive, mode, maxMessages: options.maxMessages, maxMessageSize: options.maxMessageSize });
      making('semaphore', names.items);
      this.#items = openCounter(names.items, create, mode, this.name);
      if (maxsize > 0 && create) {
        making('semaphore', names.slots);
        this.#slots = new NamedSemaphore(names.slots, { create, mode, initialValue: Math.min(maxsize, SEM_VALUE_MAX) });
      } else {
        this.#slots = create ? null : openIfExists(names.slots);
      }
      this.maxsize = this.#slots === null ? 0 : maxsize > 0 ? maxsize : this.#slots.value + this.#items.value;
    } catch (error) {
      if (anonymous) {
        for (const [kind, name] of made) {
          tryUnlink(kind, name);
          untrack(kind, name);
        }
      }
      throw error;
    }
  }

  /** Opens the existing named queue `name` (its maxsize is the one it was created with). */
  static open<T = unknown>(name: string, options: OpenOptions = {}): Queue<T> {
    return new Queue<T>(0, { ...options, name, create: false });
  }

  /** Removes the named queue `name` and its semaphores; processes holding it keep using it. */
  static unlink(name: string): void {
    validateName(name, 'queue name');
    MessageQueue.unlink(name);
    for (const semaphore of Object.values(semaphoreNames(name))) tryUnlink('semaphore', semaphore);
  }

  /** Hook for JoinableQueue: counts a put, before the object is visible to consumers. */
  protected countPut(): void {}

  /** Hook for JoinableQueue: undoes countPut when the put failed. */
  protected uncountPut(): void {}

  toString(): string {
    return `<${this.constructor.name} '${this.name}'>`;
  }

  /**
   * Puts `obj` in the queue. An unbounded queue never blocks; a bounded one
   * waits for room (forever by default, `timeout` seconds, or not at all
   * with block = false) and throws Full if none came.
   */
  put(obj: T, block = true, timeout: number | null = null): void {
    this.#checkOpen();
    const seconds = waitSeconds(timeout, block);
    if (this.#slots && !this.#slots.acquire(0)) {
      if (seconds === 0) throw new Full();
      releaseBursts();
      if (!this.#slots.acquire(seconds)) throw new Full();
    }
    this.#enqueue(obj);
  }

  put_nowait(obj: T): void {
    this.put(obj, false);
  }

  /** put() without blocking the event loop. */
  async putAsync(obj: T, options: WaitOptions = {}): Promise<void> {
    this.#checkOpen();
    if (this.#slots && !(await this.#slots.acquireAsync(options))) throw new Full();
    this.#enqueue(obj);
  }

  /**
   * Takes the next object, waiting for one (forever by default, `timeout`
   * seconds, or not at all with block = false); throws Empty if none came.
   */
  get(block = true, timeout: number | null = null): T {
    this.#checkOpen();
    const ready = this.#ready.shift();
    if (ready !== undefined) return this.#unframe(ready);
    const seconds = waitSeconds(timeout, block);
    if (seconds > 0 && bursting.size > 0) releaseBursts();
    // Received into a buffer reused from one get to the next, without the copy MessageQueue.receive makes.
    const scratch = this.#receiveScratch ??= Buffer.allocUnsafeSlow(this.kernel.maxMessageSize);
    const length = mqueue.mqReceive(this.kernel.fileno(), scratch, seconds);
    if (length < 0) throw new Empty();
    if (this.#raw) {
      const data = Buffer.allocUnsafe(length);
      scratch.copy(data, 0, 0, length);
      return this.#finishGet(data);
    }
    return this.#unframe(scratch.subarray(0, length), true);
  }

  get_nowait(): T {
    return this.get(false);
  }

  /** get() without blocking the event loop: rejects with Empty on timeout, ValueError if the queue is closed meanwhile. */
  async getAsync(options: WaitOptions = {}): Promise<T> {
    this.#checkOpen();
    const ready = this.#ready.shift();
    if (ready !== undefined) return this.#unframe(ready);
    let message: Buffer;
    try {
      message = (await this.kernel.receiveAsync(options)).data;
    } catch (error) {
      if (isOSError(error, 'EAGAIN') || isOSError(error, 'ETIMEDOUT')) throw new Empty();
      if (isOSError(error, 'EBADF')) this.#checkOpen();
      throw error;
    }
    return this.#unframe(message);
  }

  /** Objects put (by any process) and not yet got; counts what feeders still hold. */
  qsize(): number {
    this.#checkOpen();
    return this.#items.value;
  }

  empty(): boolean {
    return this.qsize() === 0;
  }

  full(): boolean {
    this.#checkOpen();
    return this.#slots !== null && this.#slots.value === 0;
  }

  /**
   * No more puts or gets from this process. What was put is still sent to
   * the kernel queue in the background (join_thread() waits for it). An
   * anonymous queue that was never handed to another process is removed.
   */
  close(): void {
    if (this.#closed) return;
    this.returnHeld();
    this.#closed = true;
    const unreachable = this.#unreachable();
    // Nobody could ever take what the feeder of an unreachable queue still holds.
    if (unreachable) this.#feeder?.drop();
    else this.#feeder?.close();
    this.kernel.close();
    this.#items.close();
    this.#slots?.close();
    this.closeExtra();
    if (unreachable) {
      discardHandOffs(this.name);
      for (const segment of this.#handOffsInFlight.splice(0)) {
        try { SharedMemorySegment.unlink(segment); } catch { /* sent, and taken by discardHandOffs */ }
        untrack('shm', segment);
      }
      this.#unlinkAll();
    }
    if (unreachable || !this.#feeder || this.#feeder.pending === 0) feeding.delete(this as Queue<unknown>);
  }

  /** Hook for JoinableQueue: closes its extra kernel objects. */
  protected closeExtra(): void {}

  /** Waits until everything this process put reached the kernel queue; only after close(), as in Python. */
  join_thread(): void {
    if (!this.#closed) throw new AssertionError(`Queue ${this} not closed`);
    this.#flushed(this.#feeder?.flush(Infinity) ?? true);
  }

  /** The process may exit without waiting for what it put to reach the kernel queue (it is then lost). */
  cancel_join_thread(): void {
    this.#joinCancelled = true;
    this.#feeder?.keepAlive(false);
  }

  /** Removes the queue's name and its semaphores (see Queue.unlink). */
  unlink(): void {
    (this.constructor as typeof Queue).unlink(this.name);
    if (this.#anonymous) this.#untrackAll();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** close(), then waits (without blocking the event loop) until what this process put reached the kernel queue. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    if (this.#feeder === null || this.#feeder.pending === 0) return;
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Objects as they come, until the queue is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    while (!this.#closed) {
      try {
        yield await this.getAsync();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
    }
  }

  /** Crossing to another process (pickled in Process args): it opens the same kernel objects by name. */
  [reduceSymbol](): Reduction {
    this.#checkOpen();
    if (this.#codecName === 'custom') throw new TypeError(`${this} has a custom codec, which cannot cross to another process; give the other process its own Queue.open(name, { codec })`);
    this.#shared = true;
    this.#feeder?.keepAlive(this.#waitsAtExit());
    return [MODULE, 'Queue', [this.constructor.name, this.name, this.#codecName, this.#batch]];
  }

  /**
   * Puts back the objects of a batch this process received and did not get
   * (at close and at exit), so a consumer that stops (at its sentinel, say)
   * does not keep work, or another consumer's sentinel, from the others.
   */
  returnHeld(): void {
    if (this.#closed || this.#ready.length === 0) return;
    const feeder = this.#startFeeder();
    for (const entry of this.#ready.splice(0)) feeder.push(entry, false);
    holding.delete(this as Queue<unknown>);
  }

  /**
   * Called at process exit: waits for the feeder unless cancel_join_thread()
   * was called, or the queue is anonymous and was never handed to another
   * process (nobody could ever take what is left, so waiting would never end).
   */
  flushAtExit(): void {
    if (this.#waitsAtExit()) this.#flushed(this.#feeder?.flush(Infinity) ?? true);
  }

  #waitsAtExit(): boolean {
    return !this.#joinCancelled && !(this.#anonymous && !this.#shared);
  }

  /** Closed, anonymous and never handed to another process: nobody can ever get what is in it. */
  #unreachable(): boolean {
    return this.#closed && this.#anonymous && !this.#shared;
  }

  /** Once every frame reached the kernel queue, its hand-off segments belong to the queue, not to this process. */
  #flushed(everything: boolean): void {
    // Delivered to a queue nobody can read any more, a segment stays this process's, for the tracker to remove.
    if (!everything || this.#unreachable()) return;
    for (const name of this.#handOffsInFlight.splice(0)) untrack('shm', name);
  }

  #checkOpen(): void {
    if (this.#closed) throw this.closedError();
  }

  /** What a call on a closed queue throws (CPython's Queue: ValueError). */
  protected closedError(): Error {
    return new ValueError(`Queue ${this} is closed`);
  }

  #enqueue(obj: T): void {
    let payload: Uint8Array;
    try {
      payload = this.#codec.encode(obj);
    } catch (error) {
      this.#slots?.release();
      throw error;
    }
    // Counted before it becomes visible, so a consumer never takes an uncounted object.
    this.#items.release();
    this.countPut();
    try {
      this.#send(payload);
    } catch (error) {
      this.#items.acquire(0);
      this.uncountPut();
      this.#slots?.release();
      throw error;
    }
  }

  #send(payload: Uint8Array): void {
    const feeder = this.#startFeeder();
    const limit = this.kernel.maxMessageSize;
    if (this.#raw) {
      if (payload.byteLength > limit) throw new ValueError(`a 'raw' message of ${payload.byteLength} bytes does not fit the queue's ${limit}-byte messages; use another codec for larger objects`);
      feeder.push(payload, false);
      return;
    }
    const escaped = payload.byteLength === 0 || payload[0]! <= HANDOFF;
    const size = payload.byteLength + (escaped ? 1 : 0);
    if (size <= limit) {
      const bytes = escaped ? Buffer.concat([Buffer.of(ESCAPED), payload]) : payload;
      if (!this.#batch) {
        feeder.push(bytes, false);
        return;
      }
      // The first put of a task goes at once (a lone put is never delayed); the
      // next ones of the same task are held to share kernel messages, so a
      // burst of puts wakes a waiting consumer once per batch, not per object.
      feeder.push(bytes, true, this.#inBurst);
      if (this.#inBurst) {
        bursting.add(feeder);
      } else {
        this.#inBurst = true;
        queueMicrotask(this.#endBurst);
      }
      return;
    }
    const { frame, segment } = handOff(payload);
    if (feeder.push(frame, false) === 0) untrack('shm', segment);
    else this.#handOffsInFlight.push(segment);
  }

  #startFeeder(): FeederHandle {
    if (this.#feeder === null) {
      this.#feeder = new native.Feeder(this.name, this.#batch ? MAX_BATCH : 1, () => {
        const empty = this.#feeder!.pending === 0;
        this.#flushed(empty);
        if (empty) for (const resolve of this.#drainWaiters.splice(0)) resolve();
        if (this.#closed && empty) feeding.delete(this as Queue<unknown>);
      });
      this.#feeder.keepAlive(this.#waitsAtExit());
      // Until close(): an open queue never leaves the set.
      feeding.add(this as Queue<unknown>);
    }
    return this.#feeder;
  }

  /** The object of a message; `reused`: its bytes are in a buffer the next receive overwrites (never with 'raw'). */
  #unframe(message: Buffer, reused = false): T {
    if (this.#raw) return this.#finishGet(message);
    switch (message[0]) {
      case BATCH: {
        // The entries held for later gets must outlive the receive buffer.
        const batch = reused ? Buffer.from(message) : message;
        const count = batch.readUInt32LE(1);
        if (count === 0) throw new ValueError('a batch frame with no objects (docs/wire-format.md)');
        let first = batch;
        for (let i = 0, at = 5; i < count; i++) {
          const length = batch.readUInt32LE(at);
          const entry = batch.subarray(at + 4, at + 4 + length);
          if (i === 0) first = entry;
          else this.#ready.push(entry);
          at += 4 + length;
        }
        if (count > 1) holding.add(this as Queue<unknown>);
        return this.#unframe(first);
      }
      case HANDOFF: {
        // pickle and json copy what they keep, so their bytes can go to a scratch buffer reused from one object to the next.
        if (!this.#decodeCopies) return this.#finishGet(takeHandOff(message, null));
        const bytes = takeHandOff(message, this.#handOffScratch);
        if (bytes.buffer !== this.#handOffScratch?.buffer && bytes.length <= MAX_HANDOFF_SCRATCH) this.#handOffScratch = bytes;
        return this.#finishGet(bytes);
      }
      default: {
        const payload = message[0] === ESCAPED ? message.subarray(1) : message;
        return this.#finishGet(reused && !this.#decodeCopies ? Buffer.from(payload) : payload);
      }
    }
  }

  #finishGet(payload: Buffer): T {
    this.#items.acquire(0);
    this.#slots?.release();
    return this.#codec.decode(payload) as T;
  }

  #unlinkAll(): void {
    tryUnlink('queue', this.name);
    for (const semaphore of Object.values(semaphoreNames(this.name))) tryUnlink('semaphore', semaphore);
    this.#untrackAll();
  }

  #untrackAll(): void {
    untrack('queue', this.name);
    for (const semaphore of Object.values(semaphoreNames(this.name))) untrack('semaphore', semaphore);
  }
}

/** A queue's `.items` semaphore; opening a queue some other program made explains what is missing. */
function openCounter(name: string, create: boolean, mode: number, queue: string): NamedSemaphore {
  try {
    return new NamedSemaphore(name, { create, mode, initialValue: 0 });
  } catch (error) {
    if (!create && isOSError(error, 'ENOENT')) {
      throw withHint(error, `message queue '${queue}' exists but was not made by a Queue (its semaphore ${name} is missing): open it with new Queue(0, { name: '${queue}' }), which adds what is missing, or use MessageQueue from posix-multiprocessing/posix`);
    }
    throw error;
  }
}

function openIfExists(name: string): NamedSemaphore | null {
  try {
    return new NamedSemaphore(name);
  } catch (error) {
    if (isOSError(error, 'ENOENT')) return null;
    throw error;
  }
}

interface ShmBinding {
  shmOpen(name: string, oflag: number, mode: number): number;
  shmUnlink(name: string): void;
  shmFlags: { O_RDWR: number; O_CREAT: number; O_EXCL: number };
}
const shm = binding<ShmBinding>();

/**
 * Writes a large payload to a new shared memory segment; the frame names it.
 * The segment is tracked (before it exists, so no SIGKILL can orphan it)
 * until the caller knows the frame reached the kernel; the receiver unlinks it.
 * Written with write(2), not through a mapping: no page faults, and a full
 * /dev/shm is an ENOSPC error here rather than a SIGBUS.
 */
function handOff(payload: Uint8Array): { frame: Buffer; segment: string } {
  const name = anonymousName();
  track('shm', name);
  try {
    const fd = shm.shmOpen(name, shm.shmFlags.O_RDWR | shm.shmFlags.O_CREAT | shm.shmFlags.O_EXCL, 0o600);
    try {
      for (let at = 0; at < payload.byteLength;) at += writeSync(fd, payload, at, payload.byteLength - at, at);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    try { SharedMemorySegment.unlink(name); } catch { /* never created */ }
    untrack('shm', name);
    throw error;
  }
  const nameBytes = Buffer.from(name);
  const frame = Buffer.allocUnsafe(HANDOFF_HEADER + nameBytes.length);
  frame[0] = HANDOFF;
  frame.writeBigUInt64LE(BigInt(payload.byteLength), 1);
  nameBytes.copy(frame, HANDOFF_HEADER);
  return { frame, segment: name };
}

/**
 * Reads the object of a hand-off frame out of the segment it names (with
 * read(2): no mapping to fault in) and unlinks the segment. The bytes land in
 * `into` when it is large enough, else in a new Buffer.
 */
function takeHandOff(frame: Buffer, into: Buffer | null): Buffer {
  const length = Number(frame.readBigUInt64LE(1));
  const name = frame.subarray(HANDOFF_HEADER).toString();
  let fd: number;
  try {
    fd = shm.shmOpen(name, shm.shmFlags.O_RDWR, 0);
  } catch (error) {
    if (isOSError(error, 'ENOENT')) throw withHint(error, `the shared memory segment ${name} holding a large object is gone (removed by hand, or by the resource tracker of a producer killed while handing it over)`);
    throw error;
  }
  try {
    SharedMemorySegment.unlink(name);
    const bytes = into !== null && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    for (let at = 0; at < length;) {
      const read = readSync(fd, bytes, at, length - at, at);
      if (read === 0) throw new ValueError(`shared memory segment '${name}' holds fewer than the ${length} bytes its hand-off frame announced`);
      at += read;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/**
 * Takes the messages left in the kernel queue `name` and removes the
 * hand-off segments they name: called for a queue nobody can read any more,
 * whose segments would otherwise stay in /dev/shm until reboot.
 */
export function discardHandOffs(name: string): void {
  let kernel: MessageQueue;
  try {
    kernel = new MessageQueue(name);
  } catch (error) {
    if (isOSError(error, 'ENOENT')) return;
    throw error;
  }
  try {
    for (;;) {
      let message: Buffer;
      try {
        message = kernel.receive({ timeout: 0 }).data;
      } catch (error) {
        if (isOSError(error, 'EAGAIN')) return;
        throw error;
      }
      const segment = message[0] === HANDOFF ? message.subarray(HANDOFF_HEADER).toString() : '';
      // Only our own names: a 'raw' queue's message may start with the same byte.
      if (/^\/pmp-\d+-\w+$/.test(segment)) {
        try { SharedMemorySegment.unlink(segment); } catch { /* already taken */ }
      }
    }
  } finally {
    kernel.close();
  }
}

/** Python's SimpleQueue: put, get, empty, close (unbounded, no timeouts). */
export class SimpleQueue<T = unknown> extends Queue<T> {
  constructor(options: QueueOptions = {}) {
    super(0, options);
  }

  static override open<T = unknown>(name: string, options: OpenOptions = {}): SimpleQueue<T> {
    return new SimpleQueue<T>({ ...options, name, create: false });
  }

  /** CPython's SimpleQueue has closed its pipe: OSError('handle is closed'). */
  protected override closedError(): Error {
    return handleError('handle is closed');
  }
}

/**
 * join() polls the `.unfinished` count (no kernel call waits for a semaphore
 * to reach 0), backing off to this pause: it returns at most this late, and
 * a poll costs well under a microsecond.
 */
const JOIN_POLL_MAX_MS = 2;

/** A Queue whose consumers report each object done (task_done) and whose producers can wait for all to be (join). */
export class JoinableQueue<T = unknown> extends Queue<T> {
  #unfinished: NamedSemaphore | undefined;

  constructor(maxsize = 0, options: QueueOptions = {}) {
    super(maxsize, options);
    const name = semaphoreNames(this.name).unfinished;
    const anonymous = options.name === undefined;
    if (anonymous) track('semaphore', name);
    try {
      this.#unfinished = new NamedSemaphore(name, { create: anonymous || options.create !== false, mode: options.mode ?? 0o600, initialValue: 0 });
    } catch (error) {
      this.close();
      throw error;
    }
  }

  static override open<T = unknown>(name: string, options: OpenOptions = {}): JoinableQueue<T> {
    return new JoinableQueue<T>(0, { ...options, name, create: false });
  }

  protected override countPut(): void {
    this.#unfinished!.release();
  }

  protected override uncountPut(): void {
    this.#unfinished!.acquire(0);
  }

  protected override closeExtra(): void {
    this.#unfinished?.close();
  }

  /** One object got from the queue is done; ValueError if more than were put. */
  task_done(): void {
    if (!this.#unfinishedSemaphore().acquire(0)) throw new ValueError('task_done() called too many times');
  }

  /** Blocks until every object put (by any process) was reported done (by any process). */
  join(): void {
    const semaphore = this.#unfinishedSemaphore();
    releaseBursts();
    for (let pause = 1; semaphore.value > 0; pause = Math.min(pause * 2, JOIN_POLL_MAX_MS)) sleepSync(pause);
  }

  /** join() without blocking the event loop; resolves false if `timeout` seconds passed first. */
  async joinAsync(options: WaitOptions = {}): Promise<boolean> {
    const semaphore = this.#unfinishedSemaphore();
    const deadline = deadlineAfter(waitSeconds(options.timeout));
    for (let pause = 1; semaphore.value > 0; pause = Math.min(pause * 2, JOIN_POLL_MAX_MS)) {
      options.signal?.throwIfAborted();
      if (secondsUntil(deadline) === 0) return false;
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, secondsUntil(deadline) * 1000)));
    }
    return true;
  }

  #unfinishedSemaphore(): NamedSemaphore {
    if (this.#unfinished === undefined || this.#unfinished.closed) throw new ValueError(`Queue ${this} is closed`);
    return this.#unfinished;
  }
}

// A queue pickled for another process (Process args) opens there by name.
registerReconstructor(MODULE, 'Queue', (kind: string, name: string, codec: CodecName, batch: boolean) => {
  const options: QueueOptions = { name, create: false, codec, batch };
  if (kind === 'JoinableQueue') return new JoinableQueue(0, options);
  return kind === 'SimpleQueue' ? new SimpleQueue(options) : new Queue(0, options);
});

// Python's names first; the camelCase aliases are the same functions.
for (const [alias, name] of [['putNowait', 'put_nowait'], ['getNowait', 'get_nowait'], ['joinThread', 'join_thread'], ['cancelJoinThread', 'cancel_join_thread']] as const) {
  Object.defineProperty(Queue.prototype, alias, { value: Queue.prototype[name], writable: true, configurable: true });
}
Object.defineProperty(JoinableQueue.prototype, 'taskDone', { value: JoinableQueue.prototype.task_done, writable: true, configurable: true });

export interface Queue<T> {
  putNowait(obj: T): void;
  getNowait(): T;
  joinThread(): void;
  cancelJoinThread(): void;
}
export interface JoinableQueue<T> {
  taskDone(): void;
}
