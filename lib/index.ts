// posix-multiprocessing: Python's multiprocessing surface.
export * from './errors.js';
export { SharedMemory, ShareableList, type SharedMemoryOptions, type ShareableItem } from './shared_memory.js';
export { RawValue, RawArray, SharedCValue, SharedCArray, sizeof, type Typecode, type TypecodeValues, type TypecodeInputs, type TypecodeViews } from './sharedctypes.js';
