// What POSIX IPC objects exist on this machine. Semaphores and shared memory
// are files in /dev/shm; queues are visible only through an mqueue
// filesystem, which is mounted at /dev/mqueue on most distributions and can
// be mounted temporarily by a privileged user.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SHM_DIR = '/dev/shm';
export const MQUEUE_DIR = '/dev/mqueue';

export interface KernelObjects {
  /** Queue names ('/jobs'), or null when no mqueue filesystem could be read. */
  queues: string[] | null;
  /** Named semaphore names ('/lock'), from /dev/shm/sem.lock. */
  semaphores: string[];
  /** Shared memory names ('/psm_1234'), the other files of /dev/shm. */
  segments: string[];
}

function isMqueueMount(dir: string): boolean {
  try {
    return readFileSync('/proc/self/mounts', 'utf8').split('\n')
      .some((line) => line.split(' ')[1] === dir && line.split(' ')[2] === 'mqueue');
  } catch {
    return false;
  }
}

/** Runs `read` on a readable mqueue filesystem, mounting one for the call if needed and permitted. */
export function withMqueueDir<T>(read: (dir: string) => T): T | null {
  if (isMqueueMount(MQUEUE_DIR)) return read(MQUEUE_DIR);
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'pmp-mqueue-'));
    execFileSync('mount', ['-t', 'mqueue', 'none', dir], { stdio: 'ignore' });
  } catch {
    if (dir) rmdirSync(dir);
    return null;
  }
  try {
    return read(dir);
  } finally {
    execFileSync('umount', [dir], { stdio: 'ignore' });
    rmdirSync(dir);
  }
}

export function listKernelObjects(): KernelObjects {
  const shm = readdirSync(SHM_DIR).filter((file) => !file.startsWith('.'));
  return {
    queues: withMqueueDir((dir) => readdirSync(dir).map((file) => `/${file}`)),
    semaphores: shm.filter((file) => file.startsWith('sem.')).map((file) => `/${file.slice(4)}`),
    segments: shm.filter((file) => !file.startsWith('sem.')).map((file) => `/${file}`),
  };
}
