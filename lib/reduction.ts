// How this library's objects cross to another process, as Python's
// __reduce__ does: an object names a reconstructor (module, name) and the
// arguments to call it with; the pickle codec writes that as a global plus
// REDUCE, and on the other side calls the reconstructor registered under that
// name, never any other. Objects open by name (queues, semaphores, shared
// memory) need nothing more; a descriptor (a pipe's end) is passed to the
// child when it is spawned and is named in the arguments by its number there.

/** The method an object implements to cross to another process. */
export const reduceSymbol: unique symbol = Symbol.for('posix-multiprocessing.reduce');

export type Reduction = [module: string, name: string, args: unknown[]];

export interface Reducible {
  [reduceSymbol](): Reduction;
}

export function isReducible(value: unknown): value is Reducible {
  return typeof value === 'object' && value !== null && typeof (value as Partial<Reducible>)[reduceSymbol] === 'function';
}

/** The module name under which this library registers its reconstructors. */
export const MODULE = 'posix_multiprocessing';

let inherited: number[] | null = null;

/**
 * While pickling for a child process: the descriptor number the child will
 * see for `fd` (the spawner passes the collected descriptors in its stdio).
 */
export function inheritDescriptor(fd: number): number {
  if (inherited === null) {
    throw new TypeError('this object holds a descriptor and can cross only to a child process (pass it in Process args)');
  }
  let index = inherited.indexOf(fd);
  if (index === -1) index = inherited.push(fd) - 1;
  return FIRST_INHERITED_FD + index;
}

/** The first descriptor a child sees for inherited ones (after stdin, stdout, stderr). */
export const FIRST_INHERITED_FD = 3;

/** Runs `pickle` collecting the descriptors the child must inherit, in order. */
export function collectingDescriptors<T>(pickle: () => T): { result: T; descriptors: number[] } {
  const outer = inherited;
  inherited = [];
  try {
    const result = pickle();
    return { result, descriptors: inherited };
  } finally {
    inherited = outer;
  }
}
