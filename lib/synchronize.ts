// Python's multiprocessing.synchronize across processes: Lock, RLock,
// Semaphore, BoundedSemaphore, Condition, Event, Barrier.
//
// Semaphore and BoundedSemaphore are a POSIX named semaphore and nothing else,
// so C and CPython peers (sem_open, posix_ipc) share them by name.
//
// Lock and RLock keep their state in one word of a small shared-memory
// segment (same name as their semaphore): 0 when free, else the holder's
// thread id (a process's pid for its main thread), plus a bit saying that
// someone may be sleeping. Taking a free lock is one compare-and-swap in
// JavaScript (no call into the addon); only contention goes to the kernel,
// where the named semaphore serves as the wake-up channel. Because the word
// names the holder, a waiter that has slept a while checks whether the
// holder is still alive and, if its process died (even by SIGKILL) or its
// Worker ended, takes the lock over in the same compare-and-swap and reports
// it (`ownerDied`, `deadOwner`).
//
// Condition follows CPython's algorithm (three semaphores). Event and Barrier
// keep their few integers in a shared-memory segment.
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { inspect } from 'node:util';
import { AssertionError, BrokenBarrierError, ValueError, abortError, errnoError, isOSError, withHint } from './errors.js';
import { anonymousName, validateName } from './names.js';
import { NamedSemaphore, SEM_VALUE_MAX } from './posix/semaphore.js';
import { SharedMemorySegment } from './posix/shm.js';
import { registerReconstructor } from './pickle/registry.js';
import { MODULE, reduceSymbol, type Reducible, type Reduction } from './reduction.js';
import { track, untrack } from './resource_tracker.js';
import { afterSeconds, deadlineAfter, secondsUntil, waitSeconds, type WaitOptions } from './timeouts.js';

export type { WaitOptions } from './timeouts.js';

export interface SyncOptions {
  /**
   * Share the object by this name ('/jobs'): opened if it exists, else
   * created; it stays until unlink(). Without a name the object is anonymous
   * and is removed when its creator closes it or exits.
   */
  name?: string;
  /** With name: create it when missing (default true); false only opens an existing one. */
  create?: boolean;
  /** With name: fail with EEXIST if it exists already. */
  exclusive?: boolean;
  /** Permission bits of a new object (default 0o600). */
  mode?: number;
}

/** What hold() and holdAsync() return: releases once, when disposed. */
export interface Held extends Disposable, AsyncDisposable {
  release(): void;
}

// How long a waiter sleeps before it looks at a Lock's holder again.
const OWNER_CHECK_SECONDS = 0.2;

/** A kernel object's name and whether this process creates it anonymously. */
function resolveName(options: SyncOptions): { name: string; anonymous: boolean } {
  if (options.name === undefined) return { name: anonymousName(), anonymous: true };
  return { name: validateName(options.name), anonymous: false };
}

function openOptions(options: SyncOptions, anonymous: boolean) {
  return {
    create: anonymous || (options.create ?? true),
    exclusive: anonymous || (options.exclusive ?? false),
    mode: options.mode ?? 0o600,
  };
}

/** CPython's checks on a semaphore's start value: EINVAL below 0, overflow above SEM_VALUE_MAX. */
function checkValue(value: number, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(`value must be an integer, not ${typeof value === 'number' ? value : typeof value}`);
  if (value < 0) throw errnoError(22 /* EINVAL */, 'sem_open', name);
  if (value > SEM_VALUE_MAX) throw new RangeError(`value ${value} is larger than SEM_VALUE_MAX (${SEM_VALUE_MAX})`);
  return value;
}

function held(lock: { release(): void }): Held {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    lock.release();
  };
  return { release, [Symbol.dispose]: release, [Symbol.asyncDispose]: async () => release() };
}

/** Opens (or creates, zero-filled) `count` shared integers named `name`. */
function openWords(name: string, count: number, open: { create: boolean; exclusive: boolean; mode: number }, anonymous: boolean) {
  const segment = new SharedMemorySegment(name, { ...open, size: count * 4 });
  if (anonymous) track('shm', name);
  return { segment, words: new Int32Array(segment.buffer.buffer, segment.buffer.byteOffset, count) };
}

/** The shared integers and the wake-up semaphore of a Lock, RLock or Event, both named `name`. */
function openWordsAndWake(name: string, count: number, options: SyncOptions, anonymous: boolean) {
  const open = openOptions(options, anonymous);
  const { segment, words } = openWords(name, count, open, anonymous);
  try {
    const wake = new NamedSemaphore(name, { ...open, initialValue: 0 });
    if (anonymous) track('semaphore', name);
    return { segment, words, wake };
  } catch (error) {
    segment.close();
    if (anonymous) removeSegment(name);
    throw error;
  }
}

function closedError(name: string): Error {
  return withHint(errnoError(9 /* EBADF */, 'sem_t', name), `${name} is closed`);
}

function unlinkQuietly(unlink: () => void): void {
  try {
    unlink();
  } catch (error) {
    if (!isOSError(error, 'ENOENT')) throw error;
  }
}

// Removing what an anonymous object's creator made (and the tracker would remove).
function removeSemaphore(name: string): void {
  unlinkQuietly(() => NamedSemaphore.unlink(name));
  untrack('semaphore', name);
}

