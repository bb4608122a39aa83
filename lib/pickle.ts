// posix-multiprocessing/pickle: CPython-compatible pickle.
/**
 * CPython's pickle: dumps/loads byte-compatible with CPython 3.11, Python's types, registered classes.
 * @module posix-multiprocessing/pickle
 */
export { PickleError, PicklingError, UnpicklingError } from './errors.js';
export { dumps, type DumpsOptions } from './pickle/writer.js';
export { loads, type LoadsOptions } from './pickle/reader.js';
export { Global, registerClass, registerReconstructor, type ClassSpec } from './pickle/registry.js';
export {
  Complex, Decimal, Deque, Dict, Float, FrozenSet, OrderedDict, PickleBuffer, PyDate, PyDateTime, PyTime, TimeDelta, TimeZone,
  Tuple, ZoneInfo, isTuple, toTuple, tuple, type TzInfo,
} from './pickle/types.js';

/** The protocol `dumps` writes by default (CPython 3.8–3.13's DEFAULT_PROTOCOL). */
export const DEFAULT_PROTOCOL = 4;
/** The highest protocol `dumps` writes and `loads` reads. */
export const HIGHEST_PROTOCOL = 5;
