// The kernel's limits on POSIX message queues, read live, and the errors
// that explain them: which limit was hit, its current value, and the command
// that raises it. Linux charges each queue's bytes to its creator's
// RLIMIT_MSGQUEUE (819200 bytes by default, root included unless it holds
// CAP_SYS_RESOURCE): about 9 queues of 10 messages of 8 KiB per user.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { withHint, type OSError } from '../errors.js';
import { withMqueueDir } from './inventory.js';

export const MQUEUE_SYSCTL_DIR = '/proc/sys/fs/mqueue';

export type MqueueSetting = 'msg_default' | 'msgsize_default' | 'msg_max' | 'msgsize_max' | 'queues_max';

/** Linux's built-in values, used when /proc cannot be read. */
const BUILT_IN: Record<MqueueSetting, number> = {
  msg_default: 10, msgsize_default: 8192, msg_max: 10, msgsize_max: 8192, queues_max: 256,
};

/** The current value of /proc/sys/fs/mqueue/<setting> (Linux's default when unreadable). */
export function mqueueSetting(setting: MqueueSetting): number {
  try {
    return Number(readFileSync(join(MQUEUE_SYSCTL_DIR, setting), 'utf8'));
  } catch {
    return BUILT_IN[setting];
  }
}

type ProcessLimit = 'Max open files' | 'Max msgqueue size';

function readProcessLimits(): Partial<Record<ProcessLimit, number>> {
  const limits: Partial<Record<ProcessLimit, number>> = {};
  try {
    for (const row of readFileSync('/proc/self/limits', 'utf8').split('\n')) {
      for (const label of ['Max open files', 'Max msgqueue size'] as const) {
        if (!row.startsWith(label)) continue;
        const soft = row.slice(label.length).trim().split(/\s+/)[0];
        limits[label] = soft === 'unlimited' ? Infinity : Number(soft);
      }
    }
  } catch {
    // Unreadable (no /proc, or no descriptor left to read it with).
  }
  return limits;
}

/** Read now, because a process out of descriptors cannot read them when it needs to explain. */
const limitsAtStart = readProcessLimits();

/** A soft resource limit of this process (from /proc/self/limits); Infinity when unlimited. */
export function processLimit(label: ProcessLimit): number | undefined {
  return readProcessLimits()[label] ?? limitsAtStart[label];
}

/** sizeof(struct msg_msg) and sizeof(struct posix_msg_tree_node) on 64-bit Linux. */
const MSG_HEADER_BYTES = 48;
const PRIORITY_NODE_BYTES = 48;
const MQ_PRIO_MAX = 32768;

/** The bytes a queue charges to RLIMIT_MSGQUEUE (ipc/mqueue.c, mqueue_get_inode). */
export function queueBytes(maxMessages: number, maxMessageSize: number): number {
  return maxMessages * (maxMessageSize + MSG_HEADER_BYTES) + Math.min(maxMessages, MQ_PRIO_MAX) * PRIORITY_NODE_BYTES;
}

export interface QueueUsage {
  queues: number;
  bytes: number;
}

/**
 * The queues owned by this user and the bytes they charge, when an mqueue
 * filesystem can be read (mounted at /dev/mqueue, or mountable here);
 * undefined otherwise.
 */
export function queueUsage(open: (name: string) => { maxMessages: number; maxMessageSize: number } | undefined): QueueUsage | undefined {
  const uid = process.getuid?.();
  const usage = withMqueueDir((dir) => {
    const total = { queues: 0, bytes: 0 };
    for (const file of readdirSync(dir)) {
      if (statSync(join(dir, file)).uid !== uid) continue;
      const attributes = open(`/${file}`);
      if (attributes === undefined) continue;
      total.queues++;
      total.bytes += queueBytes(attributes.maxMessages, attributes.maxMessageSize);
    }
    return total;
  });
  return usage ?? undefined;
}

export interface OpenRequest {
  name: string;
  create: boolean;
  /** 'reading', 'writing' or 'reading and writing'. */
  access: string;
  maxMessages: number;
  maxMessageSize: number;
  /** Attributes of an existing queue, to measure what this user's queues use. */
  inspect: (name: string) => { maxMessages: number; maxMessageSize: number } | undefined;
}