function removeSegment(name: string): void {
  unlinkQuietly(() => SharedMemorySegment.unlink(name));
  untrack('shm', name);
}

/** Removes a semaphore and the shared memory of the same name. */
function removePair(name: string): void {
  removeSemaphore(name);
  removeSegment(name);
}

/**
 * This thread's kernel id (the pid in the main thread, another number in a
 * Worker): a Lock's word names its holder by it, so the death of a holding
 * Worker is seen as well as that of a holding process.
 */
const THREAD_ID = ((): number => {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/')[2]) || process.pid;
  } catch {
    return process.pid;
  }
})();

/** True when thread or process `id` has exited (a zombie counts as exited: it holds nothing). */
function holderGone(id: number): boolean {
  try {
    const stat = readFileSync(`/proc/${id}/stat`, 'latin1');
    const state = stat[stat.lastIndexOf(')') + 2];
    return state === 'Z' || state === 'X';
  } catch {
    // No /proc entry: gone, unless /proc hides other users' processes (hidepid).
  }
  try {
    process.kill(id, 0);
    return false;
  } catch (error) {
    return isOSError(error, 'ESRCH');
  }
}

abstract class SynchronizationObject implements Disposable, AsyncDisposable {
  readonly name: string;
  // The creator of an anonymous object removes it when it closes.
  protected readonly anonymous: boolean;

  protected constructor(name: string, anonymous: boolean) {
    this.name = name;
    this.anonymous = anonymous;
  }

  abstract close(): void;

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

// ---------------------------------------------------------------------------
// Semaphore, BoundedSemaphore: the named semaphore's value is the truth.

/** An object with acquire and release, and Python's `with` as hold(). */
abstract class AcquirableObject extends SynchronizationObject {
  abstract acquire(block?: boolean, timeout?: number | null): boolean;
  abstract acquireAsync(options?: WaitOptions): Promise<boolean>;
  abstract release(): void;

  /** using held = x.hold(): acquires now (waiting as long as it takes), releases when disposed. */
  hold(): Held {
    this.acquire();
    return held(this);
  }

  /** await using held = await x.holdAsync(): the same without blocking the event loop. */
  async holdAsync(options: { signal?: AbortSignal } = {}): Promise<Held> {
    await this.acquireAsync({ signal: options.signal });
    return held(this);
  }
}

export class Semaphore extends AcquirableObject implements Reducible {
  protected readonly sem: NamedSemaphore;

  constructor(value = 1, options: SyncOptions = {}) {
    const { name, anonymous } = resolveName(options);
    super(name, anonymous);
    this.sem = new NamedSemaphore(name, { ...openOptions(options, anonymous), initialValue: checkValue(value, name) });
    if (anonymous) track('semaphore', name);
  }

  /** Opens the semaphore `name` made elsewhere (by this package, C or Python). */
  static open(name: string): Semaphore {
    return new this(0, { name, create: false });
  }

  static unlink(name: string): void {
    NamedSemaphore.unlink(name);
  }

  /**
   * Takes one unit: blocks up to `timeout` seconds (null: forever); with
   * block = false only tries. False when it could not.
   */
  acquire(block = true, timeout: number | null = null): boolean {
    return this.sem.acquire(block ? timeout : 0);
  }

  acquireAsync(options: WaitOptions = {}): Promise<boolean> {
    return this.sem.acquireAsync(options);
  }

  release(): void {
    this.sem.release();
  }

  get_value(): number {
    return Math.max(0, this.sem.value);
  }

  get closed(): boolean {
    return this.sem.closed;
  }

  close(): void {
    if (this.closed) return;
    this.sem.close();
    if (this.anonymous) removeSemaphore(this.name);
  }

  unlink(): void {
    NamedSemaphore.unlink(this.name);
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'Semaphore', [this.name]];
  }

  [inspect.custom](): string {
    return `<Semaphore(value=${this.closed ? 'unknown' : this.get_value()})>`;
  }
}

export class BoundedSemaphore extends Semaphore {
  readonly maxvalue: number;

  constructor(value = 1, options: SyncOptions = {}) {
    super(value, options);
    this.maxvalue = value;
  }

  static override open(name: string, maxvalue = 1): BoundedSemaphore {
    return new this(maxvalue, { name, create: false });
  }

  /** ValueError above the start value (checked, then released: not atomic, as in CPython). */
  override release(): void {
    if (this.sem.value >= this.maxvalue) throw new ValueError('semaphore or lock released too many times');
    this.sem.release();
  }

  override [reduceSymbol](): Reduction {
    return [MODULE, 'BoundedSemaphore', [this.name, this.maxvalue]];
  }

  override [inspect.custom](): string {
    return `<BoundedSemaphore(value=${this.closed ? 'unknown' : this.get_value()}, maxvalue=${this.maxvalue})>`;
  }
}

// ---------------------------------------------------------------------------
// Lock, RLock: a state word in shared memory, the semaphore to sleep on.

const STATE = 0;
const WAITERS = 1 << 30;
const PID_MASK = WAITERS - 1;
const LOCK_WORDS = 1;

