// SharedMemorySegment: a POSIX shared memory object opened by name and mapped
// whole, like posix_ipc's SharedMemory plus its mmap. Nothing is stored in the
// segment but the caller's bytes, so C, Python and this package see the same
// contents under the same name.
import { constants as bufferConstants } from 'node:buffer';
import { closeSync, fstatSync, ftruncateSync } from 'node:fs';
import { markAsUntransferable } from 'node:worker_threads';
import { binding } from '../native.js';
import { validateName } from '../names.js';
import { isOSError, ValueError, withHint } from '../errors.js';

interface ShmBinding {
  shmOpen(name: string, oflag: number, mode: number): number;
  shmUnlink(name: string): void;
  fallocate(fd: number, length: number): void;
  mmap(fd: number, length: number): Buffer;
  munmap(buffer: Buffer): void;
  shmFlags: { O_RDWR: number; O_CREAT: number; O_EXCL: number };
}
const native = binding<ShmBinding>();

export interface SharedMemorySegmentOptions {
  /** Create the segment if it does not exist (default false: it must exist). */
  create?: boolean;
  /** With `create`: fail with EEXIST if the segment already exists. */
  exclusive?: boolean;
  /** Permission bits of a created segment (default 0o600). */
  mode?: number;
  /**
   * At least this many bytes: a smaller segment (a new one is empty) is grown
   * to this size, zero-filled. A segment is never shrunk, because another
   * process's mapping beyond the new end would fault.
   */
  size?: number;
  /**
   * Allocate the pages now (posix_fallocate), so a full /dev/shm fails here
   * with ENOSPC instead of killing the process with SIGBUS on a later write.
   */
  reserve?: boolean;
}

function checkSize(size: unknown): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
    throw new TypeError(`size must be a non-negative integer number of bytes, not ${String(size)}`);
  }
  if (size < 0) throw new RangeError(`size must be a non-negative integer number of bytes, not ${size}`);
  return size;
}

function checkMode(mode: unknown): number {
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new TypeError(`mode must be permission bits such as 0o600, not ${String(mode)}`);
  }
  return mode;
}

/** The system's error, with a message that says what went wrong with which segment and what to do. */
function explained(error: unknown, name: string, size?: number): unknown {
  if (!isOSError(error)) return error;
  switch (error.code) {
    case 'ENOENT':
      return withHint(error, `no shared memory segment named '${name}' exists (open it with { create: true } to create it)`);
    case 'EEXIST':
      return withHint(error, `shared memory segment '${name}' already exists (open it without exclusive: true, or unlink it first)`);
    case 'EACCES':
      return withHint(error, `permission denied for shared memory segment '${name}': its mode does not let this user open it for reading and writing (see ls -l /dev/shm${name})`);
    case 'ENOSPC':
      return withHint(error, `no room for ${size} bytes of shared memory segment '${name}' in /dev/shm (a tmpfs: see df -h /dev/shm; in Docker raise --shm-size)`);
    case 'ENOMEM':
      return withHint(error, `cannot map ${size} bytes of shared memory segment '${name}': out of address space or memory (ulimit -v)`);
    case 'EMFILE':
    case 'ENFILE':
      return withHint(error, `cannot open shared memory segment '${name}': too many open descriptors (ulimit -n)`);
    default:
      return withHint(error, `shared memory segment '${name}': ${error.message}`);
  }
}

export class SharedMemorySegment implements Disposable {
  /** The segment's name, with its leading '/'. */
  readonly name: string;
  /** Bytes mapped: the whole segment as it was when opened. */
  readonly size: number;
  #buffer: Buffer | null;

  constructor(name: string, options: SharedMemorySegmentOptions = {}) {
    this.name = validateName(name);
    const { create = false, exclusive = false, mode = 0o600, size, reserve = false } = options;
    if (exclusive && !create) throw new ValueError('exclusive: true needs create: true (O_EXCL must be combined with O_CREAT)');
    const wanted = size === undefined ? undefined : checkSize(size);
    const { O_RDWR, O_CREAT, O_EXCL } = native.shmFlags;
    const oflag = O_RDWR | (create ? O_CREAT : 0) | (exclusive ? O_EXCL : 0);
    let fd: number;
    try {
      fd = native.shmOpen(this.name, oflag, checkMode(mode));
    } catch (error) {
      throw explained(error, this.name, wanted);
    }
    try {
      let actual = fstatSync(fd).size;
      if (wanted !== undefined && actual < wanted) {
        ftruncateSync(fd, wanted);
        actual = wanted;
      }
      if (actual > bufferConstants.MAX_LENGTH) {
        throw new RangeError(`shared memory segment '${this.name}' is ${actual} bytes; this Node.js maps at most ${bufferConstants.MAX_LENGTH} bytes as one Buffer`);
      }
      if (reserve) native.fallocate(fd, actual);
      this.#buffer = native.mmap(fd, actual);
      this.size = actual;
    } catch (error) {
      // A segment this call made and could not set up is of no use to anyone.
      if (exclusive) native.shmUnlink(this.name);
      throw explained(error, this.name, wanted);
    } finally {
      // The mapping keeps the memory; the descriptor is not needed any more.
      closeSync(fd);
    }
    // Moving the memory to a Worker would leave close() unmapping it under the Worker's feet.
    markAsUntransferable(this.#buffer.buffer);
  }

  /**
   * The mapped bytes: writes are seen by every process mapping the segment at
   * once. After close() this getter throws, and Buffers obtained earlier
   * (and their views) are zero-length.
   */
  get buffer(): Buffer {
    if (this.#buffer === null) throw new ValueError(`shared memory segment '${this.name}' is closed`);
    return this.#buffer;
  }

  get closed(): boolean {
    return this.#buffer === null;
  }

  /** Unmaps the segment in this process (idempotent). The segment itself lives on until unlinked. */
  close(): void {
    if (this.#buffer === null) return;
    native.munmap(this.#buffer);
    this.#buffer = null;
  }

  /** Removes the name; mappings already made, here and elsewhere, stay usable. */
  unlink(): void {
    SharedMemorySegment.unlink(this.name);
  }

  static unlink(name: string): void {
    validateName(name);
    try {
      native.shmUnlink(name);
    } catch (error) {
      if (isOSError(error, 'ENOENT')) throw withHint(error, `no shared memory segment named '${name}' exists (already unlinked?)`);
      throw explained(error, name);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
