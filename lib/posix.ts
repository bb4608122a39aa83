// posix-multiprocessing/posix: the kernel objects, thin and by name.
/**
 * The kernel objects themselves, by name: message queues, named semaphores, shared memory segments, limits.
 * @module posix-multiprocessing/posix
 */
export { listKernelObjects, type KernelObjects } from './posix/inventory.js';
export { MessageQueue, type MessageQueueOptions, type SendOptions, type Message, type MessageData } from './posix/mqueue.js';
export { mqueueSetting, queueBytes } from './posix/limits.js';
export { NamedSemaphore, SEM_VALUE_MAX, type NamedSemaphoreOptions } from './posix/semaphore.js';
export { SharedMemorySegment, type SharedMemorySegmentOptions } from './posix/shm.js';
export type { WaitOptions } from './timeouts.js';
