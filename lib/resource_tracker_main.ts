// The tracker process (see resource_tracker.ts): reads "+[kind, name]" and
// "-[kind, name]" lines from its creator; at end of input unlinks what is left.
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { MessageQueue } from './posix/mqueue.js';
import { discardHandOffs } from './queues.js';
import { NamedSemaphore } from './posix/semaphore.js';
import { SharedMemorySegment } from './posix/shm.js';
import { isOSError } from './errors.js';
import type { ResourceKind } from './resource_tracker.js';

const unlinkers: Record<ResourceKind, (name: string) => void> = {
  // The creator is gone: large objects still waiting in its queue go with it.
  queue: (name) => {
    discardHandOffs(name);
    MessageQueue.unlink(name);
  },
  semaphore: (name) => NamedSemaphore.unlink(name),
  shm: (name) => SharedMemorySegment.unlink(name),
  directory: (path) => rmSync(path, { recursive: true, force: true }),
};

// Interrupting the creator's terminal must not interrupt the cleanup.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});

const live = new Map<string, [ResourceKind, string]>();
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [kind, name] = JSON.parse(line.slice(1)) as [ResourceKind, string];
  const key = `${kind} ${name}`;
  if (line[0] === '+') live.set(key, [kind, name]);
  else live.delete(key);
});
lines.on('close', () => {
  for (const [kind, name] of live.values()) {
    try {
      unlinkers[kind](name);
    } catch (error) {
      if (!isOSError(error, 'ENOENT')) console.error(`posix-multiprocessing resource tracker: could not remove ${kind} ${name}: ${(error as Error).message}`);
    }
  }
  process.exit(0);
});
