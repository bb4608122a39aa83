// multiprocessing.connection: Pipe, Connection, Listener and Client, on the
// wire exactly as CPython's (framing and both authkey handshakes), so a Node
// process and a Python process talk to each other.
//
// A Connection owns one blocking descriptor (a socket, or one end of a pipe).
// The Python-named methods block the calling thread as Python's do; the
// Async twins wait on the event loop (FdPoller) and read or write only what
// the descriptor takes without blocking. Messages are read exactly, never
// beyond their end, so several processes may share a descriptor.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthenticationError, BufferTooShort, EOFError, TimeoutError, ValueError, abortError, handleError, isOSError, withHint } from './errors.js';
import { binding, READABLE, WRITABLE, type FdPoller, type PollerBinding } from './native.js';
import { dumps, loads, registerReconstructor } from './pickle.js';
import { track } from './resource_tracker.js';
import { MODULE, inheritDescriptor, reduceSymbol, type Reduction } from './reduction.js';
import { afterSeconds, deadlineAfter, secondsUntil, waitSeconds, type WaitOptions } from './timeouts.js';

interface SocketBinding {
  socket: {
    socketpair(): [number, number];
    pipe(): [number, number];
    wait(fd: number, events: number, timeoutMs: number): number;
    read(fd: number, buffer: Uint8Array, offset: number, length: number, timeoutMs: number): number;
    write(fd: number, buffer: Uint8Array, offset: number, length: number, timeoutMs: number): number;
    send(fd: number, buffer: Uint8Array, offset: number, length: number, timeoutMs: number): number;
    close(fd: number): void;
    adopt(fd: number): void;
    setBlocking(fd: number, blocking: boolean): void;
    isSocket(fd: number): boolean;
    socket(address: Address): number;
    setReuseAddress(fd: number): void;
    bind(fd: number, address: Address): void;
    listen(fd: number, backlog: number): void;
    accept(fd: number, timeoutMs: number): [number, Address | null] | null;
    connect(fd: number, address: Address, block: boolean): boolean;
    connectResult(fd: number, address: Address): void;
    getsockname(fd: number): Address | null;
  };
}
interface PollBinding {
  /** ppoll over many descriptors: per descriptor 1 readable, 2 writable, 4 hang-up or error. */
  poll(fds: number[], events: number[], seconds: number): number[];
}
const native = binding<SocketBinding & PollerBinding & PollBinding>();
const sys = native.socket;

/** A socket address: an AF_UNIX path ('\0name' is abstract) or an AF_INET [host, port]. */
export type Address = string | [host: string, port: number];
export type Family = 'AF_UNIX' | 'AF_INET';

const FOREVER = -1;
const NOT_READY = -1;
// CPython writes header and payload in one call up to this size.
const SMALL_MESSAGE = 16384;
const MAX_SHORT_LENGTH = 0x7fffffff;
// A pipe reported writable takes this much without blocking (Linux PIPE_BUF).
const PIPE_BUF = 4096;

/** Python's OSError for the conditions CPython reports without an errno. */
const PYTHON_NAMES: Record<string, string> = {
  EPIPE: 'BrokenPipeError',
  ECONNRESET: 'ConnectionResetError',
  ECONNREFUSED: 'ConnectionRefusedError',
  ENOENT: 'FileNotFoundError',
};

/** A failed system call, named as Python names it, with a message that says what to do. */
function explained(error: unknown, address?: Address): unknown {
  if (!isOSError(error)) return error;
  const where = address === undefined ? '' : ` ${formatAddress(address)}`;
  const hints: Record<string, string> = {
    EPIPE: 'Broken pipe: the other end of the connection is closed',
    ECONNRESET: 'Connection reset by peer: the other process closed the connection or died',
    ECONNREFUSED: `Connection refused by${where}: no Listener is accepting there`,
    ENOENT: `No Listener at${where}: start the Listener first, or check the path`,
    EADDRINUSE: `Address${where} is already in use: close the other Listener, pick another address, or remove a stale socket file`,
    EACCES: `Permission denied for${where}: the socket or its directory belongs to another user`,
    ENAMETOOLONG: `AF_UNIX path${where} is too long (at most 107 bytes)`,
    EMFILE: 'Too many open files in this process: close unused connections or raise the limit (ulimit -n)',
  };
  const hint = hints[error.code];
  if (hint !== undefined) withHint(error, hint);
  const pythonName = PYTHON_NAMES[error.code];
  if (pythonName !== undefined) error.name = pythonName;
  return error;
}

function formatAddress(address: Address): string {
  if (typeof address !== 'string') return `${address[0]}:${address[1]}`;
  return address.startsWith('\0') ? `abstract socket '@${address.slice(1)}'` : `'${address}'`;
}

