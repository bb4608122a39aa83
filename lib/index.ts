// posix-multiprocessing: Python's multiprocessing surface.
export * from './errors.js';
export { Pipe, Connection, Listener, Client, ClientAsync, type Address, type Family, type ListenerOptions, type ClientOptions } from './connection.js';
export { Process, ParentProcess, current_process, parent_process, active_children, cpu_count, currentProcess, parentProcess, activeChildren, cpuCount, type ProcessOptions, type Target } from './process.js';
export { Pool, AsyncResult, MapResult, IMapIterator, RemoteTraceback, MaybeEncodingError, type PoolOptions, type ResultCallbacks } from './pool.js';
export { Manager, BaseProxy, RemoteError, rebuildProxy, type DictProxy, type ListProxy, type NamespaceProxy, type QueueProxy, type JoinableQueueProxy, type LockProxy, type SemaphoreProxy, type EventProxy, type ConditionProxy, type BarrierProxy, type ValueProxy, type ArrayProxy } from './managers.js';