interface AsyncLockWaiter {
  settle(outcome: boolean | Error): void;
  deadline: number;
  stop: AbortController;
  done: boolean;
}

abstract class MutexBase extends AcquirableObject {
  readonly #segment: SharedMemorySegment;
  readonly #words: Int32Array;
  // The semaphore sleepers wait on; a release with WAITERS set posts it.
  readonly #wake: NamedSemaphore;
  readonly #tid = THREAD_ID;
  // Acquisitions by this handle not yet released (RLock: the recursion level).
  protected count = 0;
  readonly #asyncWaiters: AsyncLockWaiter[] = [];
  #serving = false;
  #deadOwner: number | null = null;

  constructor(options: SyncOptions = {}) {
    const { name, anonymous } = resolveName(options);
    super(name, anonymous);
    ({ segment: this.#segment, words: this.#words, wake: this.#wake } = openWordsAndWake(name, LOCK_WORDS, options, anonymous));
  }

  /** Opens the lock `name` made by another process. */
  static open<T extends MutexBase>(this: new (options: SyncOptions) => T, name: string): T {
    return new this({ name, create: false });
  }

  /** Removes both kernel objects of the lock named `name`. */
  static unlink(name: string): void {
    NamedSemaphore.unlink(name);
    unlinkQuietly(() => SharedMemorySegment.unlink(name));
  }

  /**
   * True when the last acquire by this handle took the lock over from a
   * process that died holding it: the data it guarded may be half-updated.
   */
  get ownerDied(): boolean {
    return this.#deadOwner !== null;
  }

  /** The thread id of that dead holder (its pid if it was a process's main thread), or null. */
  get deadOwner(): number | null {
    return this.#deadOwner;
  }

  /** The thread id recorded as holder, 0 when free. */
  protected get holderId(): number {
    return Atomics.load(this.#words, STATE) & PID_MASK;
  }

  // RLock: the owner acquiring again only counts.
  protected abstract reenter(): boolean;

  /**
   * Takes the lock: blocks up to `timeout` seconds (null: forever); with
   * block = false only tries. False when it could not.
   */
  acquire(block = true, timeout: number | null = null): boolean {
    if (this.reenter()) return true;
    if (!this.lockWord(waitSeconds(timeout, Boolean(block)))) return false;
    this.count++;
    return true;
  }

  async acquireAsync(options: WaitOptions = {}): Promise<boolean> {
    if (this.reenter()) return true;
    if (!(await this.lockWordAsync(waitSeconds(options.timeout), options.signal))) return false;
    this.count++;
    return true;
  }

  /** Takes the word: a compare-and-swap when free, else sleeps on the semaphore. */
  private lockWord(seconds: number): boolean {
    this.#checkOpen();
    if (Atomics.compareExchange(this.#words, STATE, 0, this.#tid) === 0) return this.#took(null);
    const deadline = deadlineAfter(seconds);
    let slept = false;
    let checkOwner = seconds === 0;
    for (;;) {
      const attempt = this.#attempt(slept, checkOwner);
      if (attempt === true) return true;
      const left = secondsUntil(deadline);
      if (left <= 0) return false;
      if (!this.#announceSleeper(attempt)) continue;
      slept = true;
      checkOwner = !this.#wake.acquire(Math.min(left, OWNER_CHECK_SECONDS));
    }
  }

  private lockWordAsync(seconds: number, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      this.#checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.#asyncWaiters.length === 0 && this.#attempt(false, seconds === 0) === true) return Promise.resolve(true);
    if (seconds === 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      const onAbort = () => leave(abortError(signal!));
      const cancelTimer = seconds === Infinity ? undefined : afterSeconds(seconds, () => leave(false));
      const waiter: AsyncLockWaiter = {
        deadline: deadlineAfter(seconds),
        stop: new AbortController(),
        done: false,
        settle: (outcome) => {
          if (waiter.done) return;
          waiter.done = true;
          cancelTimer?.();
          signal?.removeEventListener('abort', onAbort);
          if (outcome instanceof Error) reject(outcome);
          else resolve(outcome);
        },
      };
      const leave = (outcome: boolean | Error) => {
        const index = this.#asyncWaiters.indexOf(waiter);
        if (index !== -1) this.#asyncWaiters.splice(index, 1);
        waiter.settle(outcome);
        waiter.stop.abort();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#asyncWaiters.push(waiter);
      if (!this.#serving) void this.#serveAsyncWaiters();
    });
  }

  // Only the oldest async waiter of this handle competes for the lock; the
  // others wait their turn here, in order.
  async #serveAsyncWaiters(): Promise<void> {
    this.#serving = true;
    while (this.#asyncWaiters.length > 0) {
      const waiter = this.#asyncWaiters[0]!;
      let slept = false;
      let checkOwner = false;
      for (;;) {
        if (waiter.done) break;
        if (this.closed) {
          waiter.settle(closedError(this.name));
          break;
        }
        const attempt = this.#attempt(slept, checkOwner);
        if (attempt === true) {
          waiter.settle(true);
          break;
        }
        const left = secondsUntil(waiter.deadline);
        if (left <= 0) {
          waiter.settle(false);
          break;
        }
        if (!this.#announceSleeper(attempt)) continue;
        slept = true;
        let woken: boolean;
        try {
          woken = await this.#wake.acquireAsync({ timeout: Math.min(left, OWNER_CHECK_SECONDS), signal: waiter.stop.signal });
        } catch (error) {
          // The waiter left, or the handle closed (both seen at the top); anything else is the waiter's error.
          if (!waiter.done && !this.closed) waiter.settle(error as Error);
          continue;
        }
        // A wake-up that came for a waiter who left meanwhile belongs to another sleeper.
        if (woken && waiter.done && !this.closed) this.#wake.release();
        checkOwner = !woken;
      }
      if (this.#asyncWaiters[0] === waiter) this.#asyncWaiters.shift();
    }
    this.#serving = false;
  }

  // One try: true when taken, else the state seen. After sleeping, the taker
  // keeps WAITERS set, since it cannot know it was the only sleeper.
  #attempt(slept: boolean, checkOwner: boolean): true | number {
    const mine = this.#tid | (slept ? WAITERS : 0);
    const state = Atomics.load(this.#words, STATE);
    if (state === 0) {
      const seen = Atomics.compareExchange(this.#words, STATE, 0, mine);
      return seen === 0 ? this.#took(null) : seen;
    }
    const holder = state & PID_MASK;
    if (checkOwner && holder !== this.#tid && holderGone(holder)) {
      const seen = Atomics.compareExchange(this.#words, STATE, state, mine | (state & WAITERS));
      return seen === state ? this.#took(holder) : seen;
    }
    return state;
  }

  // Sets WAITERS so that the holder's release posts the semaphore; false if the state changed meanwhile.
  #announceSleeper(state: number): boolean {
    return (state & WAITERS) !== 0 || Atomics.compareExchange(this.#words, STATE, state, state | WAITERS) === state;
  }

  #took(deadOwner: number | null): true {
    this.#deadOwner = deadOwner;
    return true;
  }

  /** Frees the word; false if it was free already. */
  protected unlockWord(): boolean {
    this.#checkOpen();
    const state = Atomics.exchange(this.#words, STATE, 0);
    if (state & WAITERS) this.#wake.release();
    return state !== 0;
  }

  get closed(): boolean {
    return this.#wake.closed;
  }

  #checkOpen(): void {
    if (this.closed) throw closedError(this.name);
  }

  close(): void {
    if (this.#wake.closed) return;
    this.#wake.close();
    this.#segment.close();
    for (const waiter of this.#asyncWaiters.splice(0)) {
      waiter.settle(closedError(this.name));
      waiter.stop.abort();
    }
    if (this.anonymous) removePair(this.name);
  }

  unlink(): void {
    MutexBase.unlink(this.name);
  }

  /** CPython's SemLock._is_mine(): held through this handle. */
  _is_mine(): boolean {
    return this.count > 0;
  }

  /** CPython's SemLock._count(): this handle's recursion level. */
  _count(): number {
    return Math.max(0, this.count);
  }

  protected ownerText(): string {
    if (this.closed) return 'None';
    if (this.count > 0) return 'MainProcess';
    const holder = this.holderId;
    if (holder === 0) return 'None';
    return existsSync(`/proc/self/task/${holder}`) ? 'SomeOtherThread' : 'SomeOtherProcess';
  }
}

/**
 * A non-recursive lock shared by processes. As in CPython any process may
 * release it; releasing it when free throws ValueError.
 */
export class Lock extends MutexBase implements Reducible {
  protected reenter(): boolean {
    return false;
  }

  release(): void {
    if (!this.unlockWord()) throw new ValueError('semaphore or lock released too many times');
    this.count--;
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'Lock', [this.name]];
  }

  [inspect.custom](): string {
    return `<Lock(owner=${this.ownerText()})>`;
  }
}

/**
 * A recursive lock: its owner (the handle's thread, in its process) may
 * acquire it again; each acquire needs a release. Only the owner releases.
 */
export class RLock extends MutexBase implements Reducible {
  protected reenter(): boolean {
    if (this.count <= 0) return false;
    this.count++;
    return true;
  }

  release(): void {
    if (this.count <= 0) throw new AssertionError('attempt to release recursive lock not owned by thread');
    if (--this.count === 0) this.unlockWord();
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'RLock', [this.name]];
  }

  [inspect.custom](): string {
    const owner = this.ownerText();
    return `<RLock(${owner}, ${owner === 'None' ? 0 : this.count > 0 ? this.count : 'unknown'})>`;
  }
}

// ---------------------------------------------------------------------------
// Condition: CPython's algorithm on three semaphores.

// Async sleepers of each condition in this thread. A synchronous notify waits
// until each sleeper it woke has said so; a sleeper of this thread could not
// say so while notify blocks the thread, so notify refuses instead.
const asyncSleepers = new Map<string, number>();

// The suffixes of a condition's three semaphores.
const CONDITION_PARTS = ['sleeping', 'woken', 'wait'];

export class Condition extends SynchronizationObject implements Reducible {
  readonly #lock: Lock | RLock;
  readonly #ownsLock: boolean;
  readonly #sleeping: Semaphore;
  readonly #woken: Semaphore;
  readonly #waitSemaphore: Semaphore;

  /** lock defaults to a new RLock, as in CPython. */
  constructor(lock?: Lock | RLock | null, options: SyncOptions = {}) {
    const { name, anonymous } = resolveName(options);
    super(name, anonymous);
    this.#ownsLock = lock === undefined || lock === null;
    this.#lock = lock ?? new RLock();
    const semaphores: Semaphore[] = [];
    try {
      for (const part of CONDITION_PARTS) {
        semaphores.push(new Semaphore(0, { ...options, name: `${name}.${part}`, exclusive: anonymous || options.exclusive }));
        if (anonymous) track('semaphore', `${name}.${part}`);
      }
    } catch (error) {
      for (const semaphore of semaphores) semaphore.close();
      if (this.#ownsLock) this.#lock.close();
      if (anonymous) Condition.#remove(name);
      throw error;
    }
    [this.#sleeping, this.#woken, this.#waitSemaphore] = semaphores as [Semaphore, Semaphore, Semaphore];
  }

  /** Reopens a condition made elsewhere (how a child process receives one). */
  static open(lock: Lock | RLock, name: string): Condition {
    return new this(lock, { name, create: false });
  }

  get lock(): Lock | RLock {
    return this.#lock;
  }

  acquire(block = true, timeout: number | null = null): boolean {
    return this.#lock.acquire(block, timeout);
  }

  acquireAsync(options: WaitOptions = {}): Promise<boolean> {
    return this.#lock.acquireAsync(options);
  }

  release(): void {
    this.#lock.release();
  }

  hold(): Held {
    return this.#lock.hold();
  }

  holdAsync(options: { signal?: AbortSignal } = {}): Promise<Held> {
    return this.#lock.holdAsync(options);
  }

  /**
   * Releases the lock (all recursion levels), sleeps until notified or
   * `timeout` seconds, re-acquires it. True if notified.
   */
  wait(timeout: number | null = null): boolean {
    const count = this.#enterWait();
    try {
      return this.#waitSemaphore.acquire(true, timeout);
    } finally {
      this.#woken.release();
      for (let i = 0; i < count; i++) this.#lock.acquire();
    }
  }

  async waitAsync(options: WaitOptions = {}): Promise<boolean> {
    const count = this.#enterWait();
    asyncSleepers.set(this.name, (asyncSleepers.get(this.name) ?? 0) + 1);
    try {
      return await this.#waitSemaphore.acquireAsync(options);
    } finally {
      const left = asyncSleepers.get(this.name)! - 1;
      if (left === 0) asyncSleepers.delete(this.name);
      else asyncSleepers.set(this.name, left);
      this.#woken.release();
      await this.#lock.acquireAsync();
      for (let i = 1; i < count; i++) this.#lock.acquire();
    }
  }

  /** Waits until predicate() is truthy (or the timeout); returns its last value. */
  wait_for<T>(predicate: () => T, timeout: number | null = null): T {
    let result = predicate();
    const deadline = deadlineAfter(waitSeconds(timeout));
    while (!result) {
      const left = secondsUntil(deadline);
      if (left <= 0) break;
      this.wait(left === Infinity ? null : left);
      result = predicate();
    }
    return result;
  }

  async wait_forAsync<T>(predicate: () => T | Promise<T>, options: WaitOptions = {}): Promise<T> {
    let result = await predicate();
    const deadline = deadlineAfter(waitSeconds(options.timeout));
    while (!result) {
      const left = secondsUntil(deadline);
      if (left <= 0) break;
      await this.waitAsync({ timeout: left === Infinity ? null : left, signal: options.signal });
      result = await predicate();
    }
    return result;
  }

  /** Wakes up to n sleepers, and returns once each has woken. */
  notify(n = 1): void {
    this.#checkOwned();
    if (asyncSleepers.has(this.name)) {
      throw new Error(`notify() would wait for a waitAsync() of this thread that cannot run while notify() blocks it: use notifyAsync() (or notify_allAsync()) here`);
    }
    const sleepers = this.#wakeSleepers(n);
    if (sleepers === 0) return;
    for (let i = 0; i < sleepers; i++) this.#woken.acquire();
    this.#rezero();
  }

  async notifyAsync(n = 1): Promise<void> {
    this.#checkOwned();
    const sleepers = this.#wakeSleepers(n);
    if (sleepers === 0) return;
    for (let i = 0; i < sleepers; i++) await this.#woken.acquireAsync();
    this.#rezero();
  }

  notify_all(): void {
    this.notify(Infinity);
  }

  notify_allAsync(): Promise<void> {
    return this.notifyAsync(Infinity);
  }

  /** Closes this handle's semaphores (and the lock, if this condition made it). */
  close(): void {
    for (const semaphore of [this.#sleeping, this.#woken, this.#waitSemaphore]) semaphore.close();
    if (this.#ownsLock) this.#lock.close();
    if (this.anonymous) Condition.#remove(this.name);
  }

  /** Removes the condition's semaphores (not its lock, which has its own name). */
  unlink(): void {
    Condition.unlink(this.name);
  }

  static unlink(name: string): void {
    for (const part of CONDITION_PARTS) NamedSemaphore.unlink(`${name}.${part}`);
  }

  static #remove(name: string): void {
    for (const part of CONDITION_PARTS) removeSemaphore(`${name}.${part}`);
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'Condition', [this.#lock, this.name]];
  }

  [inspect.custom](): string {
    let sleeping = 'unknown';
    try {
      sleeping = String(this.#sleeping.get_value() - this.#woken.get_value());
    } catch { /* closed */ }
    return `<Condition(${inspect(this.#lock)}, ${sleeping})>`;
  }

  #checkOwned(): void {
    if (!this.#lock._is_mine()) throw new AssertionError('lock is not owned');
  }

  // Registers as a sleeper and releases the lock fully; returns its recursion level.
  #enterWait(): number {
    if (!this.#lock._is_mine()) throw new AssertionError('must acquire() condition before using wait()');
    this.#sleeping.release();
    const count = this.#lock._count();
    for (let i = 0; i < count; i++) this.#lock.release();
    return count;
  }

  // Forgets sleepers that timed out since the last notify, then posts one
  // wake-up per sleeper, up to n. Returns how many.
  #wakeSleepers(n: number): number {
    while (this.#woken.acquire(false)) this.#sleeping.acquire(false);
    let sleepers = 0;
    while (sleepers < n && this.#sleeping.acquire(false)) {
      this.#waitSemaphore.release();
      sleepers++;
    }
    return sleepers;
  }

  // Takes back the wake-ups of sleepers that timed out instead of waking.
  #rezero(): void {
    while (this.#waitSemaphore.acquire(false));
  }
}

// ---------------------------------------------------------------------------
// Event: a flag, a generation count and a sleeper count in shared memory;
// set() posts one wake-up per sleeper. Nothing blocks in set() or clear().

const FLAG = 0;
const GENERATION = 1;
const SLEEPERS = 2;
const EVENT_WORDS = 3;

export class Event extends SynchronizationObject implements Reducible {
  readonly #segment: SharedMemorySegment;
  readonly #words: Int32Array;
  readonly #wake: NamedSemaphore;

  constructor(options: SyncOptions = {}) {
    const { name, anonymous } = resolveName(options);
    super(name, anonymous);
    ({ segment: this.#segment, words: this.#words, wake: this.#wake } = openWordsAndWake(name, EVENT_WORDS, options, anonymous));
  }

  static open(name: string): Event {
    return new this({ name, create: false });
  }

  is_set(): boolean {
    return Atomics.load(this.#live(), FLAG) === 1;
  }

  set(): void {
    const words = this.#live();
    Atomics.store(words, FLAG, 1);
    Atomics.add(words, GENERATION, 1);
    // Wake-ups still unclaimed from an earlier set() count towards the sleepers.
    const missing = Atomics.load(words, SLEEPERS) - Math.max(0, this.#wake.value);
    for (let i = 0; i < missing; i++) this.#wake.release();
  }

  clear(): void {
    Atomics.store(this.#live(), FLAG, 0);
  }

  /** Sleeps until the flag is set (or `timeout` seconds); returns the flag. */
  wait(timeout: number | null = null): boolean {
    for (const seconds of this.#sleeps(timeout)) this.#wake.acquire(seconds);
    return this.is_set();
  }

  async waitAsync(options: WaitOptions = {}): Promise<boolean> {
    if (!this.is_set() && options.signal?.aborted) throw abortError(options.signal);
    for (const seconds of this.#sleeps(options.timeout)) await this.#wake.acquireAsync({ timeout: seconds, signal: options.signal });
    return this.is_set();
  }

  // Counts the caller among the sleepers and yields how long to sleep on the
  // semaphore until the flag is set, set() was called, or the time is up.
  *#sleeps(timeout: number | null | undefined): Generator<number | null> {
    const words = this.#live();
    if (Atomics.load(words, FLAG) === 1) return;
    const deadline = deadlineAfter(waitSeconds(timeout));
    Atomics.add(words, SLEEPERS, 1);
    try {
      const generation = Atomics.load(words, GENERATION);
      while (Atomics.load(words, FLAG) === 0 && Atomics.load(words, GENERATION) === generation) {
        const left = secondsUntil(deadline);
        if (left <= 0) return;
        yield left === Infinity ? null : left;
      }
    } finally {
      if (!this.#segment.closed) Atomics.sub(words, SLEEPERS, 1);
    }
  }

  close(): void {
    if (this.#wake.closed) return;
    this.#wake.close();
    this.#segment.close();
    if (this.anonymous) removePair(this.name);
  }

  unlink(): void {
    Event.unlink(this.name);
  }

  /** Removes the event's semaphore and shared memory. */
  static unlink(name: string): void {
    NamedSemaphore.unlink(name);
    unlinkQuietly(() => SharedMemorySegment.unlink(name));
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'Event', [this.name]];
  }

  [inspect.custom](): string {
    return `<Event at ${this.name} ${this.#segment.closed ? 'closed' : this.is_set() ? 'set' : 'unset'}>`;
  }

  #live(): Int32Array {
    if (this.#segment.closed) throw closedError(this.name);
    return this.#words;
  }
}

// ---------------------------------------------------------------------------
// Barrier: threading.Barrier's algorithm, its state and count in shared
// memory, waiting on a Condition over a Lock.

const BARRIER_STATE = 0;
const BARRIER_COUNT = 1;
const BARRIER_WORDS = 2;
const FILLING = 0;
const DRAINING = 1;
const RESETTING = -1;
const BROKEN = -2;

export class Barrier extends SynchronizationObject implements Reducible {
  readonly parties: number;
  /** Called by one party (the last to arrive) before the others are released; runs in its process. */
  readonly action: (() => unknown) | null;
  readonly timeout: number | null;
  readonly #segment: SharedMemorySegment;
  readonly #words: Int32Array;
  readonly #condition: Condition;

  constructor(parties: number, action: (() => unknown) | null = null, timeout: number | null = null, options: SyncOptions = {}) {
    if (!Number.isInteger(parties)) throw new TypeError(`parties must be an integer, not ${String(parties)}`);
    const { name, anonymous } = resolveName(options);
    super(name, anonymous);
    this.parties = parties;
    this.action = action;
    this.timeout = timeout;
    const open = openOptions(options, anonymous);
    ({ segment: this.#segment, words: this.#words } = openWords(name, BARRIER_WORDS, open, anonymous));
    let lock: Lock | undefined;
    try {
      lock = new Lock({ ...options, name: `${name}.lock`, exclusive: open.exclusive });
      if (anonymous) {
        track('shm', `${name}.lock`);
        track('semaphore', `${name}.lock`);
      }
      this.#condition = new Condition(lock, { ...options, name: `${name}.cond`, exclusive: open.exclusive });
      if (anonymous) for (const part of CONDITION_PARTS) track('semaphore', `${name}.cond.${part}`);
    } catch (error) {
      lock?.close();
      this.#segment.close();
      if (anonymous) Barrier.#removeAll(name);
      throw error;
    }
  }

  static open(name: string, parties: number, timeout: number | null = null): Barrier {
    return new this(parties, null, timeout, { name, create: false });
  }

  /** Waits for all parties; returns this party's arrival index (0 .. parties - 1). */
  wait(timeout: number | null = this.timeout): number {
    const condition = this.#condition;
    condition.acquire();
    try {
      while (this.#state === RESETTING || this.#state === DRAINING) condition.wait();
      if (this.#state < 0) throw new BrokenBarrierError();
      const index = Atomics.add(this.#words, BARRIER_COUNT, 1);
      try {
        if (index + 1 === this.parties) {
          this.#release(() => condition.notify_all());
        } else {
          const passed = condition.wait_for(() => this.#state !== FILLING, timeout);
          this.#checkPassed(passed, () => condition.notify_all());
        }
        return index;
      } finally {
        this.#exit(() => condition.notify_all());
      }
    } finally {
      condition.release();
    }
  }

  async waitAsync(options: WaitOptions = {}): Promise<number> {
    const condition = this.#condition;
    const { signal } = options;
    const timeout = options.timeout === undefined ? this.timeout : options.timeout;
    await condition.acquireAsync({ signal });
    try {
      while (this.#state === RESETTING || this.#state === DRAINING) await condition.waitAsync({ signal });
      if (this.#state < 0) throw new BrokenBarrierError();
      const index = Atomics.add(this.#words, BARRIER_COUNT, 1);
      const notifyAll = () => condition.notify_allAsync();
      try {
        if (index + 1 === this.parties) {
          await this.#releaseAsync(notifyAll);
        } else {
          const passed = await condition.wait_forAsync(() => this.#state !== FILLING, { timeout, signal });
          if (!passed) await this.#breakAsync(notifyAll);
          if (!passed || this.#state < 0) throw new BrokenBarrierError();
        }
        return index;
      } finally {
        Atomics.sub(this.#words, BARRIER_COUNT, 1);
        if (this.#exitState()) await notifyAll();
      }
    } finally {
      condition.release();
    }
  }

  /** Returns the barrier to its empty state; parties waiting get BrokenBarrierError. */
  reset(): void {
    using _ = this.#condition.hold();
    this.#resetState();
    this.#condition.notify_all();
  }

  async resetAsync(): Promise<void> {
    await using _ = await this.#condition.holdAsync();
    this.#resetState();
    await this.#condition.notify_allAsync();
  }

  /** Breaks the barrier: waiting and later parties get BrokenBarrierError until reset(). */
  abort(): void {
    using _ = this.#condition.hold();
    Atomics.store(this.#words, BARRIER_STATE, BROKEN);
    this.#condition.notify_all();
  }

  async abortAsync(): Promise<void> {
    await using _ = await this.#condition.holdAsync();
    await this.#breakAsync(() => this.#condition.notify_allAsync());
  }

  /** Parties waiting now. */
  get n_waiting(): number {
    return this.#state === FILLING ? Atomics.load(this.#words, BARRIER_COUNT) : 0;
  }

  get broken(): boolean {
    return this.#state === BROKEN;
  }

  close(): void {
    if (this.#segment.closed) return;
    this.#condition.close();
    this.#condition.lock.close();
    this.#segment.close();
    if (this.anonymous) Barrier.#removeAll(this.name);
  }

  unlink(): void {
    Barrier.unlink(this.name);
  }

  /** Removes the barrier's shared memory, lock and condition. */
  static unlink(name: string): void {
    SharedMemorySegment.unlink(name);
    Lock.unlink(`${name}.lock`);
    Condition.unlink(`${name}.cond`);
  }

  [reduceSymbol](): Reduction {
    return [MODULE, 'Barrier', [this.name, this.parties, this.timeout]];
  }

  [inspect.custom](): string {
    return `<Barrier at ${this.name} parties=${this.parties} n_waiting=${this.n_waiting} broken=${this.broken}>`;
  }

  static #removeAll(name: string): void {
    removeSegment(name);
    removePair(`${name}.lock`);
    for (const part of CONDITION_PARTS) removeSemaphore(`${name}.cond.${part}`);
  }

  get #state(): number {
    if (this.#segment.closed) throw closedError(this.name);
    return Atomics.load(this.#words, BARRIER_STATE);
  }

  // The last party: runs the action, then lets everyone through.
  #release(notifyAll: () => void): void {
    try {
      this.action?.();
      Atomics.store(this.#words, BARRIER_STATE, DRAINING);
      notifyAll();
    } catch (error) {
      Atomics.store(this.#words, BARRIER_STATE, BROKEN);
      notifyAll();
      throw error;
    }
  }

  async #releaseAsync(notifyAll: () => Promise<void>): Promise<void> {
    try {
      await this.action?.();
      Atomics.store(this.#words, BARRIER_STATE, DRAINING);
      await notifyAll();
    } catch (error) {
      await this.#breakAsync(notifyAll);
      throw error;
    }
  }

  #checkPassed(passed: boolean, notifyAll: () => void): void {
    if (!passed) {
      Atomics.store(this.#words, BARRIER_STATE, BROKEN);
      notifyAll();
    }
    if (!passed || this.#state < 0) throw new BrokenBarrierError();
  }

  async #breakAsync(notifyAll: () => Promise<void>): Promise<void> {
    Atomics.store(this.#words, BARRIER_STATE, BROKEN);
    await notifyAll();
  }

  #exit(notifyAll: () => void): void {
    Atomics.sub(this.#words, BARRIER_COUNT, 1);
    if (this.#exitState()) notifyAll();
  }

  // The last party out of a draining or resetting barrier opens it again.
  #exitState(): boolean {
    const state = Atomics.load(this.#words, BARRIER_STATE);
    if (Atomics.load(this.#words, BARRIER_COUNT) === 0 && (state === RESETTING || state === DRAINING)) {
      Atomics.store(this.#words, BARRIER_STATE, FILLING);
      return true;
    }
    return false;
  }

  #resetState(): void {
    if (Atomics.load(this.#words, BARRIER_COUNT) > 0) {
      const state = this.#state;
      if (state === FILLING || state === BROKEN) Atomics.store(this.#words, BARRIER_STATE, RESETTING);
    } else {
      Atomics.store(this.#words, BARRIER_STATE, FILLING);
    }
  }
}

// camelCase aliases: the same functions as the Python names.
for (const cls of [Semaphore]) Object.defineProperty(cls.prototype, 'getValue', { value: cls.prototype.get_value, writable: true, configurable: true });
for (const [alias, python] of [['waitFor', 'wait_for'], ['waitForAsync', 'wait_forAsync'], ['notifyAll', 'notify_all'], ['notifyAllAsync', 'notify_allAsync']] as const) {
  Object.defineProperty(Condition.prototype, alias, { value: Condition.prototype[python], writable: true, configurable: true });
}
Object.defineProperty(Event.prototype, 'isSet', { value: Event.prototype.is_set, writable: true, configurable: true });
Object.defineProperty(Barrier.prototype, 'nWaiting', { get: Object.getOwnPropertyDescriptor(Barrier.prototype, 'n_waiting')!.get, configurable: true });

export interface Semaphore {
  getValue: Semaphore['get_value'];
}
export interface Condition {
  waitFor: Condition['wait_for'];
  waitForAsync: Condition['wait_forAsync'];
  notifyAll: Condition['notify_all'];
  notifyAllAsync: Condition['notify_allAsync'];
}
export interface Event {
  isSet: Event['is_set'];
}
export interface Barrier {
  readonly nWaiting: number;
}

// The other side of [reduceSymbol]: a pickle naming one of these objects
// reopens it by name (a Condition's lock arrives as its own object first).
registerReconstructor(MODULE, 'Lock', (name: string) => Lock.open(name));
registerReconstructor(MODULE, 'RLock', (name: string) => RLock.open(name));
registerReconstructor(MODULE, 'Semaphore', (name: string) => Semaphore.open(name));
registerReconstructor(MODULE, 'BoundedSemaphore', (name: string, maxvalue: number) => BoundedSemaphore.open(name, maxvalue));
registerReconstructor(MODULE, 'Condition', (lock: Lock | RLock, name: string) => Condition.open(lock, name));
registerReconstructor(MODULE, 'Event', (name: string) => Event.open(name));
registerReconstructor(MODULE, 'Barrier', (name: string, parties: number, timeout: number | null) => Barrier.open(name, parties, timeout));
