// Python's multiprocessing.managers: a server process owns the shared objects
// (dict, list, Namespace, Queue, Lock, Event, Value, ... and registered user
// types); proxies forward each method call over an authenticated Connection
// (Listener/Client) as CPython's do: [id, method, args] answered by
// ['#RETURN', value] or ['#ERROR', exception]. Each proxy has its own
// connection, so a proxy handed to a child process (in Process args) connects
// anew there. The server runs every request on its event loop: a blocking
// method (lock.acquire, queue.get, event.wait) waits there without holding up
// the other connections.
import * as fs from 'node:fs';
import { inspect } from 'node:util';
import { Client, Listener, authenticateClientAsync, type Address, type Connection } from './connection.js';
import { AssertionError, Empty, Full, ProcessError, ValueError, isOSError } from './errors.js';
import { READABLE, binding, type PollerBinding } from './native.js';
import { exceptionRecord, rebuildException, type ExceptionRecord } from './pool.js';
import {
  FrameReader, Process, closeChannel, current_process, exportedFunction, frame, moduleSpecifier, native, parentChannel,
  wakeable,
} from './process.js';
import { MODULE, reduceSymbol, type Reduction } from './reduction.js';
import { deadlineAfter, secondsUntil, waitSeconds } from './timeouts.js';
import { dumps, loads, registerReconstructor } from './pickle.js';

const { FdPoller: Poller } = binding<PollerBinding>();

/** A failure in the manager's server itself (not in a method of a shared object). */
export class RemoteError extends Error {}
Object.defineProperty(RemoteError.prototype, 'name', { value: 'RemoteError', writable: true, configurable: true });

type Request = [id: string | null, method: string, args: unknown[]];
type Reply = ['#RETURN', unknown] | ['#ERROR', ExceptionRecord] | ['#THROWN', unknown];

// ---------------------------------------------------------------------------
// Shared objects, as the server holds them. Blocking methods wait on the
// server's event loop; a timeout in seconds, null (or -1) for none.

/** Waiters woken one at a time or all at once; wait() tells whether it was woken. */
class Waiters {
  readonly #queue = new Set<() => void>();

  async wait(timeout: number | null | undefined): Promise<boolean> {
    let woken = false;
    const seconds = timeout === -1 ? Infinity : waitSeconds(timeout);
    if (seconds === 0) return false;
    await wakeable((wake) => {
      const mark = () => {
        woken = true;
        wake();
      };
      this.#queue.add(mark);
      return () => this.#queue.delete(mark);
    }, seconds);
    return woken;
  }

  wakeOne(): void {
    const [first] = this.#queue;
    first?.();
  }

