// Python's multiprocessing.Process: a target exported by a module runs in a
// fresh Node.js process started through lib/spawn.ts, as CPython's spawn
// start method does. Arguments cross pickled over a socketpair of ours; the
// descriptors they hold are passed in the child's stdio (reduction.ts). The
// child's status is read through a pidfd without reaping it (libuv reaps), so
// join() and is_alive() work while the event loop is blocked.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { frameHeader } from './connection.js';
import { AssertionError, ValueError, abortError, isOSError } from './errors.js';
import { binding } from './native.js';
import { FIRST_INHERITED_FD, collectingDescriptors } from './reduction.js';
import { afterSeconds, deadlineAfter, secondsUntil, waitSeconds, type WaitOptions } from './timeouts.js';
import { dumps, loads } from './pickle.js';

interface ProcessBinding {
  pidfdOpen(pid: number): number;
  exitStatus(pid: number): number | null | undefined;
  poll(fds: number[], events: number[], seconds: number): number[];
  setCloexec(fd: number): void;
  setParentDeathSignal(signal: number): void;
  // The channel to a child is a socketpair from connection's slice of the addon.
  socket: {
    socketpair(): [number, number];
    setBlocking(fd: number, blocking: boolean): void;
    close(fd: number): void;
    // timeoutMs 0: never blocks (-1 when nothing could be read or sent); negative: waits.
    read(fd: number, buffer: Uint8Array, offset: number, length: number, timeoutMs: number): number;
    send(fd: number, buffer: Uint8Array, offset: number, length: number, timeoutMs: number): number;
  };
}
export const native = binding<ProcessBinding>();
const sys = native.socket;

/** Our end of a channel to a child: non-blocking, polled by the pool. */
function openChannel(): [parentEnd: number, childEnd: number] {
  const [parentEnd, childEnd] = sys.socketpair();
  sys.setBlocking(parentEnd, false);
  return [parentEnd, childEnd];
}

/** Closes a channel end made by openChannel(). */
export function closeChannel(fd: number): void {
  sys.close(fd);
}

/** A target or task function: an export of a module, by name or as the function. */
export type Target = string | ((...args: never[]) => unknown);

export interface ProcessOptions {
  /** The module exporting the target: a file URL (`import.meta.url`), a path, or a package specifier. */
  module?: string | URL;
  target?: Target;
  args?: unknown[];
  /** Python's keyword arguments: passed to the target as one last argument. */
  kwargs?: Record<string, unknown>;
  name?: string;
  /** Defaults to the creating process's flag, as in Python. */
  daemon?: boolean;
}

/**
 * What a child reads first from its channel (lists: they cross pickled).
 * The header holds plain values only; the child imports the modules it names
 * before it unpickles the arguments, so that the reconstructors those
 * modules register (registerClass...) are there for them, as CPython's spawn
 * imports the main module before it unpickles the process object.
 */
type Header = [
  module: string | null, target: string | null, preload: string | null,
  name: string, identity: number[], daemon: boolean, authkey: Uint8Array, parentPid: number, parentName: string,
];
type Arguments = [args: unknown[], kwargs: Record<string, unknown> | null];

const BOOTSTRAP = fileURLToPath(new URL('./spawn.js', import.meta.url));

/** The module specifier a child imports: file URLs and paths become file URLs. */
export function moduleSpecifier(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (typeof module !== 'string' || module === '') throw new TypeError('module must be a file URL (import.meta.url), a path or a package name');
  if (module.startsWith('file:')) return module;
  if (path.isAbsolute(module) || module.startsWith('.') || fs.existsSync(module)) return pathToFileURL(path.resolve(module)).href;
  return module;
}

/** The export name of a target given by name or as the exported function. */
export function targetName(target: Target, what = 'target'): string {
  if (typeof target === 'string' && target !== '') return target;
  if (typeof target === 'function' && target.name !== '') return target.name;
  throw new TypeError(`${what} must be the name of a function exported by the module, or that exported function itself (a named function)`);
}

