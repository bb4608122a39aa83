// NamedSemaphore: a POSIX named semaphore, opened by name from any process
// (C, Python's posix_ipc or multiprocessing, this package). Modelled on
// posix_ipc.Semaphore. acquire() blocks the calling thread; acquireAsync()
// waits without blocking the event loop: the addon's waiter thread for this
// handle takes tokens and hands them here, and they go to the waiters in the
// order they asked (a token nobody wants any more goes back to the kernel).
import { readFileSync } from 'node:fs';
import { abortError, errnoError, isOSError, withHint, type OSError } from '../errors.js';
import { binding } from '../native.js';
import { anonymousName, validateName } from '../names.js';
import { afterSeconds, deadlineAfter, secondsUntil, waitSeconds, type WaitOptions } from '../timeouts.js';

// The longest the addon's wait() blocks in one call.
const WAIT_SLICE_SECONDS = 0.25;

/** The largest value a semaphore can hold on Linux. */
export const SEM_VALUE_MAX = 2147483647;

interface NativeSemaphore {
  tryWait(): boolean;
  wait(seconds: number): boolean;
  post(): void;
  getValue(): number;
  request(onToken: (code: number) => boolean): void;
  cancel(): boolean;
  words(): ArrayBuffer | undefined;
  wakeOne(): void;
  close(): void;
}

interface SemaphoreBinding {
  Semaphore: {
    new (name: string, create: boolean, exclusive: boolean, mode: number, initialValue: number): NativeSemaphore;
    unlink(name: string): void;
  };
}

const native = binding<SemaphoreBinding>().Semaphore;

// glibc keeps a semaphore's value in the first 32-bit word of its sem_t and
// the number of sleepers in the next. Where that holds (checked once, on a
// scratch semaphore), an uncontended acquire or release is one atomic
// operation here, following glibc's own protocol, so C and CPython peers
// share the semaphore unchanged; a release that sees sleepers asks the addon
// to wake one. Anywhere else every call goes through sem_*.
const VALUE = 0;
const SLEEPERS = 1;
let glibcLayout: boolean | undefined;

function probeGlibcLayout(): boolean {
  if (process.arch !== 'x64' && process.arch !== 'arm64') return false;
  try {
    if (!readFileSync('/proc/self/maps', 'latin1').includes('/libc.so.6')) return false;
  } catch {
    return false;
  }
  const name = anonymousName();
  let scratch: NativeSemaphore;
  try {
    scratch = new native(name, true, true, 0o600, 5);
    native.unlink(name);
  } catch {
    return false;
  }
  try {
    const buffer = scratch.words();
    if (buffer === undefined) return false;
    const words = new Int32Array(buffer);
    const value = () => Atomics.load(words, VALUE);
    if (value() !== 5 || Atomics.load(words, SLEEPERS) !== 0) return false;
    scratch.post();
    if (value() !== 6) return false;
    Atomics.sub(words, VALUE, 2);
    return scratch.getValue() === 4 && scratch.tryWait() && value() === 3;
  } finally {
    scratch.close();
  }
}

function valueWords(handle: NativeSemaphore): Int32Array | null {
  glibcLayout ??= probeGlibcLayout();
  const buffer = glibcLayout ? handle.words() : undefined;
  return buffer === undefined ? null : new Int32Array(buffer);
}

export interface NamedSemaphoreOptions {
  /** Create the semaphore if it does not exist (default false: open an existing one). */
  create?: boolean;
  /** With create: fail with EEXIST if it exists already. */
  exclusive?: boolean;
  /** Permission bits of a new semaphore (default 0o600). */
  mode?: number;
  /** Value of a new semaphore (default 0; ignored when it exists). */
  initialValue?: number;
}

interface Waiter {
  settle(acquired: boolean | Error): void;
}

/** The hint an OS error from a semaphore gets: what happened and what to do. */
function explain(error: unknown, name: string, mode?: number): unknown {
  if (!isOSError(error)) return error;
  const hints: Record<string, string> = {
    ENOENT: `no semaphore named ${name} exists: create it with { create: true }`,
    EEXIST: `a semaphore named ${name} already exists: open it without { exclusive: true }, or unlink it first`,
    EACCES: `permission denied for semaphore ${name}: it belongs to another user or its mode${mode === undefined ? '' : ` (0o${mode.toString(8)} asked)`} does not allow this user`,
    EMFILE: `too many open files while opening semaphore ${name}: close semaphores no longer used (ulimit -n)`,
    ENFILE: `the system's open file table is full while opening semaphore ${name}: close semaphores no longer used`,
    EBADF: `semaphore ${name} is closed`,
    EOVERFLOW: `semaphore ${name} is at its maximum value (SEM_VALUE_MAX = ${SEM_VALUE_MAX}): release() was called too often`,
    ENOMEM: `out of memory mapping semaphore ${name}`,
    ENOSPC: `no space left in /dev/shm for semaphore ${name}`,
  };
  const hint = hints[error.code];
  return hint === undefined ? error : withHint(error, hint);
}

export class NamedSemaphore implements Disposable, AsyncDisposable {
  readonly name: string;
  #handle: NativeSemaphore | null;
  // The sem_t's value and sleeper words where the fast path is safe, else null.
  #words: Int32Array | null = null;
  // Waiters of acquireAsync, oldest first.
  readonly #waiters = new Set<Waiter>();
  // Tokens on their way here for waiters that have left (the waiter thread had
  // already taken them when the waiter timed out or was aborted).
  #tokensOwed = 0;
  readonly #onToken = (code: number): boolean => this.#deliver(code);

