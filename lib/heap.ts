// Python's multiprocessing.heap: the memory behind Value and Array. Each
// object gets an anonymous segment of its own ('/pmp-<pid>-<random>'), which
// other processes map by name. The creating process removes the name when it
// is done with it (closed, collected, or at exit), so the memory goes once
// the last process mapping it lets go.
import { SharedMemorySegment } from './posix/shm.js';
import { anonymousName } from './names.js';
import { track, untrack } from './resource_tracker.js';

/** Names of segments this process created and has not removed yet. */
const owned = new Set<string>();

process.on('exit', () => {
  for (const name of owned) release(name);
});

const collected = new FinalizationRegistry<string>(release);

/**
 * Makes `name` this process's to remove: at exit at the latest, and by the
 * resource tracker if this process is killed.
 */
export function own(name: string): void {
  owned.add(name);
  track('shm', name);
}

/** The name was removed by hand: nothing to do at exit. */
export function disown(name: string): void {
  if (owned.delete(name)) untrack('shm', name);
}

/** Removes a segment this process owns (once; names it does not own are left alone). */
export function release(name: string): void {
  if (!owned.delete(name)) return;
  try {
    SharedMemorySegment.unlink(name);
  } catch {
    // Already removed by hand (pmp clean, another unlink): nothing left to do.
  }
  untrack('shm', name);
}

/**
 * A new zero-filled anonymous segment of `size` bytes, owned by this process
 * and released when `holder` is collected. Its pages are reserved now, so a
 * full /dev/shm is an error here rather than a SIGBUS on first write.
 */
export function allocate(size: number, holder: object): SharedMemorySegment {
  const name = anonymousName();
  const segment = new SharedMemorySegment(name, { create: true, exclusive: true, size, reserve: true });
  own(name);
  collected.register(holder, name, holder);
  return segment;
}

/** The holder is closed by hand: release its segment now, not at collection. */
export function free(holder: object, segment: SharedMemorySegment): void {
  collected.unregister(holder);
  segment.close();
  release(segment.name);
}
