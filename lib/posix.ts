// posix-multiprocessing/posix: the kernel objects, thin and by name.
export { listKernelObjects, type KernelObjects } from './posix/inventory.js';
export { NamedSemaphore, SEM_VALUE_MAX, type NamedSemaphoreOptions, type WaitOptions } from './posix/semaphore.js';
export { SharedMemorySegment, type SharedMemorySegmentOptions } from './posix/shm.js';
