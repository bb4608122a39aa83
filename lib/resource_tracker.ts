// Anonymous kernel objects outlive their creator unless someone unlinks them.
// As CPython's resource_tracker: the first time a process creates one, it
// starts a small tracker process in its own session and tells it, over a
// pipe, each name it creates and each it unlinks. When the pipe closes,
// because the creator exited or was killed (even by SIGKILL), the tracker
// unlinks whatever is still registered, then exits.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Writable } from 'node:stream';

export type ResourceKind = 'queue' | 'semaphore' | 'shm';

let channel: Writable | null = null;

function trackerChannel(): Writable {
  if (channel) return channel;
  const child = spawn(process.execPath, [fileURLToPath(new URL('./resource_tracker_main.js', import.meta.url))], {
    detached: true, // a signal to the creator's process group must not stop the cleanup
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  child.unref();
  const stdin = child.stdin as Writable & { unref(): void };
  stdin.unref(); // the tracker never keeps its creator alive
  stdin.on('error', () => {}); // a tracker that died cannot be told more; its objects are then the user's
  channel = stdin;
  return channel;
}

function send(op: '+' | '-', kind: ResourceKind, name: string): void {
  // A pipe write goes to the kernel at once while the pipe has room, so a
  // registration survives a SIGKILL that follows it.
  trackerChannel().write(`${op}${JSON.stringify([kind, name])}\n`);
}

/** The object `name` was created by this process: unlink it if this process dies first. */
export function track(kind: ResourceKind, name: string): void {
  send('+', kind, name);
}

/** The object `name` was unlinked (or handed over): forget it. */
export function untrack(kind: ResourceKind, name: string): void {
  if (channel) send('-', kind, name);
}
