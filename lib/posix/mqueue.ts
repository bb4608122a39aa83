// MessageQueue: a POSIX message queue by name, as Python's posix_ipc offers
// it. The synchronous send/receive wait in the kernel (one system call, the
// descriptor being blocking); the async ones only try, and wait on the event
// loop (FdPoller), watching for readability while receivers wait and for
// writability only while a message waits to be sent, so an idle queue costs
// nothing. Waiters are served first come, first served; a wake-up that finds
// nothing (another process was faster) simply waits again.
import { constants as osConstants } from 'node:os';
import { ValueError, abortError, errnoError, isOSError, withHint, type OSError } from '../errors.js';
import { validateName } from '../names.js';
import { binding, READABLE, WRITABLE, type FdPoller, type PollerBinding } from '../native.js';
import { afterSeconds, waitSeconds, type WaitOptions } from '../timeouts.js';
import { explainOpenError, mqueueSetting } from './limits.js';

export interface QueueAttributes {
  maxMessages: number;
  maxMessageSize: number;
  currentMessages: number;
}

/** The addon's message queue functions (native/mqueue.cc). */
export interface MqueueBinding extends PollerBinding {
  mqOpen(name: string, flags: number, mode: number, maxMessages: number, maxMessageSize: number): number;
  mqClose(fd: number): void;
  mqUnlink(name: string): void;
  mqGetattr(fd: number): QueueAttributes;
  /** True when sent; false when the queue stayed full for `timeout` seconds (0: try once; Infinity: forever). */
  mqSend(fd: number, bytes: BytesLike, priority: number, timeout?: number): boolean;
  /** The message's length (its bytes at the start of `buffer`, its priority in priority[0]); -1 when it stayed empty. */
  mqReceive(fd: number, buffer: Uint8Array, timeout?: number, priority?: Uint32Array): number;
  mqConstants: { O_RDONLY: number; O_WRONLY: number; O_RDWR: number; O_CREAT: number; O_EXCL: number; MQ_PRIO_MAX: number };
}

type BytesLike = ArrayBufferView | ArrayBuffer;
/** What send() accepts: bytes, or a string sent as UTF-8. */
export type MessageData = BytesLike | string;

export interface MessageQueueOptions {
  /** Create the queue if it does not exist (default false: open an existing one). */
  create?: boolean;
  /** With create: fail with EEXIST if it exists. */
  exclusive?: boolean;
  /** Permission bits when creating (default 0o600). */
  mode?: number;
  /** Capacity when creating (default: /proc/sys/fs/mqueue/msg_default). */
  maxMessages?: number;
  /** Largest message when creating (default: /proc/sys/fs/mqueue/msgsize_default). */
  maxMessageSize?: number;
  /** Open for receiving (default true). */
  read?: boolean;
  /** Open for sending (default true). */
  write?: boolean;
}

export interface SendOptions {
  /** 0 (default) to MQ_PRIO_MAX - 1 (32767); higher priorities are received first. */
  priority?: number;
  /** Seconds to wait while the queue is full: null/undefined forever, 0 not at all. */
  timeout?: number | null;
}

export interface Message {
  data: Buffer;
  priority: number;
}

const native = binding<MqueueBinding>();
const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, MQ_PRIO_MAX } = native.mqConstants;
/** An OSError for a failure lib/ detects itself, with its explanation. */
function osError(code: 'EBADF' | 'EAGAIN' | 'ETIMEDOUT' | 'EMSGSIZE', message: string, syscall: string, name: string): OSError {
  return withHint(errnoError(osConstants.errno[code], syscall, name), message);
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
  cancelTimer?: () => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}
interface SendWaiter extends Waiter<void> {
  data: Uint8Array | ArrayBuffer;
  priority: number;
}

function copyBytes(data: BytesLike): Uint8Array | ArrayBuffer {
  return data instanceof ArrayBuffer ? data.slice(0) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
}