/** The exported function `name` of a loaded module (or the export whose function has that name). */
export function exportedFunction(mod: Record<string, unknown>, name: string, specifier: string): (...args: unknown[]) => unknown {
  let fn = mod[name];
  if (typeof fn !== 'function') fn = Object.values(mod).find((value) => typeof value === 'function' && value.name === name);
  if (typeof fn !== 'function') throw new TypeError(`module '${specifier}' has no exported function '${name}'`);
  return fn as (...args: unknown[]) => unknown;
}

// Node flags a child must not repeat: they would run other code than ours
// (-e, -p, --test) or collide with the parent (--inspect, --watch).
const PARENT_ONLY = /^(-e|--eval|-p|--print|-i|--interactive|-c|--check|--test.*|--inspect.*|--debug.*|--watch.*|--input-type.*)$/;

function childExecArgv(): string[] {
  const kept: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const [flag] = argv[i].split('=', 1);
    if (!PARENT_ONLY.test(flag)) {
      kept.push(argv[i]);
    } else if (['-e', '--eval', '-p', '--print'].includes(argv[i])) {
      i++;  // and its value
    }
  }
  return kept;
}

const signalNumbers = os.constants.signals as Record<string, number>;
const signalNames = new Map(Object.entries(signalNumbers).map(([name, number]) => [number, name]));

function exitcodeOf(child: ChildProcess): number | null {
  if (child.exitCode !== null) return child.exitCode;
  if (child.signalCode !== null) return -(signalNumbers[child.signalCode] ?? 0);
  return null;
}

/** A timeout in seconds, or the options of an async wait. */
export function waitOptions(timeout: number | null | undefined | WaitOptions): WaitOptions {
  return typeof timeout === 'object' && timeout !== null ? timeout : { timeout };
}

/**
 * Waits on the event loop until `subscribe`'s wake() is called or `seconds`
 * pass (resolving either way), or rejects with an AbortError when `signal`
 * aborts. `subscribe` returns what undoes it.
 */
export function wakeable(subscribe: (wake: () => void) => () => void, seconds: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const settle = () => {
      cancelTimer();
      signal?.removeEventListener('abort', aborted);
      unsubscribe();
    };
    const wake = () => {
      settle();
      resolve();
    };
    const aborted = () => {
      settle();
      reject(abortError(signal as AbortSignal));
    };
    const cancelTimer = seconds === Infinity ? () => {} : afterSeconds(seconds, wake);
    signal?.addEventListener('abort', aborted, { once: true });
    const unsubscribe = subscribe(wake);
  });
}

/** Writes all of `data` to a non-blocking descriptor, waiting while it is full. */
export function writeAllSync(fd: number, data: Uint8Array): void {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += fs.writeSync(fd, data, offset);
    } catch (error) {
      if (!isOSError(error, 'EAGAIN')) throw error;
      native.poll([fd], [2], Infinity);
    }
  }
}

/** A frame on a process channel, as a Connection's: CPython's header, then the payload. */
export function frame(payload: Uint8Array): Buffer {
  const header = frameHeader(payload.length);
  const framed = Buffer.allocUnsafe(header.length + payload.length);
  framed.set(header, 0);
  framed.set(payload, header.length);
  return framed;
}

/** The header's size and the payload's length at `offset` in `data` (bytes before `end`), if complete. */
export function parseHeader(data: Buffer, offset: number, end = data.length): [headerSize: number, length: number] | null {
  if (end - offset < 4) return null;
  const short = data.readInt32BE(offset);
  if (short !== -1) return [4, short];
  if (end - offset < 12) return null;
  return [12, Number(data.readBigUInt64BE(offset + 4))];
}