/** Milliseconds for the native waits: -1 is forever. */
function toMs(seconds: number): number {
  return seconds === Infinity ? FOREVER : seconds * 1000;
}

/** The bytes of any bytes-like object, without copying; a string is a TypeError as in Python. */
function bytesOf(buf: unknown): Buffer {
  if (Buffer.isBuffer(buf)) return buf;
  if (ArrayBuffer.isView(buf)) return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf instanceof ArrayBuffer || buf instanceof SharedArrayBuffer) return Buffer.from(buf);
  const kind = typeof buf === 'string' ? 'str' : buf === null ? 'None' : typeof buf;
  throw new TypeError(`a bytes-like object is required, not '${kind}'`);
}

/** CPython's header for an n-byte message: 4-byte signed big-endian, or -1 and 8 bytes. */
export function frameHeader(n: number): Buffer {
  if (n <= MAX_SHORT_LENGTH) {
    const header = Buffer.allocUnsafe(4);
    header.writeInt32BE(n);
    return header;
  }
  const header = Buffer.allocUnsafe(12);
  header.writeInt32BE(-1);
  header.writeBigUInt64BE(BigInt(n), 4);
  return header;
}

/**
 * Event-loop readiness for one descriptor: one FdPoller, armed only while
 * somebody waits, and the waiters per direction.
 */
class Readiness {
  #poller: FdPoller | null = null;
  readonly #waiters = new Map<number, Set<(error: Error | null) => void>>([[READABLE, new Set()], [WRITABLE, new Set()]]);

  constructor(readonly fd: number) {}

