// posix-multiprocessing/pickle: CPython-compatible pickle.
export { PickleError, PicklingError, UnpicklingError } from './errors.js';