/** Splits a byte stream into frames (see frame()). */
export class FrameReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #needed = 4;

  /** Adds bytes; returns the frames they complete, in order. */
  push(chunk: Buffer): Buffer[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const frames: Buffer[] = [];
    if (this.#buffered < this.#needed) return frames;
    let data = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#buffered);
    let offset = 0;
    for (let header = parseHeader(data, 0); header !== null && data.length - offset - header[0] >= header[1];
      header = parseHeader(data, offset)) {
      frames.push(data.subarray(offset + header[0], offset + header[0] + header[1]));
      offset += header[0] + header[1];
    }
    data = data.subarray(offset);
    this.#chunks = data.length > 0 ? [data] : [];
    this.#buffered = data.length;
    const next = parseHeader(data, 0);
    this.#needed = next !== null ? next[0] + next[1] : data.length < 4 ? 4 : 12;
    return frames;
  }
}

/** Reads one frame from a blocking descriptor; null at end of file. */
function readFrameSync(fd: number): Buffer | null {
  const header = readExactlySync(fd, 4);
  if (header === null) return null;
  let length = header.readInt32BE(0);
  if (length === -1) {
    const long = readExactlySync(fd, 8);
    if (long === null) return null;
    length = Number(long.readBigUInt64BE(0));
  }
  return readExactlySync(fd, length);
}

function readExactlySync(fd: number, length: number): Buffer | null {
  const data = Buffer.allocUnsafe(length);
  let offset = 0;
  while (offset < length) {
    const n = fs.readSync(fd, data, offset, length - offset, null);
    if (n === 0) return null;
    offset += n;
  }
  return data;
}

let processCounter = 0;
const children = new Set<Process>();
const currentMarker = Symbol('current process');

interface Current {
  name: string;
  identity: number[];
  daemon: boolean;
  authkey: Buffer;
}

/** Python's multiprocessing.Process. */
export class Process {
  #name: string;
  #daemon: boolean;
  readonly #identity: number[];
  readonly #module: string | null;
  readonly #target: string | null;
  readonly #args: unknown[];
  readonly #kwargs: Record<string, unknown> | null;
  #authkey: Buffer;
  readonly #parentPid: number;
  #child: ChildProcess | null = null;
  #pidfd = -1;
  #exitcode: number | null = null;
  #closed = false;
  readonly #isCurrent: boolean;

  constructor(options: ProcessOptions = {}) {
    const current = (options as { [currentMarker]?: Current })[currentMarker];
    this.#isCurrent = current !== undefined;
    if (current !== undefined) {
      this.#identity = current.identity;
      this.#name = current.name;
      this.#daemon = current.daemon;
      this.#authkey = current.authkey;
      this.#parentPid = process.ppid;
      this.#module = this.#target = this.#kwargs = null;
      this.#args = [];
      return;
    }
    const creator = current_process();
    this.#identity = [...creator.#identity, ++processCounter];
    this.#name = `Process-${this.#identity.join(':')}`;
    if (options.name !== undefined) this.name = options.name;
    this.#daemon = options.daemon ?? creator.daemon;
    this.#authkey = creator.authkey;
    this.#parentPid = process.pid;
    if (options.target !== undefined && options.target !== null) {
      if (options.module === undefined) throw new TypeError('Process needs the module that exports the target: new Process({ module: import.meta.url, target })');
      this.#module = moduleSpecifier(options.module);
      this.#target = targetName(options.target);
    } else {
      this.#module = this.#target = null;
    }
    if (options.args !== undefined && !Array.isArray(options.args)) throw new TypeError('args must be an array');
    this.#args = options.args ?? [];
    this.#kwargs = options.kwargs ?? null;
  }