export class MessageQueue implements Disposable, AsyncDisposable {
  readonly name: string;
  /** The queue's capacity in messages (the kernel's, read back after opening). */
  readonly maxMessages: number;
  /** The largest message the queue takes, in bytes. */
  readonly maxMessageSize: number;
  readonly readable: boolean;
  readonly writable: boolean;
  #fd: number;
  #scratch: Buffer;
  #priority = new Uint32Array(1);
  #poller: FdPoller | null = null;
  #watching = 0;
  #receivers = new Set<Waiter<Message>>();
  #senders = new Set<SendWaiter>();

  constructor(name: string, options: MessageQueueOptions = {}) {
    this.name = validateName(name);
    const { create = false, exclusive = false, mode = 0o600, read = true, write = true } = options;
    if (!read && !write) throw new ValueError('at least one of read or write must be true');
    if (exclusive && !create) throw new ValueError('exclusive: true needs create: true (exclusive means "create, and fail if it exists")');
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new RangeError(`mode must be an integer between 0 and 0o7777, not ${String(mode)}`);
    const maxMessages = create ? positiveInteger(options.maxMessages ?? mqueueSetting('msg_default'), 'maxMessages') : 0;
    const maxMessageSize = create ? positiveInteger(options.maxMessageSize ?? mqueueSetting('msgsize_default'), 'maxMessageSize') : 0;
    const flags = (read && write ? O_RDWR : read ? O_RDONLY : O_WRONLY) | (create ? O_CREAT : 0) | (exclusive ? O_EXCL : 0);
    try {
      this.#fd = native.mqOpen(this.name, flags, mode, maxMessages, maxMessageSize);
    } catch (error) {
      if (!isOSError(error)) throw error;
      throw explainOpenError(error, {
        name: this.name, create, maxMessages, maxMessageSize,
        access: read && write ? 'reading and writing' : read ? 'reading' : 'writing',
        inspect: inspectQueue,
      });
    }
    const attributes = native.mqGetattr(this.#fd);
    this.maxMessages = attributes.maxMessages;
    this.maxMessageSize = attributes.maxMessageSize;
    this.readable = read;
    this.writable = write;
    this.#scratch = Buffer.allocUnsafeSlow(read ? this.maxMessageSize : 0);
  }

  /** Removes the queue's name; processes that have it open keep using it until they close it. */
  static unlink(name: string): void {
    validateName(name);
    try {
      native.mqUnlink(name);
    } catch (error) {
      if (isOSError(error, 'ENOENT')) throw withHint(error, `cannot unlink message queue '${name}': no message queue has this name`);
      if (isOSError(error, 'EACCES')) throw withHint(error, `cannot unlink message queue '${name}': permission denied (only its owner or root may)`);
      throw error;
    }
  }

  /** The number of messages in the queue now. */
  get currentMessages(): number {
    return native.mqGetattr(this.#open('mq_getattr')).currentMessages;
  }

  get closed(): boolean {
    return this.#fd === -1;
  }

  /** The queue's descriptor (a file descriptor on Linux). */
  fileno(): number {
    return this.#open('fileno');
  }

  /**
   * Sends `data`, waiting while the queue is full: forever by default, up to
   * `timeout` seconds (then ETIMEDOUT), or not at all with timeout 0 (EAGAIN).
   */
  send(data: MessageData, options: SendOptions = {}): void {
    const bytes = this.#checkSend(data, options.priority);
    const seconds = waitSeconds(options.timeout);
    if (!native.mqSend(this.#fd, bytes, options.priority ?? 0, seconds)) throw this.#notReady('send', seconds);
  }

  /**
   * Receives the oldest message of the highest priority, waiting while the
   * queue is empty: forever by default, up to `timeout` seconds (then
   * ETIMEDOUT), or not at all with timeout 0 (EAGAIN).
   */
  receive(options: { timeout?: number | null } = {}): Message {
    const fd = this.#checkReceive();
    const seconds = waitSeconds(options.timeout);
    const length = native.mqReceive(fd, this.#scratch, seconds, this.#priority);
    if (length < 0) throw this.#notReady('receive', seconds);
    return this.#message(length);
  }

  /** send() without blocking the event loop; { timeout, signal } as receiveAsync. */
  sendAsync(data: MessageData, options: SendOptions & { signal?: AbortSignal } = {}): Promise<void> {
    try {
      const bytes = this.#checkSend(data, options.priority);
      const priority = options.priority ?? 0;
      const seconds = waitSeconds(options.timeout);
      if (options.signal?.aborted) return Promise.reject(abortError(options.signal));
      if ((this.#senders.size === 0 || seconds === 0) && native.mqSend(this.#fd, bytes, priority, 0)) return Promise.resolve();
      if (seconds === 0) return Promise.reject(this.#notReady('send', 0));
      return new Promise<void>((resolve, reject) => {
        this.#enqueue(this.#senders, { resolve, reject, data: copyBytes(bytes), priority }, seconds, options.signal, 'send');
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * receive() without blocking the event loop. Rejects with ETIMEDOUT after
   * `timeout` seconds, EAGAIN at once with timeout 0 and an empty queue, an
   * AbortError when `signal` aborts, EBADF when the queue is closed meanwhile.
   */
  receiveAsync(options: WaitOptions = {}): Promise<Message> {
    try {
      const fd = this.#checkReceive();
      const seconds = waitSeconds(options.timeout);
      if (options.signal?.aborted) return Promise.reject(abortError(options.signal));
      if (this.#receivers.size === 0 || seconds === 0) {
        const length = native.mqReceive(fd, this.#scratch, 0, this.#priority);
        if (length >= 0) return Promise.resolve(this.#message(length));
      }
      if (seconds === 0) return Promise.reject(this.#notReady('receive', 0));
      return new Promise<Message>((resolve, reject) => {
        this.#enqueue(this.#receivers, { resolve, reject }, seconds, options.signal, 'receive');
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Closes this descriptor (idempotent); pending async calls reject with EBADF. The queue itself stays until unlinked. */
  close(): void {
    if (this.#fd === -1) return;
    const closed = osError('EBADF', `message queue '${this.name}' was closed while waiting`, 'mq_close', this.name);
    for (const waiter of [...this.#receivers, ...this.#senders]) this.#settle(waiter).reject(closed);
    this.#poller?.close();
    this.#poller = null;
    const fd = this.#fd;
    this.#fd = -1;
    native.mqClose(fd);
  }

  /** Removes the queue's name (see MessageQueue.unlink). */
  unlink(): void {
    MessageQueue.unlink(this.name);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #open(syscall: string): number {
    if (this.#fd === -1) throw osError('EBADF', `message queue '${this.name}' is closed`, syscall, this.name);
    return this.#fd;
  }

  #checkSend(data: MessageData, priority: number | undefined): BytesLike {
    this.#open('mq_send');
    if (!this.writable) throw osError('EBADF', `message queue '${this.name}' was opened with write: false and cannot send`, 'mq_send', this.name);
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (!ArrayBuffer.isView(bytes) && !(bytes instanceof ArrayBuffer)) {
      throw new TypeError(`a message must be a Buffer, TypedArray, DataView, ArrayBuffer or string, not ${bytes === null ? 'null' : typeof bytes}`);
    }
    if (priority !== undefined && (!Number.isInteger(priority) || priority < 0 || priority >= MQ_PRIO_MAX)) {
      throw new RangeError(`priority must be an integer from 0 to ${MQ_PRIO_MAX - 1}, not ${String(priority)}`);
    }
    if (bytes.byteLength > this.maxMessageSize) {
      throw osError('EMSGSIZE', `a message of ${bytes.byteLength} bytes is longer than the ${this.maxMessageSize} bytes message queue '${this.name}' takes (its maxMessageSize)`, 'mq_send', this.name);
    }
    return bytes;
  }

  #checkReceive(): number {
    const fd = this.#open('mq_receive');
    if (!this.readable) throw osError('EBADF', `message queue '${this.name}' was opened with read: false and cannot receive`, 'mq_receive', this.name);
    return fd;
  }

  #message(length: number): Message {
    const data = Buffer.allocUnsafe(length);
    this.#scratch.copy(data, 0, 0, length);
    return { data, priority: this.#priority[0]! };
  }

  #notReady(operation: 'send' | 'receive', seconds: number): OSError {
    const state = operation === 'send' ? `full (${this.maxMessages} messages)` : 'empty';
    const syscall = operation === 'send' ? 'mq_send' : 'mq_receive';
    if (seconds === 0) return osError('EAGAIN', `message queue '${this.name}' is ${state}`, syscall, this.name);
    return osError('ETIMEDOUT', `timed out after ${seconds} s: message queue '${this.name}' stayed ${state}`, syscall, this.name);
  }

  #enqueue<W extends Waiter<Message> | SendWaiter>(waiters: Set<W>, waiter: W, seconds: number, signal: AbortSignal | undefined, operation: 'send' | 'receive'): void {
    waiters.add(waiter);
    if (seconds !== Infinity) waiter.cancelTimer = afterSeconds(seconds, () => this.#settle(waiter).reject(this.#notReady(operation, seconds)));
    if (signal) {
      waiter.signal = signal;
      waiter.onAbort = () => this.#settle(waiter).reject(abortError(signal));
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    }
    this.#watch();
  }

  /** Removes a waiter from its queue, stops its timer and abort listener, and returns it to be resolved or rejected. */
  #settle<W extends Waiter<Message> | SendWaiter>(waiter: W): W {
    if (!this.#receivers.delete(waiter as Waiter<Message>)) this.#senders.delete(waiter as SendWaiter);
    waiter.cancelTimer?.();
    if (waiter.onAbort) waiter.signal!.removeEventListener('abort', waiter.onAbort);
    this.#watch();
    return waiter;
  }

  /** Watches for what the waiters need: readable while receivers wait, writable while senders wait. */
  #watch(): void {
    const events = (this.#receivers.size > 0 ? READABLE : 0) | (this.#senders.size > 0 ? WRITABLE : 0);
    if (events === this.#watching || this.#fd === -1) return;
    this.#watching = events;
    if (events === 0) {
      this.#poller?.stop();
      return;
    }
    this.#poller ??= new native.FdPoller(this.#fd, (status, ready) => this.#onReady(status, ready));
    this.#poller.start(events);
  }

  #onReady(status: number, ready: number): void {
    try {
      if (status < 0) throw withHint(errnoError(-status, 'uv_poll', this.name), `waiting on message queue '${this.name}' failed`);
      if (ready & READABLE) {
        for (const waiter of this.#receivers) {
          const length = native.mqReceive(this.#fd, this.#scratch, 0, this.#priority);
          if (length < 0) break;
          this.#settle(waiter).resolve(this.#message(length));
        }
      }
      if (ready & WRITABLE) {
        for (const waiter of this.#senders) {
          if (!native.mqSend(this.#fd, waiter.data, waiter.priority, 0)) break;
          this.#settle(waiter).resolve();
        }
      }
    } catch (error) {
      for (const waiter of [...this.#receivers, ...this.#senders]) this.#settle(waiter).reject(error as Error);
    }
  }
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, not ${String(value)}`);
  return value;
}

/** An existing queue's size, for the EMFILE explanation; undefined if it cannot be opened. */
export function inspectQueue(name: string): { maxMessages: number; maxMessageSize: number } | undefined {
  try {
    const fd = native.mqOpen(name, O_RDONLY, 0, 0, 0);
    try {
      return native.mqGetattr(fd);
    } finally {
      native.mqClose(fd);
    }
  } catch {
    return undefined;
  }
}
