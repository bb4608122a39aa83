// posix-multiprocessing: Python's multiprocessing surface.
export * from './errors.js';
export { dumps, loads, tuple, Tuple, isTuple } from './pickle.js';