  get name(): string { return this.#name; }
  set name(name: string) {
    if (typeof name !== 'string') throw new AssertionError('name must be a string');
    this.#name = name;
  }

  get daemon(): boolean { return this.#daemon; }
  set daemon(daemonic: boolean) {
    if (this.#child !== null) throw new AssertionError('process has already started');
    this.#daemon = Boolean(daemonic);
  }

  /** The key Listener/Client and managers use by default; children inherit it. */
  get authkey(): Buffer { return this.#authkey; }
  set authkey(key: Buffer) { this.#authkey = Buffer.from(key); }

  get pid(): number | null {
    this.#checkClosed();
    if (this.#isCurrent) return process.pid;
    return this.#child?.pid ?? null;
  }
  get ident(): number | null { return this.pid; }

  /** null until the process has ended; then its exit code, -N if signal N ended it. */
  get exitcode(): number | null {
    this.#checkClosed();
    return this.#child === null ? null : this.#poll();
  }

  /** A descriptor that becomes readable when the process ends (a pidfd). */
  get sentinel(): number {
    this.#checkClosed();
    if (this.#child === null) throw new ValueError('process not started');
    return this.#pidfd;
  }

  start(): void {
    this.#launch(false, null);
  }

  /**
   * Starts the process and returns our end of its channel (Pool workers and
   * managers talk over it); `preload` is a module the child imports before
   * it unpickles the arguments (the pool's task module).
   */
  startWithChannel(preload: string | null = null): number {
    return this.#launch(true, preload);
  }

  #launch(keepChannel: boolean, preload: string | null): number {
    this.#checkClosed();
    if (this.#child !== null || this.#isCurrent) throw new AssertionError('cannot start a process twice');
    if (this.#parentPid !== process.pid) throw new AssertionError('can only start a process object created by current process');
    if (current_process().daemon) throw new AssertionError('daemonic processes are not allowed to have children');
    cleanup();
    const header: Header = [
      this.#module, this.#target, preload, this.#name, this.#identity, this.#daemon, this.#authkey, process.pid, current_process().name,
    ];
    const { result: payload, descriptors } = collectingDescriptors(() => dumps([this.#args, this.#kwargs] satisfies Arguments));
    const bootstrap = Buffer.concat([frame(dumps(header)), frame(payload)]);
    const [parentEnd, childEnd] = openChannel();
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...childExecArgv(), BOOTSTRAP, String(FIRST_INHERITED_FD + descriptors.length)], {
        stdio: ['ignore', 'inherit', 'inherit', ...descriptors, childEnd],
      });
    } catch (error) {
      sys.close(parentEnd);
      throw error;
    } finally {
      sys.close(childEnd);
    }
    if (child.pid === undefined) {
      sys.close(parentEnd);
      // spawn reports its failure as an 'error' event; the cause is the same synchronously.
      child.on('error', () => {});
      throw new Error(`could not start a Node.js process for ${this.#name} (${process.execPath}): check the process and file-descriptor limits (ulimit -u, ulimit -n)`);
    }
    this.#child = child;
    this.#pidfd = native.pidfdOpen(child.pid);
    sentinels.register(this, this.#pidfd, this);
    if (this.#daemon) child.unref();
    children.add(this);
    try {
      writeAllSync(parentEnd, bootstrap);
    } catch (error) {
      // The child died before reading its bootstrap: its exit code tells.
      if (!isOSError(error, 'EPIPE') && !isOSError(error, 'ECONNRESET')) throw error;
    }
    if (keepChannel) return parentEnd;
    sys.close(parentEnd);
    return -1;
  }

  /** Waits for the process to end, at most `timeout` seconds; returns undefined, as Python's join. */
  join(timeout: number | null = null): void {
    const seconds = waitSeconds(timeout);
    this.#checkJoinable();
    if (this.#poll() !== null) return;
    const deadline = deadlineAfter(seconds);
    while (this.#poll() === null) {
      const left = secondsUntil(deadline);
      native.poll([this.#pidfd], [1], left);
      if (left === 0) break;
    }
    if (this.#poll() !== null) children.delete(this);
  }

  /** join() without blocking the event loop: resolves when the process has ended or the time is up. */
  joinAsync(timeout: number | null | WaitOptions = null): Promise<void> {
    const { timeout: seconds, signal } = waitOptions(timeout);
    const wait = waitSeconds(seconds);
    this.#checkJoinable();
    const child = this.#child as ChildProcess;
    if (this.#poll() !== null && exitcodeOf(child) !== null) return Promise.resolve();
    return wakeable((wake) => {
      child.ref();  // a daemonic child does not keep the loop alive, but a wait for it must
      child.once('exit', wake);
      return () => {
        child.off('exit', wake);
        if (this.#daemon) child.unref();
        if (this.#poll() !== null) children.delete(this);
      };
    }, wait, signal);
  }

  is_alive(): boolean {
    this.#checkClosed();
    if (this.#isCurrent) return true;
    if (this.#parentPid !== process.pid) throw new AssertionError('can only test a child process');
    if (this.#child === null) return false;
    if (this.#poll() === null) return true;
    children.delete(this);
    return false;
  }

  /** Sends SIGTERM (Python's terminate). */
  terminate(): void {
    this.#signal('SIGTERM');
  }

  /** Sends SIGKILL. */
  kill(): void {
    this.#signal('SIGKILL');
  }

  /** Releases the process's resources; it must have ended. Idempotent. */
  close(): void {
    if (this.#closed) return;
    if (this.#child !== null) {
      if (this.#poll() === null) {
        throw new ValueError('Cannot close a process while it is still running. You should first call join() or terminate().');
      }
      sentinels.unregister(this);
      fs.closeSync(this.#pidfd);
      this.#pidfd = -1;
    }
    children.delete(this);
    this.#closed = true;
  }

  toString(): string {
    let status: string;
    if (this.#isCurrent) status = 'started';
    else if (this.#closed) status = 'closed';
    else if (this.#child === null) status = 'initial';
    else {
      const code = this.#poll();
      status = code === null ? 'started' : 'stopped';
      if (code !== null) status += ` exitcode=${code < 0 ? `-${signalNames.get(-code) ?? -code}` : code}`;
    }
    const pid = this.#closed ? '' : this.#isCurrent ? ` pid=${process.pid}` : this.#child ? ` pid=${this.#child.pid}` : '';
    const parent = this.#isCurrent ? '' : ` parent=${this.#parentPid}`;
    return `<Process name='${this.#name}'${pid}${parent} ${status}${this.#daemon ? ' daemon' : ''}>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  #signal(name: NodeJS.Signals): void {
    this.#checkClosed();
    if (this.#child === null || this.#poll() !== null) return;
    this.#child.kill(name);
  }

  #checkClosed(): void {
    if (this.#closed) throw new ValueError('process object is closed');
  }

  #checkJoinable(): void {
    this.#checkClosed();
    if (this.#isCurrent || this.#parentPid !== process.pid) throw new AssertionError('can only join a child process');
    if (this.#child === null) throw new AssertionError('can only join a started process');
  }

  /** The exit code once the child has ended, read without reaping it. */
  #poll(): number | null {
    if (this.#exitcode !== null) return this.#exitcode;
    const child = this.#child as ChildProcess;
    const status = exitcodeOf(child) ?? native.exitStatus(child.pid as number);
    if (status === undefined || status === null) return null;
    this.#exitcode = status;
    return status;
  }
}

(Process.prototype as unknown as Record<string, unknown>).isAlive = Process.prototype.is_alive;
export interface Process {
  isAlive: Process['is_alive'];
}

/** The running process's parent, as Python's parent_process() returns. */
export class ParentProcess {
  readonly #pidfd: number;
  constructor(readonly name: string, readonly pid: number) {
    this.#pidfd = native.pidfdOpen(pid);
  }
  get ident(): number { return this.pid; }
  get sentinel(): number { return this.#pidfd; }
  get daemon(): boolean { return false; }
  is_alive(): boolean {
    return (native.poll([this.#pidfd], [1], 0)[0] & 1) === 0;
  }
  join(timeout: number | null = null): void {
    native.poll([this.#pidfd], [1], waitSeconds(timeout));
  }
  toString(): string {
    return `<_ParentProcess name='${this.name}' parent=${this.pid} ${this.is_alive() ? 'started' : 'stopped'}>`;
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

(ParentProcess.prototype as unknown as Record<string, unknown>).isAlive = ParentProcess.prototype.is_alive;
export interface ParentProcess {
  isAlive: ParentProcess['is_alive'];
}

// A pidfd is closed with its Process, or when the Process is collected.
const sentinels = new FinalizationRegistry<number>((fd) => fs.close(fd, () => {}));

let current: Process | null = null;
let parent: ParentProcess | null = null;
let channel = -1;

/** The Process object of the running process ('MainProcess' in the main one). */
export function current_process(): Process {
  current ??= new Process({
    [currentMarker]: { name: 'MainProcess', identity: [], daemon: false, authkey: randomBytes(32) },
  } as ProcessOptions);
  return current;
}

/** The parent of the running process, or null in the main process. */
export function parent_process(): ParentProcess | null {
  return parent;
}

function cleanup(): void {
  for (const child of children) {
    if (child.exitcode !== null) children.delete(child);
  }
}

/** The started children of this process that are still running (ended ones are forgotten). */
export function active_children(): Process[] {
  cleanup();
  return [...children];
}

/** The number of CPUs in the system. */
export function cpu_count(): number {
  const count = os.cpus().length;
  if (count === 0) throw new Error('cannot determine number of cpus');
  return count;
}

export { current_process as currentProcess, parent_process as parentProcess, active_children as activeChildren, cpu_count as cpuCount };

/** In a child started by Process: its end of the channel to its parent (Pool workers talk over it). */
export function parentChannel(): number {
  return channel;
}

/** Runs in a fresh child (lib/spawn.ts): reads the bootstrap, becomes the process, runs the target. */
export async function runChild(channelFd: number): Promise<void> {
  for (let fd = FIRST_INHERITED_FD; fd <= channelFd; fd++) native.setCloexec(fd);
  const data = readFrameSync(channelFd);
  if (data === null) process.exit(1);  // the parent died before sending anything
  const [module, target, preload, name, identity, daemon, authkey, parentPid, parentName] = loads(data) as Header;
  if (daemon) {
    native.setParentDeathSignal(signalNumbers.SIGTERM);
    if (process.ppid !== parentPid) process.kill(process.pid, 'SIGTERM');
  }
  channel = channelFd;
  current = new Process({
    [currentMarker]: { name, identity: [...identity], daemon, authkey: Buffer.from(authkey) },
  } as ProcessOptions);
  try {
    parent = new ParentProcess(parentName, parentPid);
  } catch {
    parent = null;  // the parent has already gone
  }
  try {
    // A preload that fails is the target's to report (a pool worker tells its pool).
    if (preload !== null) await import(preload).catch(() => {});
    const mod = module === null ? null : await import(module) as Record<string, unknown>;
    const argumentsData = readFrameSync(channelFd);
    if (argumentsData === null) process.exit(1);
    const [args, kwargs] = loads(argumentsData) as Arguments;
    if (mod === null || target === null) return;
    const fn = exportedFunction(mod, target, module as string);
    await fn(...withKeywords(args, kwargs));
  } catch (error) {
    process.stderr.write(`Process ${name}:\n${formatException(error)}\n`);
    process.exitCode = 1;
  }
}

/** A call's arguments: Python's keyword arguments, when given, as one last plain object (what pickle makes of a dict of str keys). */
export function withKeywords(args: unknown[], kwargs: Record<string, unknown> | null): unknown[] {
  if (kwargs === null) return args;
  return [...args, kwargs];
}

/** An exception as a traceback: its stack (which starts with its type and message). */
export function formatException(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return `Uncaught ${inspect(error)}`;
}