  /** Resolves true when `events` is ready, false at the deadline; rejects on abort or close. */
  wait(events: typeof READABLE | typeof WRITABLE, deadline = Infinity, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      const waiters = this.#waiters.get(events)!;
      let cancelTimer: (() => void) | undefined;
      const settle = (error: Error | null, ready: boolean) => {
        waiters.delete(waiter);
        cancelTimer?.();
        signal?.removeEventListener('abort', onAbort);
        this.#arm();
        if (error) reject(error);
        else resolve(ready);
      };
      const waiter = (error: Error | null) => settle(error, true);
      const onAbort = () => settle(abortError(signal!), false);
      waiters.add(waiter);
      if (deadline !== Infinity) cancelTimer = afterSeconds(secondsUntil(deadline), () => settle(null, false));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#arm();
    });
  }

  /** Rejects every waiter: the descriptor is being closed. */
  close(error: Error): void {
    for (const waiters of this.#waiters.values()) for (const waiter of [...waiters]) waiter(error);
    this.#poller?.close();
    this.#poller = null;
  }

  #arm(): void {
    const mask = (this.#waiters.get(READABLE)!.size > 0 ? READABLE : 0) | (this.#waiters.get(WRITABLE)!.size > 0 ? WRITABLE : 0);
    if (mask === 0) {
      this.#poller?.stop();
      return;
    }
    if (this.#poller === null) {
      this.#poller = new native.FdPoller(this.fd, (status, events) => this.#ready(status, events));
      sys.setBlocking(this.fd, true);  // libuv made it non-blocking; other processes may share it
    }
    this.#poller.start(mask);
  }

  #ready(status: number, events: number): void {
    // An error status wakes everybody: their next system call reports it.
    for (const kind of [READABLE, WRITABLE]) {
      if (status < 0 || (events & kind) !== 0) for (const waiter of [...this.#waiters.get(kind)!]) waiter(null);
    }
  }
}

/**
 * A descriptor and its readiness. Closed by its owner's close(), or when an
 * owner that was never closed is garbage-collected (as CPython's __del__).
 */
class Handle {
  #readiness: Readiness | null = null;

  constructor(readonly fd: number) {}

  get readiness(): Readiness {
    return this.#readiness ??= new Readiness(this.fd);
  }

  close(error: Error): void {
    this.#readiness?.close(error);
    this.#readiness = null;
    sys.close(this.fd);
  }
}

const forgotten = new FinalizationRegistry<Handle>((handle) => handle.close(handleError('handle is closed')));

/** Runs async operations of one kind (reads, or writes) one after the other. */
class Turns {
  #tail: Promise<unknown> = Promise.resolve();
  pending = 0;

  run<T>(operation: () => Promise<T>): Promise<T> {
    this.pending++;
    const result = this.#tail.then(operation).finally(() => { this.pending--; });
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

const waitReady = Symbol('waitReady');

/** One end of a Pipe, or an accepted or connected socket: CPython's Connection. */
export class Connection implements Disposable {
  #handle: Handle | null;
  #readable: boolean;
  readonly #writable: boolean;
  readonly #isSocket: boolean;
  readonly #header = Buffer.allocUnsafe(12);
  readonly #reads = new Turns();
  readonly #writes = new Turns();

  constructor(fd: number, readable = true, writable = true) {
    if (!Number.isInteger(fd) || fd < 0) throw new ValueError('invalid handle');
    if (!readable && !writable) throw new ValueError('at least one of `readable` and `writable` must be True');
    this.#handle = new Handle(fd);
    forgotten.register(this, this.#handle, this);
    this.#readable = readable;
    this.#writable = writable;
    this.#isSocket = sys.isSocket(fd);
  }

  get closed(): boolean { return this.#handle === null; }
  get readable(): boolean { return this.#readable; }
  get writable(): boolean { return this.#writable; }

  fileno(): number {
    return this.#open();
  }

  /** Closes the descriptor (idempotent); pending Async calls reject with 'handle is closed'. */
  close(): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    forgotten.unregister(this);
    handle.close(handleError('handle is closed'));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Sends an object as one message: pickle.dumps(obj), protocol 4, as CPython's send. */
  send(obj: unknown): void {
    this.#checkWritable();
    this.send_bytes(dumps(obj));
  }

  /** Receives one message and unpickles it. */
  recv<T = any>(): T {
    this.#checkReadable();
    return loads(this.recv_bytes()) as T;
  }

  /** Sends the bytes [offset, offset + size) of a bytes-like object as one message. */
  send_bytes(buf: ArrayBufferView | ArrayBuffer, offset = 0, size?: number | null): void {
    this.#checkWritable();
    const view = slice(buf, offset, size);
    this.#noAsync(this.#writes, 'send');
    this.#sendMessage(view);
  }

  /** Receives one message; a message longer than maxlength is an OSError and ends reading. */
  recv_bytes(maxlength: number | null = null): Buffer {
    this.#checkReadable();
    if (maxlength !== null && maxlength !== undefined && maxlength < 0) throw new ValueError('negative maxlength');
    this.#noAsync(this.#reads, 'recv');
    const size = this.#readHeader();
    if (maxlength !== null && maxlength !== undefined && size > maxlength) this.#badMessageLength();
    const message = Buffer.allocUnsafe(size);
    this.#readExactly(message, 0, size);
    return message;
  }

  /**
   * Receives one message into buf at byte offset; returns its length. Too
   * small a buffer: BufferTooShort carrying the whole message (consumed).
   */
  recv_bytes_into(buf: ArrayBufferView | ArrayBuffer, offset = 0): number {
    this.#checkReadable();
    const target = bytesOf(buf);
    if (offset < 0) throw new ValueError('negative offset');
    if (offset > target.length) throw new ValueError('offset too large');
    this.#noAsync(this.#reads, 'recv');
    const size = this.#readHeader();
    if (offset + size > target.length) {
      const message = Buffer.allocUnsafe(size);
      this.#readExactly(message, 0, size);
      throw new BufferTooShort(message);
    }
    this.#readExactly(target, offset, size);
    return size;
  }

  /** Whether there is something to read (a message, or the peer's end of file), waiting up to timeout seconds. */
  poll(timeout: number | null = 0): boolean {
    this.#checkReadable();
    return sys.wait(this.#handle!.fd, READABLE, toMs(waitSeconds(timeout))) !== 0;
  }

  /** recv_bytes without blocking the event loop. The timeout and signal apply until a message starts to arrive. */
  recvBytesAsync(maxlength: number | null = null, options: WaitOptions = {}): Promise<Buffer> {
    this.#checkReadable();
    if (maxlength !== null && maxlength !== undefined && maxlength < 0) throw new ValueError('negative maxlength');
    const deadline = deadlineAfter(waitSeconds(options.timeout));
    return this.#reads.run(async () => {
      const size = await this.#readHeaderAsync(deadline, options.signal);
      if (maxlength !== null && maxlength !== undefined && size > maxlength) this.#badMessageLength();
      const message = Buffer.allocUnsafe(size);
      await this.#readExactlyAsync(message, 0, size);
      return message;
    });
  }

  /** recv without blocking the event loop. */
  async recvAsync<T = any>(options: WaitOptions = {}): Promise<T> {
    return loads(await this.recvBytesAsync(null, options)) as T;
  }

  /** send without blocking the event loop when the peer is slow to read. */
  sendAsync(obj: unknown): Promise<void> {
    this.#checkWritable();
    return this.sendBytesAsync(dumps(obj));
  }

  /** poll without blocking the event loop: true when there is something to read. */
  async pollAsync(timeout: number | null = 0, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    this.#checkReadable();
    if (sys.wait(this.#handle!.fd, READABLE, 0) !== 0) return true;
    const seconds = waitSeconds(timeout);
    if (seconds === 0) return false;
    return this[waitReady](READABLE, deadlineAfter(seconds), options.signal);
  }

  /** send_bytes without blocking the event loop; messages sent this way are never interleaved. */
  sendBytesAsync(buf: ArrayBufferView | ArrayBuffer, offset = 0, size?: number | null): Promise<void> {
    this.#checkWritable();
    const view = slice(buf, offset, size);
    return this.#writes.run(async () => {
      const header = frameHeader(view.length);
      if (view.length <= SMALL_MESSAGE) {
        await this.#writeAllAsync(Buffer.concat([header, view]));
      } else {
        await this.#writeAllAsync(header);
        await this.#writeAllAsync(view);
      }
    });
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'Connection', [inheritDescriptor(this.#open()), this.#readable, this.#writable]];
  }

  /** @internal Waits on the event loop for the descriptor to be ready. */
  [waitReady](events: typeof READABLE | typeof WRITABLE, deadline = Infinity, signal?: AbortSignal): Promise<boolean> {
    this.#open();
    return this.#handle!.readiness.wait(events, deadline, signal);
  }

  #open(): number {
    if (this.#handle === null) throw handleError('handle is closed');
    return this.#handle.fd;
  }

  #checkReadable(): void {
    this.#open();
    if (!this.#readable) throw handleError('connection is write-only');
  }

  #checkWritable(): void {
    this.#open();
    if (!this.#writable) throw handleError('connection is read-only');
  }

  /** A blocking call in the middle of an Async one would tear its message. */
  #noAsync(turns: Turns, what: 'send' | 'recv'): void {
    if (turns.pending > 0) {
      throw new Error(`an Async ${what} is in progress on this connection: await it before calling ${what} synchronously`);
    }
  }

  #badMessageLength(): never {
    if (this.#writable) this.#readable = false;
    else this.close();
    throw handleError('bad message length');
  }

  // Writing -------------------------------------------------------------

  #sendMessage(view: Buffer): void {
    const n = view.length;
    if (n <= SMALL_MESSAGE) {
      const frame = Buffer.allocUnsafe(4 + n);
      frame.writeInt32BE(n);
      view.copy(frame, 4);
      this.#writeAll(frame);
    } else {
      this.#writeAll(frameHeader(n));
      this.#writeAll(view);
    }
  }

  #writeAll(buf: Buffer): void {
    const fd = this.#handle!.fd;
    const write = this.#isSocket ? sys.send : sys.write;
    try {
      for (let offset = 0; offset < buf.length;) offset += write(fd, buf, offset, buf.length - offset, FOREVER);
    } catch (error) {
      throw explained(error);
    }
  }

  async #writeAllAsync(buf: Buffer): Promise<void> {
    for (let offset = 0; offset < buf.length;) {
      const fd = this.#open();
      let n: number;
      try {
        n = this.#isSocket
          ? sys.send(fd, buf, offset, buf.length - offset, 0)
          : sys.write(fd, buf, offset, Math.min(PIPE_BUF, buf.length - offset), 0);
      } catch (error) {
        throw explained(error);
      }
      if (n === NOT_READY) await this[waitReady](WRITABLE);
      else offset += n;
    }
  }

  // Reading -------------------------------------------------------------

  /** Reads a frame header; EOF before it is EOFError. */
  #readHeader(): number {
    this.#readExactly(this.#header, 0, 4, true);
    let size = this.#header.readInt32BE(0);
    if (size === -1) {
      this.#readExactly(this.#header, 4, 8);
      size = this.#longLength();
    }
    if (size < 0) this.#badMessageLength();
    return size;
  }

  #longLength(): number {
    const size = this.#header.readBigUInt64BE(4);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) this.#badMessageLength();
    return Number(size);
  }

  #readExactly(buf: Buffer, offset: number, length: number, atBoundary = false): void {
    const fd = this.#handle!.fd;
    const end = offset + length;
    for (let at = offset; at < end;) {
      let n: number;
      try {
        n = sys.read(fd, buf, at, end - at, FOREVER);
      } catch (error) {
        throw explained(error);
      }
      if (n === 0) throw atBoundary && at === offset ? new EOFError() : handleError('got end of file during message');
      at += n;
    }
  }

  async #readHeaderAsync(deadline: number, signal?: AbortSignal): Promise<number> {
    // Until the first byte of the message the wait may end (timeout, abort); after it, the message is read whole.
    while (!(await this.#readSomeAsync(this.#header, 0, 4, true, deadline, signal))) {
      if (secondsUntil(deadline) === 0) throw new TimeoutError('timed out waiting for a message');
    }
    let size = this.#header.readInt32BE(0);
    if (size === -1) {
      await this.#readExactlyAsync(this.#header, 4, 8);
      size = this.#longLength();
    }
    if (size < 0) this.#badMessageLength();
    return size;
  }

  async #readExactlyAsync(buf: Buffer, offset: number, length: number): Promise<void> {
    await this.#readSomeAsync(buf, offset, length, false);
  }

  /**
   * Reads [offset, offset + length) as it arrives. Returns false only if
   * nothing was read by the deadline (the caller decides); once one byte
   * arrived it reads to the end.
   */
  async #readSomeAsync(buf: Buffer, offset: number, length: number, atBoundary: boolean,
    deadline = Infinity, signal?: AbortSignal): Promise<boolean> {
    const end = offset + length;
    let at = offset;
    while (at < end) {
      const fd = this.#open();
      let n: number;
      try {
        n = sys.read(fd, buf, at, end - at, 0);
      } catch (error) {
        throw explained(error);
      }
      if (n === 0) throw atBoundary && at === offset ? new EOFError() : handleError('got end of file during message');
      if (n > 0) {
        at += n;
        continue;
      }
      const started = at > offset;
      const ready = await this[waitReady](READABLE, started ? Infinity : deadline, started ? undefined : signal);
      if (!ready && !started) return false;
    }
    return true;
  }
}

