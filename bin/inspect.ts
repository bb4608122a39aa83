// pmp ls, stat, rm, clean, limits: what POSIX IPC objects exist, who owns
// them, whether their creator is still alive, and the kernel's queue limits.
import { readFileSync, statSync } from 'node:fs';
import { withMqueueDir, SHM_DIR } from '../lib/posix/inventory.js';
import { listKernelObjects } from '../lib/posix/inventory.js';
import { MessageQueue, inspectQueue } from '../lib/posix/mqueue.js';
import { NamedSemaphore } from '../lib/posix/semaphore.js';
import { SharedMemorySegment } from '../lib/posix/shm.js';
import { mqueueSetting, processLimit, queueBytes, queueUsage } from '../lib/posix/limits.js';
import { creatorPid } from '../lib/names.js';
import { isOSError } from '../lib/errors.js';

export type Kind = 'queue' | 'semaphore' | 'shm';

export interface ObjectInfo {
  kind: Kind;
  name: string;
  owner: string;
  mode: string;
  /** Bytes: the segment's size, or a queue's bytes of messages (QSIZE). */
  size?: number;
  messages?: number;
  maxMessages?: number;
  maxMessageSize?: number;
  value?: number;
  creatorPid?: number;
  /** The name says which process created it, and that process is gone. */
  orphan: boolean;
}

let users: Map<number, string> | undefined;
function userName(uid: number): string {
  users ??= new Map(readFileSync('/etc/passwd', 'utf8').split('\n').filter(Boolean)
    .map((line) => line.split(':')).map(([name, , id]) => [Number(id), name]));
  return users.get(uid) ?? String(uid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function describe(kind: Kind, name: string, file: string): ObjectInfo {
  const stats = statSync(file);
  const pid = creatorPid(name);
  return {
    kind, name, owner: userName(stats.uid), mode: `0${(stats.mode & 0o777).toString(8)}`,
    ...(pid === undefined ? {} : { creatorPid: pid }),
    orphan: pid !== undefined && !alive(pid),
  };
}

function queueInfo(dir: string, name: string): ObjectInfo {
  const file = `${dir}${name}`;
  const info = describe('queue', name, file);
  info.size = Number(/QSIZE:(\d+)/.exec(readFileSync(file, 'utf8'))?.[1]);
  try {
    using queue = new MessageQueue(name, { read: true, write: false });
    Object.assign(info, { messages: queue.currentMessages, maxMessages: queue.maxMessages, maxMessageSize: queue.maxMessageSize });
  } catch {
    // Not readable by this user: the file's facts are all there is.
  }
  return info;
}

function semaphoreInfo(name: string): ObjectInfo {
  const info = describe('semaphore', name, `${SHM_DIR}/sem.${name.slice(1)}`);
  try {
    using semaphore = new NamedSemaphore(name);
    info.value = semaphore.value;
  } catch {
    // Not readable by this user.
  }
  return info;
}

function segmentInfo(name: string): ObjectInfo {
  const info = describe('shm', name, `${SHM_DIR}${name}`);
  info.size = statSync(`${SHM_DIR}${name}`).size;
  return info;
}

export interface Inventory {
  objects: ObjectInfo[];
  /** False when no mqueue filesystem could be read, so queues are not listed. */
  queuesVisible: boolean;
}

/** The object's facts, or nothing if it was removed since it was listed. */
function ifStillThere(describeObject: () => ObjectInfo): ObjectInfo[] {
  try {
    return [describeObject()];
  } catch (error) {
    if (isOSError(error, 'ENOENT')) return [];
    throw error;
  }
}

export function inventory(): Inventory {
  const listed = listKernelObjects();
  const queues = withMqueueDir((dir) => (listed.queues ?? []).flatMap((name) => ifStillThere(() => queueInfo(dir, name)))) ?? [];
  return {
    queuesVisible: listed.queues !== null,
    objects: [
      ...queues,
      ...listed.semaphores.flatMap((name) => ifStillThere(() => semaphoreInfo(name))),
      ...listed.segments.flatMap((name) => ifStillThere(() => segmentInfo(name))),
    ],
  };
}

/** '/jobs' for 'jobs' or '/jobs' (CPython's shared memory names have no slash). */
export function posixName(name: string): string {
  return name.startsWith('/') ? name : `/${name}`;
}

export function find(name: string): ObjectInfo[] {
  const wanted = posixName(name);
  return inventory().objects.filter((object) => object.name === wanted);
}

const unlinkers: Record<Kind, (name: string) => void> = {
  queue: (name) => MessageQueue.unlink(name),
  semaphore: (name) => NamedSemaphore.unlink(name),
  shm: (name) => SharedMemorySegment.unlink(name),
};

/** Unlinks `name` of whichever kinds exist; the kinds removed (none: it did not exist). */
export function remove(name: string): Kind[] {
  const removed: Kind[] = [];
  for (const kind of ['queue', 'semaphore', 'shm'] as const) {
    try {
      unlinkers[kind](posixName(name));
      removed.push(kind);
    } catch (error) {
      if (!isOSError(error, 'ENOENT')) throw error;
    }
  }
  return removed;
}

/** Unlinks a listed object; one removed meanwhile is as good as removed. */
export function removeObject(object: ObjectInfo): void {
  try {
    unlinkers[object.kind](object.name);
  } catch (error) {
    if (!isOSError(error, 'ENOENT')) throw error;
  }
}

export interface Limits {
  msg_default: number;
  msgsize_default: number;
  msg_max: number;
  msgsize_max: number;
  queues_max: number;
  /** RLIMIT_MSGQUEUE of this process, bytes (null: unlimited). */
  rlimit_msgqueue: number | null;
  /** Bytes a queue of the default size costs against it. */
  default_queue_bytes: number;
  /** Bytes this user's queues use now (null: no mqueue filesystem to count them). */
  used_bytes: number | null;
  /** How many more default-size queues this user can create (null: unknown). */
  default_queues_left: number | null;
}

export function limits(): Limits {
  const budget = processLimit('Max msgqueue size');
  const perQueue = queueBytes(mqueueSetting('msg_default'), mqueueSetting('msgsize_default'));
  const usage = queueUsage(inspectQueue);
  const finite = budget !== undefined && budget !== Infinity ? budget : null;
  return {
    msg_default: mqueueSetting('msg_default'),
    msgsize_default: mqueueSetting('msgsize_default'),
    msg_max: mqueueSetting('msg_max'),
    msgsize_max: mqueueSetting('msgsize_max'),
    queues_max: mqueueSetting('queues_max'),
    rlimit_msgqueue: finite,
    default_queue_bytes: perQueue,
    used_bytes: usage?.bytes ?? null,
    default_queues_left: finite === null || usage === undefined ? null : Math.max(0, Math.floor((finite - usage.bytes) / perQueue)),
  };
}
