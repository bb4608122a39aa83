// Anonymous kernel objects outlive their creator unless someone unlinks them.
// As CPython's resource_tracker: the first time a process creates one, it
// starts a small tracker process in its own session and tells it, over a
// pipe, each name it creates and each it unlinks. When the pipe closes,
// because the creator exited or was killed (even by SIGKILL), the tracker
// unlinks whatever is still registered, then exits.
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { binding } from './native.js';

/** Kernel objects by name, and the private directories of Listener sockets by path. */
export type ResourceKind = 'queue' | 'semaphore' | 'shm' | 'directory';

interface PipeBinding {
  socket: { pipe(): [number, number]; close(fd: number): void };
}

/** The write end of the pipe to the tracker; -1 once the tracker is gone. */
let channel: number | null = null;

function trackerChannel(): number {
  if (channel !== null) return channel;
  // A blocking pipe of our own, written synchronously: a registration is in
  // the kernel before the object exists, so a SIGKILL right after cannot
  // lose it (a Node stream would hold writes in memory once the pipe is full).
  const { socket } = binding<PipeBinding>();
  const [readEnd, writeEnd] = socket.pipe();
  try {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./resource_tracker_main.js', import.meta.url))], {
      detached: true, // a signal to the creator's process group must not stop the cleanup
      stdio: [readEnd, 'ignore', 'inherit'],
    });
    child.unref(); // the tracker never keeps its creator alive
  } finally {
    socket.close(readEnd);
  }
  channel = writeEnd;
  return channel;
}

function send(op: '+' | '-', kind: ResourceKind, name: string): void {
  const fd = trackerChannel();
  if (fd < 0) return;
  try {
    writeSync(fd, `${op}${JSON.stringify([kind, name])}\n`);
  } catch {
    channel = -1; // a tracker that died cannot be told more; its objects are then the user's
  }
}

/** The object `name` was created by this process: unlink it if this process dies first. */
export function track(kind: ResourceKind, name: string): void {
  send('+', kind, name);
}

/** The object `name` was unlinked (or handed over): forget it. */
export function untrack(kind: ResourceKind, name: string): void {
  if (channel !== null) send('-', kind, name);
}