  constructor(name: string, options: NamedSemaphoreOptions = {}) {
    this.name = validateName(name);
    const { create = false, exclusive = false, mode = 0o600, initialValue = 0 } = options;
    if (exclusive && !create) throw new TypeError('exclusive: true needs create: true (exclusive means "create a new one or fail")');
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new RangeError(`mode must be an integer between 0 and 0o7777, not ${String(mode)}`);
    if (!Number.isInteger(initialValue) || initialValue < 0 || initialValue > SEM_VALUE_MAX) {
      throw new RangeError(`initialValue must be an integer between 0 and ${SEM_VALUE_MAX}, not ${String(initialValue)}`);
    }
    try {
      this.#handle = new native(this.name, create, exclusive, mode, initialValue);
    } catch (error) {
      throw explain(error, this.name, mode);
    }
    this.#words = valueWords(this.#handle);
  }

  /** Unlinks the semaphore named `name`; open handles keep working. */
  static unlink(name: string): void {
    validateName(name);
    try {
      native.unlink(name);
    } catch (error) {
      throw explain(error, name);
    }
  }

  get closed(): boolean {
    return this.#handle === null;
  }

  /** The current value (the number of acquires that would succeed at once). */
  get value(): number {
    const handle = this.#open();
    try {
      return handle.getValue();
    } catch (error) {
      throw explain(error, this.name);
    }
  }

  /**
   * Takes one token, blocking this thread: `timeout` in seconds,
   * null/undefined waits forever, 0 or less only tries. False on timeout.
   */
  acquire(timeout?: number | null): boolean {
    const handle = this.#open();
    const seconds = waitSeconds(timeout);
    const words = this.#words;
    if (words !== null) {
      const value = Atomics.load(words, VALUE);
      if (value > 0 && Atomics.compareExchange(words, VALUE, value, value - 1) === value) return true;
    }
    try {
      if (seconds === 0) return handle.tryWait();
      // The addon blocks for a slice at most; a longer wait is a loop of slices.
      const deadline = deadlineAfter(seconds);
      for (let left = seconds; ; left = secondsUntil(deadline)) {
        if (handle.wait(Math.min(left, WAIT_SLICE_SECONDS))) return true;
        if (left <= WAIT_SLICE_SECONDS) return false;
      }
    } catch (error) {
      throw explain(error, this.name);
    }
  }

  /** Takes one token without blocking the event loop; resolves false on timeout. */
  acquireAsync(options: WaitOptions = {}): Promise<boolean> {
    const { signal } = options;
    let seconds: number;
    try {
      seconds = waitSeconds(options.timeout);
      if (signal?.aborted) throw abortError(signal);
      // Waiters queued earlier come first.
      if (this.#waiters.size === 0 && this.acquire(0)) return Promise.resolve(true);
    } catch (error) {
      return Promise.reject(error);
    }
    if (seconds === 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      const onAbort = () => leave(abortError(signal!));
      const cancelTimer = seconds === Infinity ? undefined : afterSeconds(seconds, () => leave(false));
      const waiter: Waiter = {
        settle: (acquired) => {
          cancelTimer?.();
          signal?.removeEventListener('abort', onAbort);
          if (acquired instanceof Error) reject(acquired);
          else resolve(acquired);
        },
      };
      // A waiter leaving before its token came: want one token less.
      const leave = (outcome: boolean | Error) => {
        if (!this.#waiters.delete(waiter)) return;
        if (this.#handle !== null && !this.#handle.cancel()) this.#tokensOwed++;
        waiter.settle(outcome);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      if (this.#tokensOwed > 0) this.#tokensOwed--;
      else this.#handle!.request(this.#onToken);
    });
  }

  /** Gives one token back (sem_post). */
  release(): void {
    const handle = this.#open();
    const words = this.#words;
    if (words !== null) {
      const value = Atomics.load(words, VALUE);
      if (value >= 0 && value < SEM_VALUE_MAX && Atomics.compareExchange(words, VALUE, value, value + 1) === value) {
        // As glibc's sem_post: sleepers registered before the raise are woken.
        if (Atomics.load(words, SLEEPERS) !== 0) handle.wakeOne();
        return;
      }
    }
    try {
      handle.post();
    } catch (error) {
      throw explain(error, this.name);
    }
  }

  /**
   * Closes this handle (not the semaphore: other handles and processes keep
   * it). Pending acquireAsync calls reject. Idempotent.
   */
  close(): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    this.#words = null;
    handle.close();
    const error = explain(errnoError(9 /* EBADF */, 'sem_timedwait', this.name), this.name) as OSError;
    for (const waiter of this.#waiters) waiter.settle(error);
    this.#waiters.clear();
  }

  /** Removes the name; this handle and others stay usable until closed. */
  unlink(): void {
    NamedSemaphore.unlink(this.name);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #open(): NativeSemaphore {
    if (this.#handle === null) throw explain(errnoError(9 /* EBADF */, 'sem_t', this.name), this.name);
    return this.#handle;
  }

  // A token (code 0) from the waiter thread, or -errno when waiting failed.
  #deliver(code: number): boolean {
    if (code < 0) {
      const error = explain(errnoError(-code, 'sem_timedwait', this.name), this.name) as Error;
      for (const waiter of this.#waiters) waiter.settle(error);
      this.#waiters.clear();
      this.#tokensOwed = 0;
      return false;
    }
    const oldest = this.#waiters.values().next();
    if (oldest.done) {
      this.#tokensOwed--;
      return false;
    }
    this.#waiters.delete(oldest.value);
    oldest.value.settle(true);
    return true;
  }
}