/** The camelCase aliases: the same functions as the Python names. */
export interface Connection {
  sendBytes: Connection['send_bytes'];
  recvBytes: Connection['recv_bytes'];
  recvBytesInto: Connection['recv_bytes_into'];
}
for (const [alias, name] of [['sendBytes', 'send_bytes'], ['recvBytes', 'recv_bytes'], ['recvBytesInto', 'recv_bytes_into']] as const) {
  Object.defineProperty(Connection.prototype, alias, { value: Connection.prototype[name], writable: true, configurable: true });
}

/** The bytes send_bytes sends, checked with CPython's messages. */
function slice(buf: ArrayBufferView | ArrayBuffer, offset: number, size: number | null | undefined): Buffer {
  const bytes = bytesOf(buf);
  const n = bytes.length;
  if (offset < 0) throw new ValueError('offset is negative');
  if (n < offset) throw new ValueError('buffer length < offset');
  if (size === null || size === undefined) size = n - offset;
  else if (size < 0) throw new ValueError('size is negative');
  else if (offset + size > n) throw new ValueError('buffer length < offset + size');
  return bytes.subarray(offset, offset + size);
}

/** A Connection received from the parent process: its descriptor was inherited. */
export function rebuildConnection(fd: number, readable: boolean, writable: boolean): Connection {
  sys.adopt(fd);
  return new Connection(fd, readable, writable);
}
registerReconstructor(MODULE, 'Connection', rebuildConnection);

