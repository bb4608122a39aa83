// posix-multiprocessing: Python's multiprocessing surface.
export * from './errors.js';
