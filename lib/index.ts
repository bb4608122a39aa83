// posix-multiprocessing: Python's multiprocessing surface.
export * from './errors.js';
export { Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier, type SyncOptions, type Held, type WaitOptions } from './synchronize.js';