/** What wait() watches: a Connection, a descriptor, or anything with fileno() (a Process sentinel's holder). */
export type Waitable = Connection | number | { fileno(): number };

/**
 * Waits until one of the objects is ready to read (or its peer has closed)
 * and returns those that are, as multiprocessing.connection.wait; [] when the
 * timeout (seconds, null = forever) passes first.
 */
export function wait<T extends Waitable>(object_list: Iterable<T>, timeout: number | null = null): T[] {
  const objects = [...object_list];
  const fds = objects.map((object) => typeof object === 'number' ? object : object.fileno());
  const ready = native.poll(fds, fds.map(() => READABLE), waitSeconds(timeout));
  return objects.filter((_, i) => ready[i] !== 0);
}

/**
 * A pair of connected Connections. duplex: a socketpair, both ends read and
 * write; otherwise a pipe whose first end only receives and second only sends.
 */
export function Pipe(duplex = true): [Connection, Connection] {
  if (duplex) {
    const [a, b] = sys.socketpair();
    return [new Connection(a), new Connection(b)];
  }
  const [reader, writer] = sys.pipe();
  return [new Connection(reader, true, false), new Connection(writer, false, true)];
}

// Authentication: CPython's challenge/response, both the 3.11 form (a 20-byte
// challenge answered with a raw HMAC-MD5) and the 3.12+ form ('{sha256}' and
// 40 random bytes, answered with '{name}' + HMAC over the whole challenge).
// Every step is a framed message of at most 256 bytes; nothing from the peer
// is unpickled before both sides have authenticated.