/** Whether this process has used up its descriptors (RLIMIT_NOFILE). */
function outOfDescriptors(): boolean {
  try {
    const open = readdirSync('/proc/self/fd').length;
    const limit = processLimit('Max open files');
    return limit !== undefined && open + 1 >= limit;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EMFILE';
  }
}

/** mq_open's error, with a message naming the limit hit, its value and how to raise it. */
export function explainOpenError(error: OSError, request: OpenRequest): OSError {
  const { name, create, maxMessages, maxMessageSize } = request;
  const what = `${create ? 'cannot create or open' : 'cannot open'} message queue '${name}'`;
  switch (error.code) {
    case 'ENOENT':
      return withHint(error, `${what}: no message queue has this name; pass { create: true } to create it`);
    case 'EEXIST':
      return withHint(error, `${what}: a message queue with this name already exists and { exclusive: true } was asked; open it without exclusive, or unlink it first (MessageQueue.unlink('${name}'))`);
    case 'EACCES':
      return withHint(error, `${what}: permission denied; the queue's mode, chosen by its creator (0o600 by default), does not let this user open it for ${request.access}`);
    case 'ENOSPC': {
      const queuesMax = mqueueSetting('queues_max');
      return withHint(error, `${what}: the system-wide limit of ${queuesMax} message queues (/proc/sys/fs/mqueue/queues_max) is reached; unlink queues no longer needed (pmp ls lists them; MessageQueue.unlink(name) removes one), or raise it as root: sysctl -w fs.mqueue.queues_max=${queuesMax * 2}`);
    }
    case 'EINVAL': {
      const msgMax = mqueueSetting('msg_max');
      const msgsizeMax = mqueueSetting('msgsize_max');
      const problems: string[] = [];
      if (maxMessages > msgMax) problems.push(`maxMessages ${maxMessages} is above /proc/sys/fs/mqueue/msg_max = ${msgMax} (raise it as root: sysctl -w fs.mqueue.msg_max=${maxMessages})`);
      if (maxMessageSize > msgsizeMax) problems.push(`maxMessageSize ${maxMessageSize} is above /proc/sys/fs/mqueue/msgsize_max = ${msgsizeMax} (raise it as root: sysctl -w fs.mqueue.msgsize_max=${maxMessageSize})`);
      if (problems.length === 0) problems.push(`the kernel rejected the name or the attributes (maxMessages ${maxMessages}, maxMessageSize ${maxMessageSize})`);
      return withHint(error, `${what}: ${problems.join('; ')}`);
    }
    case 'EMFILE': {
      // Opening an existing queue charges nothing: only creating can exceed RLIMIT_MSGQUEUE.
      if (!create || outOfDescriptors()) {
        return withHint(error, `${what}: this process has used all its descriptors (RLIMIT_NOFILE, ulimit -n: ${processLimit('Max open files') ?? 'unknown'}); close queues and files no longer needed, or raise the limit (ulimit -n)`);
      }
      const budget = processLimit('Max msgqueue size');
      const cost = queueBytes(maxMessages, maxMessageSize);
      const usage = queueUsage(request.inspect);
      const inUse = usage === undefined ? '' : `; this user's ${usage.queues} named queue(s) use ${usage.bytes} bytes (unlinked queues still open somewhere use more, unlisted)`;
      return withHint(error, `${what}: a queue of ${maxMessages} messages of ${maxMessageSize} bytes costs ${cost} bytes of this user's message queue budget, RLIMIT_MSGQUEUE = ${budget ?? 'unknown'} bytes (ulimit -q; about ${budget === undefined ? '?' : Math.floor(budget / queueBytes(10, 8192))} queues of 10 messages of 8 KiB)${inUse}. A queue is charged until it is unlinked and closed by every process: unlink queues no longer needed (pmp ls lists them; MessageQueue.unlink(name) removes one), create smaller ones (maxMessages, maxMessageSize), or raise the limit: ulimit -q <bytes> (as root) in the shell that starts node, LimitMSGQUEUE= in a systemd unit, or 'msgqueue' in /etc/security/limits.conf`);
    }
    case 'ENOSYS':
      return withHint(error, `${what}: this system has no POSIX message queues (Linux without CONFIG_POSIX_MQUEUE, or another kernel)`);
    default:
      return withHint(error, `${what}: ${error.message}`);
  }
}