  wakeAll(): void {
    for (const wake of [...this.#queue]) wake();
  }
}

/** A connection's identity on the server: who owns an RLock. */
interface Caller {
  readonly client: number;
}

/** Waits until `ready()`, each change announced on `waiters`; false when the time is up. */
async function until(ready: () => boolean, waiters: Waiters, block: boolean, timeout: number | null): Promise<boolean> {
  const deadline = deadlineAfter(block ? (timeout === -1 ? Infinity : waitSeconds(timeout)) : 0);
  while (!ready()) {
    const left = secondsUntil(deadline);
    if (left === 0 || !(await waiters.wait(left))) return ready();
  }
  return true;
}

class SharedLock {
  #owner: number | null = null;
  #count = 0;
  readonly #waiters = new Waiters();
  constructor(readonly reentrant: boolean) {}

  async acquire(caller: Caller, blocking = true, timeout: number | null = null): Promise<boolean> {
    if (this.reentrant && this.#owner === caller.client) {
      this.#count++;
      return true;
    }
    if (!(await until(() => this.#count === 0, this.#waiters, blocking, timeout))) return false;
    this.#owner = caller.client;
    this.#count = 1;
    return true;
  }

  release(caller: Caller): void {
    if (this.reentrant) {
      if (this.#owner !== caller.client || this.#count === 0) throw runtimeError('cannot release un-acquired lock');
    } else if (this.#count === 0) {
      throw runtimeError('release unlocked lock');
    }
    if (--this.#count === 0) {
      this.#owner = null;
      this.#waiters.wakeOne();
    }
  }

  locked(): boolean {
    return this.#count > 0;
  }

  ownedBy(caller: Caller): boolean {
    return this.#count > 0 && this.#owner === caller.client;
  }

  /** Lets go however deeply held (a Condition's wait); returns the depth. */
  releaseAll(): number {
    const depth = this.#count;
    this.#count = 0;
    this.#owner = null;
    this.#waiters.wakeOne();
    return depth;
  }

  deepen(by: number): void {
    this.#count += by;
  }
}

function runtimeError(message: string): Error {
  return Object.assign(new Error(message), { name: 'RuntimeError' });
}

class SharedSemaphore {
  readonly #waiters = new Waiters();
  constructor(private value = 1, readonly bound: number | null = null) {
    if (value < 0) throw new ValueError('semaphore initial value must be >= 0');
  }

  async acquire(_caller: Caller, blocking = true, timeout: number | null = null): Promise<boolean> {
    if (!(await until(() => this.value > 0, this.#waiters, blocking, timeout))) return false;
    this.value--;
    return true;
  }

  release(_caller: Caller, n = 1): void {
    if (this.bound !== null && this.value + n > this.bound) throw new ValueError('Semaphore released too many times');
    this.value += n;
    for (let i = 0; i < n; i++) this.#waiters.wakeOne();
  }

  get_value(): number {
    return this.value;
  }
}

class SharedEvent {
  #flag = false;
  readonly #waiters = new Waiters();
  is_set(): boolean { return this.#flag; }
  set(): void {
    this.#flag = true;
    this.#waiters.wakeAll();
  }
  clear(): void { this.#flag = false; }
  async wait(_caller: Caller, timeout: number | null = null): Promise<boolean> {
    return until(() => this.#flag, this.#waiters, true, timeout);
  }
}

class SharedCondition {
  readonly #lock = new SharedLock(true);
  readonly #notified = new Waiters();
  acquire(caller: Caller, blocking = true, timeout: number | null = null): Promise<boolean> {
    return this.#lock.acquire(caller, blocking, timeout);
  }
  release(caller: Caller): void {
    this.#lock.release(caller);
  }
  /** Releases the lock (however deeply held), waits for a notify, takes it back as deep. */
  async wait(caller: Caller, timeout: number | null = null): Promise<boolean> {
    if (!this.#lock.ownedBy(caller)) throw runtimeError('cannot wait on un-acquired lock');
    const depth = this.#lock.releaseAll();
    const woken = await this.#notified.wait(timeout);
    await this.#lock.acquire(caller);
    this.#lock.deepen(depth - 1);
    return woken;
  }
  notify(caller: Caller, n = 1): void {
    if (!this.#lock.ownedBy(caller)) throw runtimeError('cannot notify on un-acquired lock');
    for (let i = 0; i < n; i++) this.#notified.wakeOne();
  }
  notify_all(caller: Caller): void {
    if (!this.#lock.ownedBy(caller)) throw runtimeError('cannot notify on un-acquired lock');
    this.#notified.wakeAll();
  }
}

class SharedQueue {
  readonly #items: unknown[] = [];
  readonly #changed = new Waiters();
  #unfinished = 0;
  constructor(readonly maxsize = 0) {}

  async put(_caller: Caller, item: unknown, block = true, timeout: number | null = null): Promise<void> {
    if (!(await until(() => this.maxsize <= 0 || this.#items.length < this.maxsize, this.#changed, block, timeout))) throw new Full();
    this.#items.push(item);
    this.#unfinished++;
    this.#changed.wakeAll();
  }
  async get(_caller: Caller, block = true, timeout: number | null = null): Promise<unknown> {
    if (!(await until(() => this.#items.length > 0, this.#changed, block, timeout))) throw new Empty();
    const item = this.#items.shift();
    this.#changed.wakeAll();
    return item;
  }
  put_nowait(caller: Caller, item: unknown): Promise<void> { return this.put(caller, item, false); }
  get_nowait(caller: Caller): Promise<unknown> { return this.get(caller, false); }
  qsize(): number { return this.#items.length; }
  empty(): boolean { return this.#items.length === 0; }
  full(): boolean { return this.maxsize > 0 && this.#items.length >= this.maxsize; }
  task_done(): void {
    if (this.#unfinished <= 0) throw new ValueError('task_done() called too many times');
    if (--this.#unfinished === 0) this.#changed.wakeAll();
  }
  async join(): Promise<void> {
    await until(() => this.#unfinished === 0, this.#changed, true, null);
  }
}

class SharedBarrier {
  #count = 0;
  #generation = 0;
  #broken = false;
  readonly #changed = new Waiters();
  constructor(readonly parties: number, readonly timeout: number | null = null) {}
  async wait(_caller: Caller, timeout: number | null = this.timeout): Promise<number> {
    if (this.#broken) throw brokenBarrier();
    const generation = this.#generation;
    const index = this.#count++;
    if (this.#count === this.parties) {
      this.#count = 0;
      this.#generation++;
      this.#changed.wakeAll();
      return index;
    }
    if (!(await until(() => this.#generation !== generation || this.#broken, this.#changed, true, timeout))) {
      this.abort();
    }
    if (this.#generation === generation) throw brokenBarrier();
    return index;
  }
  reset(): void {
    if (this.#count > 0) this.abort();
    this.#broken = false;
    this.#count = 0;
  }
  abort(): void {
    this.#broken = true;
    this.#changed.wakeAll();
  }
  get n_waiting(): number { return this.#count; }
  get broken(): boolean { return this.#broken; }
}

function brokenBarrier(): Error {
  return Object.assign(new Error(''), { name: 'BrokenBarrierError' });
}

class SharedValue {
  constructor(readonly typecode: string, public value: unknown) {}
  get(): unknown { return this.value; }
  set(_caller: Caller, value: unknown): void { this.value = value; }
}

class SharedArray {
  readonly items: unknown[];
  constructor(readonly typecode: string, sizeOrItems: number | unknown[]) {
    this.items = typeof sizeOrItems === 'number' ? new globalThis.Array(sizeOrItems).fill(typecode === 'c' ? Buffer.alloc(1) : 0) : [...sizeOrItems];
  }
  get(_caller: Caller, i: number): unknown { return this.items[index(this.items, i)]; }
  set(_caller: Caller, i: number, value: unknown): void { this.items[index(this.items, i)] = value; }
  len(): number { return this.items.length; }
  tolist(): unknown[] { return [...this.items]; }
}

function index(items: unknown[], i: number): number {
  const at = i < 0 ? items.length + i : i;
  if (!Number.isInteger(at) || at < 0 || at >= items.length) throw Object.assign(new RangeError('list index out of range'), { name: 'IndexError' });
  return at;
}

function keyError(key: unknown): Error {
  return Object.assign(new Error(inspect(key)), { name: 'KeyError' });
}

/** The pairs of a Map (pickle's Dict), of an iterable of pairs, or of a plain object (pickle's dict of str keys). */
function entries(init: Iterable<[unknown, unknown]> | Record<string, unknown>): Iterable<[unknown, unknown]> {
  return Symbol.iterator in Object(init) ? init as Iterable<[unknown, unknown]> : Object.entries(init);
}

class SharedDict {
  readonly map: Map<unknown, unknown>;
  constructor(init: Iterable<[unknown, unknown]> | Record<string, unknown> | null = null) {
    this.map = new Map(entries(init ?? []));
  }
  get(_caller: Caller, key: unknown, dflt: unknown = null): unknown { return this.map.has(key) ? this.map.get(key) : dflt; }
  getitem(_caller: Caller, key: unknown): unknown {
    if (!this.map.has(key)) throw keyError(key);
    return this.map.get(key);
  }
  set(_caller: Caller, key: unknown, value: unknown): void { this.map.set(key, value); }
  delete(_caller: Caller, key: unknown): void {
    if (!this.map.delete(key)) throw keyError(key);
  }
  has(_caller: Caller, key: unknown): boolean { return this.map.has(key); }
  keys(): unknown[] { return [...this.map.keys()]; }
  values(): unknown[] { return [...this.map.values()]; }
  items(): [unknown, unknown][] { return [...this.map.entries()]; }
  update(_caller: Caller, other: Iterable<[unknown, unknown]> | Record<string, unknown>): void {
    for (const [key, value] of entries(other)) this.map.set(key, value);
  }
  pop(_caller: Caller, key: unknown, ...dflt: unknown[]): unknown {
    if (!this.map.has(key)) {
      if (dflt.length > 0) return dflt[0];
      throw keyError(key);
    }
    const value = this.map.get(key);
    this.map.delete(key);
    return value;
  }
  setdefault(_caller: Caller, key: unknown, value: unknown = null): unknown {
    if (!this.map.has(key)) this.map.set(key, value);
    return this.map.get(key);
  }
  clear(): void { this.map.clear(); }
  len(): number { return this.map.size; }
  copy(): Map<unknown, unknown> {
    return new Map(this.map);
  }
}

class SharedList {
  readonly items: unknown[];
  constructor(init: Iterable<unknown> | null = null) {
    this.items = [...init ?? []];
  }
  get(_caller: Caller, i: number): unknown { return this.items[index(this.items, i)]; }
  set(_caller: Caller, i: number, value: unknown): void { this.items[index(this.items, i)] = value; }
  append(_caller: Caller, value: unknown): void { this.items.push(value); }
  extend(_caller: Caller, values: Iterable<unknown>): void { this.items.push(...values); }
  insert(_caller: Caller, i: number, value: unknown): void {
    const at = i < 0 ? Math.max(0, this.items.length + i) : Math.min(i, this.items.length);
    this.items.splice(at, 0, value);
  }
  pop(_caller: Caller, i = -1): unknown {
    if (this.items.length === 0) throw Object.assign(new RangeError('pop from empty list'), { name: 'IndexError' });
    return this.items.splice(index(this.items, i), 1)[0];
  }
  remove(_caller: Caller, value: unknown): void {
    const at = this.items.findIndex((item) => equal(item, value));
    if (at === -1) throw new ValueError('list.remove(x): x not in list');
    this.items.splice(at, 1);
  }
  index(_caller: Caller, value: unknown): number {
    const at = this.items.findIndex((item) => equal(item, value));
    if (at === -1) throw new ValueError(`${inspect(value)} is not in list`);
    return at;
  }
  count(_caller: Caller, value: unknown): number { return this.items.filter((item) => equal(item, value)).length; }
  len(): number { return this.items.length; }
  copy(): unknown[] { return [...this.items]; }
}

function equal(a: unknown, b: unknown): boolean {
  return a === b || inspect(a, { depth: Infinity }) === inspect(b, { depth: Infinity });
}

class SharedNamespace {
  readonly attrs = new Map<string, unknown>();
  constructor(init: Record<string, unknown> | null = null) {
    for (const [key, value] of entries(init ?? {})) this.attrs.set(String(key), value);
  }
  get(_caller: Caller, attr: string): unknown {
    if (!this.attrs.has(attr)) throw Object.assign(new Error(`'Namespace' object has no attribute '${attr}'`), { name: 'AttributeError' });
    return this.attrs.get(attr);
  }
  set(_caller: Caller, attr: string, value: unknown): void { this.attrs.set(attr, value); }
  delete(_caller: Caller, attr: string): void { this.attrs.delete(attr); }
  repr(): string {
    return `Namespace(${[...this.attrs].map(([key, value]) => `${key}=${inspect(value)}`).join(', ')})`;
  }
}

// Built-in types: the constructor and the methods a proxy exposes.
const builtins: Record<string, [create: (...args: never[]) => object, exposed: string[]]> = {
  dict: [(init?: Record<string, unknown>) => new SharedDict(init), ['get', 'getitem', 'set', 'delete', 'has', 'keys', 'values', 'items', 'update', 'pop', 'setdefault', 'clear', 'len', 'copy']],
  list: [(init?: unknown[]) => new SharedList(init), ['get', 'set', 'append', 'extend', 'insert', 'pop', 'remove', 'index', 'count', 'len', 'copy']],
  Namespace: [(init?: Record<string, unknown>) => new SharedNamespace(init), ['get', 'set', 'delete', 'repr']],
  Queue: [(maxsize?: number) => new SharedQueue(maxsize), ['put', 'get', 'put_nowait', 'get_nowait', 'qsize', 'empty', 'full']],
  JoinableQueue: [(maxsize?: number) => new SharedQueue(maxsize), ['put', 'get', 'put_nowait', 'get_nowait', 'qsize', 'empty', 'full', 'task_done', 'join']],
  Lock: [() => new SharedLock(false), ['acquire', 'release', 'locked']],
  RLock: [() => new SharedLock(true), ['acquire', 'release']],
  Semaphore: [(value?: number) => new SharedSemaphore(value), ['acquire', 'release', 'get_value']],
  BoundedSemaphore: [(value = 1) => new SharedSemaphore(value, value), ['acquire', 'release', 'get_value']],
  Event: [() => new SharedEvent(), ['is_set', 'set', 'clear', 'wait']],
  Condition: [() => new SharedCondition(), ['acquire', 'release', 'wait', 'notify', 'notify_all']],
  Barrier: [(parties: number, timeout?: number | null) => new SharedBarrier(parties, timeout), ['wait', 'reset', 'abort', 'parties', 'n_waiting', 'broken']],
  Value: [(typecode: string, value: unknown = 0) => new SharedValue(typecode, value), ['get', 'set']],
  Array: [(typecode: string, init: number | unknown[]) => new SharedArray(typecode, init), ['get', 'set', 'len', 'tolist']],
};

// ---------------------------------------------------------------------------
// The server process

/** The manager's server (the target of its Process): serves every connection until shutdown. */
export async function managerServer(authkey: Uint8Array, registered: [typeid: string, module: string, name: string][]): Promise<void> {
  // Clients authenticate after accepting, each on its own, so one that fails
  // or stalls in the handshake holds up nobody (and a wrong key ends only its connection).
  const key = Buffer.from(authkey);
  const listener = new Listener(null);
  // Terminated (by shutdown's fallback, or with its parent): exit cleanly, so the socket's directory goes.
  process.once('SIGTERM', () => process.exit(0));
  const objects = new Map<string, object>();
  const types = new Map(Object.entries(builtins));
  for (const [typeid, module, name] of registered) {
    const mod = await import(module) as Record<string, unknown>;
    const make = exportedFunction(mod, name, module);
    const create = (...args: unknown[]) => {
      try {
        return Reflect.construct(make, args) as object;
      } catch (error) {
        if (error instanceof TypeError && /is not a constructor/.test(error.message)) return make(...args) as object;
        throw error;
      }
    };
    types.set(typeid, [create as never, []]);
  }
  let nextId = 0;
  let clients = 0;
  const fd = parentChannel();
  fs.writeSync(fd, frame(dumps(listener.address)));

  const exposedOf = (typeid: string, obj: object): string[] => {
    const listed = types.get(typeid)?.[1] ?? [];
    if (listed.length > 0) return listed;
    const names = new Set<string>();
    for (let proto = Object.getPrototypeOf(obj); proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
      for (const name of Object.getOwnPropertyNames(proto)) {
        if (name !== 'constructor' && !name.startsWith('_') && typeof Object.getOwnPropertyDescriptor(proto, name)?.value === 'function') names.add(name);
      }
    }
    return [...names];
  };

  const handle = async (caller: Caller, [id, method, args]: Request): Promise<unknown> => {
    if (id === null) {
      switch (method) {
        case 'create': {
          const [typeid, ...params] = args as [string, ...unknown[]];
          const type = types.get(typeid);
          if (type === undefined) throw new RemoteError(`unknown type '${typeid}'`);
          const obj = type[0](...params as never[]);
          const objectId = (++nextId).toString(16);
          objects.set(objectId, obj);
          return [objectId, exposedOf(typeid, obj)];
        }
        case 'decref':
          objects.delete(args[0] as string);
          return null;
        case 'dummy':
          return null;
        case 'shutdown':
          return null;  // answered, then the server exits
        default:
          throw new RemoteError(`unknown request '${method}'`);
      }
    }
    const obj = objects.get(id);
    if (obj === undefined) throw new RemoteError(`no shared object with id '${id}'`);
    if (method.startsWith('_')) throw new RemoteError(`method '${method}' is not exposed`);
    const member = (obj as Record<string, unknown>)[method];
    if (typeof member !== 'function') {
      if (member !== undefined && args.length === 0) return member;  // an attribute (Barrier.parties)
      throw new RemoteError(`method '${method}' is not exposed`);
    }
    // Built-in types take the caller first (lock owners); registered ones get their arguments as they are.
    return builtinClasses.has(obj.constructor) ? await member.call(obj, caller, ...args) : await member.apply(obj, args);
  };

  const serve = async (conn: Connection) => {
    const caller: Caller = { client: ++clients };
    for (;;) {
      let request: Request;
      try {
        request = loads(await conn.recvBytesAsync()) as Request;
      } catch {
        conn.close();  // the proxy's process closed it, or died
        return;
      }
      let reply: Reply;
      try {
        reply = ['#RETURN', await handle(caller, request)];
      } catch (error) {
        reply = error instanceof Error ? ['#ERROR', exceptionRecord(error)] : ['#THROWN', error];
      }
      let data: Buffer;
      try {
        data = dumps(reply);
      } catch (error) {
        data = dumps(['#ERROR', exceptionRecord(new RemoteError(`the result could not be pickled: ${(error as Error).message}`))]);
      }
      try {
        await conn.sendBytesAsync(data);
      } catch {
        conn.close();
        return;
      }
      if (request[0] === null && request[1] === 'shutdown') process.exit(0);
    }
  };

  for (;;) {
    let conn: Connection;
    try {
      conn = await listener.acceptAsync();
    } catch (error) {
      if (isOSError(error)) continue;  // a client gone before it was accepted
      throw error;
    }
    authenticateClientAsync(conn, key).then(serve, () => { /* refused: the handshake closed it */ });
  }
}

const builtinClasses = new Set<unknown>([SharedDict, SharedList, SharedNamespace, SharedQueue, SharedLock, SharedSemaphore,
  SharedEvent, SharedCondition, SharedBarrier, SharedValue, SharedArray]);

// ---------------------------------------------------------------------------
// Proxies

/** A proxy's way to its server: the address and key, kept per manager. */
interface Server {
  address: Address;
  authkey: Buffer;
}

function call(conn: Connection, request: Request): unknown {
  conn.send_bytes(dumps(request));
  return unwrap(loads(conn.recv_bytes()) as Reply);
}

async function callAsync(conn: Connection, request: Request): Promise<unknown> {
  await conn.sendBytesAsync(dumps(request));
  return unwrap(loads(await conn.recvBytesAsync()) as Reply);
}

function unwrap([kind, value]: Reply): unknown {
  if (kind === '#RETURN') return value;
  if (kind === '#ERROR') throw rebuildException(value as ExceptionRecord);
  throw value;
}

function snakeToCamel(name: string): string {
  return name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/**
 * A proxy for an object in a manager's server: each exposed method is a
 * synchronous method of the same name and an `…Async` twin (and a camelCase
 * alias for snake_case names). Hand it to a Process in `args` to share it.
 */
export class BaseProxy {
  readonly #server: Server;
  readonly #typeid: string;
  readonly #id: string;
  readonly #exposed: string[];
  #conn: Connection | null = null;
  [method: string]: unknown;

  /** @internal */
  constructor(server: Server, typeid: string, id: string, exposed: string[]) {
    this.#server = server;
    this.#typeid = typeid;
    this.#id = id;
    this.#exposed = exposed;
    for (const name of exposed) {
      const sync = (...args: unknown[]) => this._callmethod(name, args);
      const async = (...args: unknown[]) => this._callmethodAsync(name, args);
      Object.defineProperty(this, name, { value: sync, configurable: true, writable: true });
      Object.defineProperty(this, `${snakeToCamel(name)}Async`, { value: async, configurable: true, writable: true });
      if (snakeToCamel(name) !== name) Object.defineProperty(this, snakeToCamel(name), { value: sync, configurable: true, writable: true });
    }
  }

  /** Calls `method` of the shared object with `args` and returns its result (Python's _callmethod). */
  _callmethod(method: string, args: unknown[] = []): unknown {
    return call(this.#connection(), [this.#id, method, args]);
  }

  _callmethodAsync(method: string, args: unknown[] = []): Promise<unknown> {
    return callAsync(this.#connection(), [this.#id, method, args]);
  }

  /** Closes this proxy's connection (another call opens a new one). */
  close(): void {
    this.#conn?.close();
    this.#conn = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  toString(): string {
    return `<${this.#typeid}Proxy object, typeid '${this.#typeid}' id '${this.#id}'>`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  [reduceSymbol](): Reduction {
    // The key stays behind: the child authenticates with the key it inherits (current_process().authkey).
    return [MODULE, 'ManagerProxy', [this.#server.address, this.#typeid, this.#id, this.#exposed,
      this.#server.authkey.equals(current_process().authkey) ? null : this.#server.authkey]];
  }

  #connection(): Connection {
    this.#conn ??= Client(this.#server.address, { authkey: this.#server.authkey });
    return this.#conn;
  }
}

/** Rebuilds a proxy received from another process (the pickle reconstructor). */
export function rebuildProxy(address: Address, typeid: string, id: string, exposed: string[], authkey: Uint8Array | null): BaseProxy {
  return makeProxy({ address, authkey: authkey === null ? current_process().authkey : Buffer.from(authkey) }, typeid, id, exposed);
}

registerReconstructor(MODULE, 'ManagerProxy', rebuildProxy);

function makeProxy(server: Server, typeid: string, id: string, exposed: string[]): BaseProxy {
  const proxy = new BaseProxy(server, typeid, id, exposed);
  if (exposed.includes('acquire') && exposed.includes('release')) {
    // Python's `with lock:`, as the real locks have it.
    Object.defineProperty(proxy, 'hold', {
      value: (): Disposable => {
        proxy._callmethod('acquire');
        return { [Symbol.dispose]: () => proxy._callmethod('release') };
      },
    });
    Object.defineProperty(proxy, 'holdAsync', {
      value: async (): Promise<AsyncDisposable> => {
        await proxy._callmethodAsync('acquire');
        return { [Symbol.asyncDispose]: async () => { await proxy._callmethodAsync('release'); } };
      },
    });
  }
  if (typeid === 'Value') {
    Object.defineProperty(proxy, 'value', {
      get: () => proxy._callmethod('get'),
      set: (value: unknown) => proxy._callmethod('set', [value]),
    });
  }
  return proxy;
}

// ---------------------------------------------------------------------------
// The manager

type Methods<T> = { [K in keyof T]: T[K] } & { [K in keyof T as `${K & string}Async`]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never };

export type DictProxy<K = unknown, V = unknown> = BaseProxy & Methods<{
  get(key: K, dflt?: V): V | null; getitem(key: K): V; set(key: K, value: V): void; delete(key: K): void; has(key: K): boolean;
  keys(): K[]; values(): V[]; items(): [K, V][]; update(other: Record<string, V> | Iterable<[K, V]>): void;
  pop(key: K, dflt?: V): V; setdefault(key: K, value: V): V; clear(): void; len(): number;
  /** A dict of str keys comes back as a plain object, any other as a Dict (pickle's mapping). */
  copy(): [K] extends [string] ? Record<K, V> : Map<K, V> | Record<string, V>;
}>;
export type ListProxy<T = unknown> = BaseProxy & Methods<{
  get(i: number): T; set(i: number, value: T): void; append(value: T): void; extend(values: T[]): void; insert(i: number, value: T): void;
  pop(i?: number): T; remove(value: T): void; index(value: T): number; count(value: T): number; len(): number; copy(): T[];
}>;
export type NamespaceProxy = BaseProxy & Methods<{ get(attr: string): unknown; set(attr: string, value: unknown): void; delete(attr: string): void; repr(): string }>;
export type QueueProxy<T = unknown> = BaseProxy & Methods<{
  put(item: T, block?: boolean, timeout?: number | null): void; get(block?: boolean, timeout?: number | null): T;
  put_nowait(item: T): void; get_nowait(): T; qsize(): number; empty(): boolean; full(): boolean;
}> & { putNowait(item: T): void; getNowait(): T };
export type JoinableQueueProxy<T = unknown> = QueueProxy<T> & Methods<{ task_done(): void; join(): void }> & { taskDone(): void };
export type LockProxy = BaseProxy & Methods<{ acquire(blocking?: boolean, timeout?: number | null): boolean; release(): void }> & {
  hold(): Disposable; holdAsync(): Promise<AsyncDisposable>;
};
export type SemaphoreProxy = LockProxy & Methods<{ get_value(): number }>;
export type EventProxy = BaseProxy & Methods<{ is_set(): boolean; set(): void; clear(): void; wait(timeout?: number | null): boolean }> & { isSet(): boolean };
export type ConditionProxy = LockProxy & Methods<{ wait(timeout?: number | null): boolean; notify(n?: number): void; notify_all(): void }> & { notifyAll(): void };
export type BarrierProxy = BaseProxy & Methods<{ wait(timeout?: number | null): number; reset(): void; abort(): void; parties(): number; n_waiting(): number; broken(): boolean }>;
export type ValueProxy<T = unknown> = BaseProxy & Methods<{ get(): T; set(value: T): void }> & { value: T };
export type ArrayProxy<T = unknown> = BaseProxy & Methods<{ get(i: number): T; set(i: number, value: T): void; len(): number; tolist(): T[] }>;

let managerCounter = 0;

/**
 * Python's SyncManager: `const manager = await Manager.start()`, then
 * `manager.dict()`, `manager.Lock()`, ... ; `manager.shutdown()` stops the server.
 */
export class Manager {
  static readonly #registry: [typeid: string, module: string, name: string][] = [];
  readonly #authkey: Buffer;
  #process: Process | null = null;
  #server: Server | null = null;
  #state: 'initial' | 'started' | 'shutdown' = 'initial';
  #control: Connection | null = null;

  constructor({ authkey }: { authkey?: Uint8Array } = {}) {
    this.#authkey = Buffer.from(authkey ?? current_process().authkey);
  }

  /** Starts a manager's server process and resolves once it listens. */
  static async start(options: { authkey?: Uint8Array } = {}): Promise<Manager> {
    const manager = new Manager(options);
    await manager.startAsync();
    return manager;
  }

  /**
   * Makes `typeid` a method of every manager started afterwards: it creates
   * the object by calling (or constructing) the export `name` of `module`
   * in the server, and returns a proxy exposing its public methods.
   */
  static register(typeid: string, module: string | URL, name: string): void {
    if (typeid in builtins || typeid in Manager.prototype) throw new ValueError(`'${typeid}' is already a manager type`);
    Manager.#registry.push([typeid, moduleSpecifier(module), name]);
    Object.defineProperty(Manager.prototype, typeid, {
      value(this: Manager, ...args: unknown[]) { return this.create(typeid, ...args); },
      configurable: true, writable: true,
    });
  }

  get address(): Address | null { return this.#server?.address ?? null; }

  /** Starts the server, waiting (synchronously) until it listens. */
  start(): this {
    const fd = this.#launch();
    let address: Address | null = null;
    const reader = new FrameReader();
    const buffer = Buffer.allocUnsafe(4096);
    while (address === null) {
      native.poll([fd], [READABLE], Infinity);
      address = this.#received(fd, reader, buffer);
    }
    this.#started(fd, address);
    return this;
  }

  /** start() without blocking the event loop. */
  async startAsync(): Promise<this> {
    const fd = this.#launch();
    const reader = new FrameReader();
    const buffer = Buffer.allocUnsafe(4096);
    const address = await new Promise<Address>((resolve, reject) => {
      const poller = new Poller(fd, () => {
        try {
          const received = this.#received(fd, reader, buffer);
          if (received === null) return;
          poller.close();
          resolve(received);
        } catch (error) {
          poller.close();
          reject(error);
        }
      });
      poller.start(READABLE);
    });
    this.#started(fd, address);
    return this;
  }

  #launch(): number {
    if (this.#state === 'started') throw new ProcessError('Already started server');
    if (this.#state === 'shutdown') throw new ProcessError('Manager has shut down');
    this.#process = new Process({
      module: import.meta.url, target: 'managerServer', args: [this.#authkey, Manager.#registry], daemon: true,
      name: `SyncManager-${++managerCounter}`,
    });
    return this.#process.startWithChannel();
  }

  #received(fd: number, reader: FrameReader, buffer: Buffer): Address | null {
    let n: number;
    try {
      n = fs.readSync(fd, buffer);
    } catch (error) {
      if (isOSError(error, 'EAGAIN')) return null;
      throw error;
    }
    if (n === 0) {
      closeChannel(fd);
      throw new ProcessError(`the manager's server process exited before listening (exitcode ${this.#process?.exitcode ?? 'unknown'})`);
    }
    const [first] = reader.push(Buffer.from(buffer.subarray(0, n)));
    return first === undefined ? null : loads(first) as Address;
  }

  #started(fd: number, address: Address): void {
    closeChannel(fd);
    this.#server = { address, authkey: this.#authkey };
    this.#state = 'started';
  }

  /** Creates a shared object of type `typeid` in the server; returns its proxy. */
  create(typeid: string, ...args: unknown[]): BaseProxy {
    const server = this.#checkStarted();
    this.#control ??= Client(server.address, { authkey: server.authkey });
    const [id, exposed] = call(this.#control, [null, 'create', [typeid, ...args]]) as [string, string[]];
    return makeProxy(server, typeid, id, exposed);
  }

  dict<K = string, V = unknown>(init?: Record<string, V> | Iterable<[K, V]>): DictProxy<K, V> {
    return this.create('dict', init === undefined ? null : [...entries(init as Record<string, V>)]) as DictProxy<K, V>;
  }
  list<T = unknown>(init?: Iterable<T>): ListProxy<T> { return this.create('list', init === undefined ? null : [...init]) as ListProxy<T>; }
  Namespace(init?: Record<string, unknown>): NamespaceProxy { return this.create('Namespace', init === undefined ? null : [...entries(init)]) as NamespaceProxy; }
  Queue<T = unknown>(maxsize = 0): QueueProxy<T> { return this.create('Queue', maxsize) as QueueProxy<T>; }
  JoinableQueue<T = unknown>(maxsize = 0): JoinableQueueProxy<T> { return this.create('JoinableQueue', maxsize) as JoinableQueueProxy<T>; }
  Lock(): LockProxy { return this.create('Lock') as LockProxy; }
  RLock(): LockProxy { return this.create('RLock') as LockProxy; }
  Semaphore(value = 1): SemaphoreProxy { return this.create('Semaphore', value) as SemaphoreProxy; }
  BoundedSemaphore(value = 1): SemaphoreProxy { return this.create('BoundedSemaphore', value) as SemaphoreProxy; }
  Event(): EventProxy { return this.create('Event') as EventProxy; }
  Condition(): ConditionProxy { return this.create('Condition') as ConditionProxy; }
  Barrier(parties: number, timeout: number | null = null): BarrierProxy { return this.create('Barrier', parties, timeout) as BarrierProxy; }
  Value<T = unknown>(typecode: string, value: T): ValueProxy<T> { return this.create('Value', typecode, value) as ValueProxy<T>; }
  Array<T = unknown>(typecode: string, sizeOrItems: number | T[]): ArrayProxy<T> { return this.create('Array', typecode, sizeOrItems) as ArrayProxy<T>; }

  /** Stops the server process (idempotent). Proxies fail afterwards. */
  shutdown(): void {
    if (this.#state !== 'started') {
      this.#state = 'shutdown';
      return;
    }
    this.#state = 'shutdown';
    const server = this.#server as Server;
    try {
      this.#control ??= Client(server.address, { authkey: server.authkey });
      call(this.#control, [null, 'shutdown', []]);
    } catch {
      // already gone
    }
    this.#control?.close();
    this.#control = null;
    const child = this.#process as Process;
    child.join(1);
    if (child.exitcode === null) {
      child.terminate();
      child.join(1);
    }
    if (child.exitcode === null) child.kill();
    child.join();
    child.close();
  }

  [Symbol.dispose](): void {
    this.shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.shutdown();
  }

  #checkStarted(): Server {
    if (this.#state === 'shutdown') throw new ProcessError('Manager has shut down');
    if (this.#server === null) throw new AssertionError('server not yet started');
    return this.#server;
  }
}