const CHALLENGE = Buffer.from('#CHALLENGE#');
const WELCOME = Buffer.from('#WELCOME#');
const FAILURE = Buffer.from('#FAILURE#');
const MESSAGE_LENGTH = 40;
const MD5_ONLY_MESSAGE_LENGTH = 20;
const LEGACY_LENGTHS = [MD5_ONLY_MESSAGE_LENGTH, 16];
const AUTH_MAX = 256;
// Python's digest names and Node's.
const DIGESTS = new Map([['md5', 'md5'], ['sha256', 'sha256'], ['sha384', 'sha384'], ['sha3_256', 'sha3-256'], ['sha3_384', 'sha3-384']]);
const MAX_DIGEST_NAME = 8;

/** One step of a handshake: send a message, or receive one of at most `recv` bytes. */
type Step = { send: Buffer } | { recv: number };
type Handshake = Generator<Step, void, Buffer | undefined>;

/** Python's repr() of bytes, for error messages identical to CPython's. */
function bytesRepr(bytes: Buffer): string {
  const quote = bytes.includes(0x27) && !bytes.includes(0x22) ? '"' : "'";
  let out = 'b' + quote;
  for (const byte of bytes) {
    if (byte === 0x5c) out += '\\\\';
    else if (byte === 0x09) out += '\\t';
    else if (byte === 0x0a) out += '\\n';
    else if (byte === 0x0d) out += '\\r';
    else if (byte === quote.charCodeAt(0)) out += '\\' + quote;
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += '\\x' + byte.toString(16).padStart(2, '0');
  }
  return out + quote;
}

function hmac(key: Buffer, message: Buffer, digest: string): Buffer {
  return createHmac(DIGESTS.get(digest)!, key).update(message).digest();
}

/** ['', message] for the legacy forms, else the '{name}' prefix's name and what follows it. */
function digestNameAndPayload(message: Buffer): [string, Buffer] {
  if (LEGACY_LENGTHS.includes(message.length)) return ['', message];
  if (message[0] === 0x7b) {
    const curly = message.subarray(0, MAX_DIGEST_NAME + 2).indexOf(0x7d, 1);
    if (curly > 0) {
      const name = message.subarray(1, curly).toString('latin1');
      if (DIGESTS.has(name)) return [name, message.subarray(curly + 1)];
    }
  }
  throw new AuthenticationError(`unsupported message length, missing digest prefix, or unsupported digest: message=${bytesRepr(message)}`);
}

function createResponse(key: Buffer, message: Buffer): Buffer {
  const [name] = digestNameAndPayload(message);
  if (name === '') return hmac(key, message, 'md5');
  return Buffer.concat([Buffer.from(`{${name}}`), hmac(key, message, name)]);
}

function verifyChallenge(key: Buffer, message: Buffer, response: Buffer): void {
  const [name, mac] = digestNameAndPayload(response);
  const digest = name || 'md5';
  const expected = hmac(key, message, digest);
  if (expected.length !== mac.length) {
    throw new AuthenticationError(`expected '${digest}' of length ${expected.length} got ${mac.length}`);
  }
  if (!timingSafeEqual(expected, mac)) throw new AuthenticationError('digest received was wrong');
}

/** Challenges the peer to prove it knows the key (the Listener does this first). */
function* deliverChallenge(key: Buffer): Handshake {
  const message = Buffer.concat([Buffer.from('{sha256}'), randomBytes(MESSAGE_LENGTH)]);
  yield { send: Buffer.concat([CHALLENGE, message]) };
  const response = (yield { recv: AUTH_MAX })!;
  try {
    verifyChallenge(key, message, response);
  } catch (error) {
    yield { send: FAILURE };
    throw error;
  }
  yield { send: WELCOME };
}

/** Proves to the peer that this side knows the key (the Client does this first). */
function* answerChallenge(key: Buffer): Handshake {
  const challenge = (yield { recv: AUTH_MAX })!;
  if (!challenge.subarray(0, CHALLENGE.length).equals(CHALLENGE)) {
    throw new AuthenticationError(`Protocol error, expected challenge: message=${bytesRepr(challenge)}`);
  }
  const message = challenge.subarray(CHALLENGE.length);
  if (message.length < MD5_ONLY_MESSAGE_LENGTH) throw new AuthenticationError(`challenge too short: ${message.length} bytes`);
  yield { send: createResponse(key, message) };
  const response = (yield { recv: AUTH_MAX })!;
  if (!response.equals(WELCOME)) throw new AuthenticationError('digest sent was rejected');
}

function* serverHandshake(key: Buffer): Handshake {
  yield* deliverChallenge(key);
  yield* answerChallenge(key);
}

function* clientHandshake(key: Buffer): Handshake {
  yield* answerChallenge(key);
  yield* deliverChallenge(key);
}

