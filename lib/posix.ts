// posix-multiprocessing/posix: the kernel objects, thin and by name.
export { listKernelObjects, type KernelObjects } from './posix/inventory.js';
export { SharedMemorySegment, type SharedMemorySegmentOptions } from './posix/shm.js';
