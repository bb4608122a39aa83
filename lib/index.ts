// posix-multiprocessing: Python's multiprocessing surface.
/**
 * Python's multiprocessing: processes, pools, queues, locks, connections, shared memory and managers.
 * @module posix-multiprocessing
 */
export * from './errors.js';
export { Queue, SimpleQueue, JoinableQueue, MAX_BATCH, type QueueOptions, type OpenOptions, type Codec, type CodecName } from './queues.js';
export { Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier, type SyncOptions, type Held, type WaitOptions } from './synchronize.js';
export { Pipe, Connection, Listener, Client, ClientAsync, wait, type Waitable, type Address, type Family, type ListenerOptions, type ClientOptions } from './connection.js';
export { Process, ParentProcess, current_process, parent_process, active_children, cpu_count, currentProcess, parentProcess, activeChildren, cpuCount, type ProcessOptions, type Target } from './process.js';
export { SharedMemory, ShareableList, type SharedMemoryOptions, type ShareableItem } from './shared_memory.js';
export { Value, Array, SharedArray, RawValue, RawArray, Synchronized, SynchronizedArray, synchronized, SharedCValue, SharedCArray, sizeof, type SharedLock, type LockOption, type Typecode, type TypecodeValues, type TypecodeInputs, type TypecodeViews } from './sharedctypes.js';
export { Pool, AsyncResult, MapResult, IMapIterator, RemoteTraceback, MaybeEncodingError, type PoolOptions, type ResultCallbacks } from './pool.js';
export { Manager, BaseProxy, RemoteError, rebuildProxy, type DictProxy, type ListProxy, type NamespaceProxy, type QueueProxy, type JoinableQueueProxy, type LockProxy, type SemaphoreProxy, type EventProxy, type ConditionProxy, type BarrierProxy, type ValueProxy, type ArrayProxy } from './managers.js';
export { dumps, loads, tuple, Tuple, isTuple } from './pickle.js';
