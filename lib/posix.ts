// posix-multiprocessing/posix: the kernel objects, thin and by name.
export { listKernelObjects, type KernelObjects } from './posix/inventory.js';
