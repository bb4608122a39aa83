// Kernel object names: validation, and the names of anonymous objects.
// Anonymous names carry the creator's pid, so orphans of dead processes can
// be recognised (pmp ls, pmp clean, the resource tracker).
import { randomBytes } from 'node:crypto';

export const NAME_MAX = 255;
export const ANONYMOUS_PREFIX = 'pmp-';

/** A POSIX IPC name: a leading '/', no other '/', at most 255 bytes. */
export function validateName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string') throw new TypeError(`${what} must be a string such as '/jobs', not ${typeof name}`);
  if (!name.startsWith('/') || name.length < 2 || name.indexOf('/', 1) !== -1 || name.includes('\0')) {
    throw new TypeError(`${what} ${JSON.stringify(name)} is not a valid POSIX IPC name: it must be '/' followed by at least one character other than '/' (e.g. '/jobs')`);
  }
  if (Buffer.byteLength(name) > NAME_MAX) {
    throw new RangeError(`${what} is ${Buffer.byteLength(name)} bytes long; POSIX IPC names are at most ${NAME_MAX} bytes`);
  }
  return name;
}

/** '/pmp-<pid>-<random>': unique, and tells which process created it. */
export function anonymousName(pid = process.pid): string {
  return `/${ANONYMOUS_PREFIX}${pid}-${randomBytes(6).toString('base64url').replace(/[-_]/g, 'x')}`;
}

/** The creator's pid of an anonymous name, or undefined for a user's name. */
export function creatorPid(name: string): number | undefined {
  const match = /^\/?(?:sem\.)?pmp-(\d+)-/.exec(name);
  return match ? Number(match[1]) : undefined;
}