/** Runs a handshake with the blocking calls; a failure closes the connection. */
function shake(conn: Connection, handshake: Handshake): Connection {
  try {
    for (let step = handshake.next(); !step.done;) {
      if ('send' in step.value) {
        conn.send_bytes(step.value.send);
        step = handshake.next();
      } else {
        step = handshake.next(conn.recv_bytes(step.value.recv));
      }
    }
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** Runs a handshake on the event loop; a failure closes the connection. */
async function shakeAsync(conn: Connection, handshake: Handshake, { timeout, signal }: WaitOptions = {}): Promise<Connection> {
  const deadline = deadlineAfter(waitSeconds(timeout));
  try {
    for (let step = handshake.next(); !step.done;) {
      if ('send' in step.value) {
        await conn.sendBytesAsync(step.value.send);
        step = handshake.next();
      } else {
        step = handshake.next(await conn.recvBytesAsync(step.value.recv, { timeout: secondsUntil(deadline), signal }));
      }
    }
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

function checkKey(authkey: unknown): Buffer {
  if (!Buffer.isBuffer(authkey)) {
    const type = typeof authkey === 'string' ? "<class 'str'>" : `<${typeof authkey}>`;
    throw new ValueError(`Authkey must be bytes, not ${type}`);
  }
  return authkey;
}

/**
 * CPython's deliver_challenge then answer_challenge: what Listener.accept
 * does with an authkey, for servers that authenticate after accepting (as
 * CPython's managers do, off the accepting loop). A failure closes `conn`.
 */
export function authenticateClient(conn: Connection, authkey: Buffer): Connection {
  return shake(conn, serverHandshake(checkKey(authkey)));
}

/** authenticateClient on the event loop; the timeout covers the whole handshake. */
export function authenticateClientAsync(conn: Connection, authkey: Buffer, options?: WaitOptions): Promise<Connection> {
  return shakeAsync(conn, serverHandshake(checkKey(authkey)), options);
}

// Listener and Client ---------------------------------------------------

/** The family an address belongs to, as CPython's address_type. */
export function addressType(address: unknown): Family | 'AF_PIPE' {
  if (Array.isArray(address)) return 'AF_INET';
  if (typeof address === 'string') return address.startsWith('\\\\') ? 'AF_PIPE' : 'AF_UNIX';
  throw new ValueError(`address type of ${typeof address === 'object' ? JSON.stringify(address) : String(address)} unrecognized`);
}

function validateFamily(family: string): Family {
  if (family !== 'AF_UNIX' && family !== 'AF_INET') throw new ValueError(`Family ${family} is not recognized.`);
  return family;
}

function validateAuthkey(authkey: unknown): Buffer | null {
  if (authkey === null || authkey === undefined) return null;
  if (!(authkey instanceof Uint8Array)) throw new TypeError('authkey should be a byte string');
  return Buffer.from(authkey.buffer, authkey.byteOffset, authkey.byteLength);
}

let privateDir: string | null = null;
/**
 * A fresh socket path in this process's owner-only temporary directory,
 * removed at exit, or by the resource tracker when the process (or Worker
 * thread) ends without an exit event (SIGKILL, Worker.terminate()).
 */
function arbitraryAddress(family: Family): Address {
  if (family === 'AF_INET') return ['localhost', 0];
  if (privateDir === null) {
    const dir = mkdtempSync(join(tmpdir(), 'pmp-'));
    track('directory', dir);
    privateDir = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return join(privateDir, `listener-${randomBytes(6).toString('hex')}`);
}

export interface ListenerOptions {
  family?: Family | null;
  backlog?: number;
  authkey?: Uint8Array | null;
}

/** A bound, listening socket: CPython's multiprocessing.connection.Listener. */
export class Listener implements Disposable {
  #handle: Handle | null;
  readonly #address: Address;
  readonly #authkey: Buffer | null;
  readonly #unlinkPath: string | null;
  #lastAccepted: Address | null = null;

  constructor(address: Address | null = null, { family = null, backlog = 1, authkey = null }: ListenerOptions = {}) {
    const chosen = validateFamily(family ?? (address ? addressType(address) : 'AF_UNIX'));
    const defaultPath = address === null || address === undefined;
    const bound = defaultPath ? arbitraryAddress(chosen) : address;
    if (addressType(bound) !== chosen) throw new ValueError(`address ${formatAddress(bound)} is not an ${chosen} address`);
    this.#authkey = validateAuthkey(authkey);
    const fd = sys.socket(bound);
    try {
      sys.setReuseAddress(fd);
      sys.bind(fd, bound);
      if (defaultPath && typeof bound === 'string') chmodSync(bound, 0o600);
      sys.listen(fd, backlog);
      this.#address = sys.getsockname(fd) ?? bound;
    } catch (error) {
      sys.close(fd);
      throw explained(error, bound);
    }
    this.#handle = new Handle(fd);
    forgotten.register(this, this.#handle, this);
    this.#unlinkPath = typeof bound === 'string' && !bound.startsWith('\0') ? bound : null;
  }

  get address(): Address { return this.#address; }
  /** The peer address of the last accepted connection ('' for an unnamed AF_UNIX peer), null before. */
  get last_accepted(): Address | null { return this.#lastAccepted; }
  get lastAccepted(): Address | null { return this.#lastAccepted; }

  /** Waits for a connection and, with an authkey, authenticates it (both ways). */
  accept(): Connection {
    const fd = this.#open();
    let accepted: [number, Address | null];
    try {
      accepted = sys.accept(fd, FOREVER)!;
    } catch (error) {
      throw explained(error, this.#address);
    }
    const conn = this.#accepted(accepted);
    return this.#authkey ? shake(conn, serverHandshake(this.#authkey)) : conn;
  }

  /** accept on the event loop; the timeout covers the wait and the handshake. */
  async acceptAsync({ timeout, signal }: WaitOptions = {}): Promise<Connection> {
    const deadline = deadlineAfter(waitSeconds(timeout));
    for (;;) {
      let accepted: [number, Address | null] | null;
      try {
        accepted = sys.accept(this.#open(), 0);
      } catch (error) {
        throw explained(error, this.#address);
      }
      if (accepted !== null) {
        const conn = this.#accepted(accepted);
        return this.#authkey ? shakeAsync(conn, serverHandshake(this.#authkey), { timeout: secondsUntil(deadline), signal }) : conn;
      }
      this.#open();
      if (!(await this.#handle!.readiness.wait(READABLE, deadline, signal))) throw new TimeoutError('timed out waiting for a connection');
    }
  }

  /** Closes the socket (idempotent) and removes its file. */
  close(): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    forgotten.unregister(this);
    try {
      handle.close(handleError('listener is closed'));
    } finally {
      if (this.#unlinkPath !== null) {
        try {
          unlinkSync(this.#unlinkPath);
        } catch (error) {
          if (!isOSError(error, 'ENOENT')) throw error;
        }
      }
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): number {
    if (this.#handle === null) throw handleError('listener is closed');
    return this.#handle.fd;
  }

  #accepted([fd, peer]: [number, Address | null]): Connection {
    this.#lastAccepted = peer;
    return new Connection(fd);
  }
}

export interface ClientOptions {
  family?: Family | null;
  authkey?: Uint8Array | null;
}

function clientSocket(address: Address, family: Family | null | undefined, authkey: unknown): { fd: number; key: Buffer | null } {
  const chosen = validateFamily(family ?? addressType(address));
  if (addressType(address) !== chosen) throw new ValueError(`address ${formatAddress(address)} is not an ${chosen} address`);
  const key = validateAuthkey(authkey);
  try {
    return { fd: sys.socket(address), key };
  } catch (error) {
    throw explained(error, address);
  }
}

/** Connects to a Listener and, with an authkey, authenticates (both ways): CPython's Client. */
export function Client(address: Address, { family = null, authkey = null }: ClientOptions = {}): Connection {
  const { fd, key } = clientSocket(address, family, authkey);
  try {
    sys.connect(fd, address, true);
  } catch (error) {
    sys.close(fd);
    throw explained(error, address);
  }
  const conn = new Connection(fd);
  return key ? shake(conn, clientHandshake(key)) : conn;
}

/** Client on the event loop; the timeout covers connecting and the handshake. */
export async function ClientAsync(address: Address, { family = null, authkey = null, timeout, signal }: ClientOptions & WaitOptions = {}): Promise<Connection> {
  const deadline = deadlineAfter(waitSeconds(timeout));
  const { fd, key } = clientSocket(address, family, authkey);
  const conn = new Connection(fd);
  try {
    for (let delay = 1; ; delay = Math.min(2 * delay, 100)) {
      try {
        if (!sys.connect(fd, address, false)) {
          if (!(await conn[waitReady](WRITABLE, deadline, signal))) throw new TimeoutError(`timed out connecting to ${formatAddress(address)}`);
          sys.connectResult(fd, address);
        }
        break;
      } catch (error) {
        // A full AF_UNIX backlog says EAGAIN and cannot be polled: try again shortly.
        if (!isOSError(error, 'EAGAIN')) throw explained(error, address);
        if (secondsUntil(deadline) === 0) throw new TimeoutError(`timed out connecting to ${formatAddress(address)}`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (signal?.aborted) throw abortError(signal);
      }
    }
  } catch (error) {
    conn.close();
    throw error;
  }
  return key ? shakeAsync(conn, clientHandshake(key), { timeout: secondsUntil(deadline), signal }) : conn;
}
