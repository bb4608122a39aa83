// pmp: list, inspect, send to, receive from and remove POSIX IPC objects;
// run the demo and the benchmarks. Exit codes: 0 success, 1 the operation
// failed, 2 usage error. Errors are one line saying what to do.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { find, inventory, limits, remove, removeObject, type ObjectInfo } from './inspect.js';
import { demo } from './demo.js';
import { CODECS, DECODINGS, display, receive, send, type Codec, type Decoding } from './messages.js';

class UsageError extends Error {}

const HELP: Record<string, string> = {
  '': `usage: pmp <command> [options]

commands:
  ls                 list message queues, named semaphores and shared memory
  stat NAME          show one object
  send NAME VALUE    put a value on a queue
  recv NAME          take messages off a queue and show them
  rm NAME...         remove objects
  clean              remove the objects of processes that are gone
  limits             the kernel's queue limits and this user's budget
  demo               producer/consumer across real processes
  bench [AREA]...    run the benchmarks

'pmp <command> --help' tells more. Exit codes: 0 success, 1 failed, 2 usage error.`,
  ls: `usage: pmp ls [--json]
Lists POSIX message queues (needs an mqueue filesystem: pmp tells how to mount
one), named semaphores and shared memory segments, with owner, mode, size and,
for queues, the messages waiting. "orphan" marks objects whose creating
process is gone.`,
  stat: 'usage: pmp stat NAME [--json]\nShows the object NAME (a queue, semaphore or shared memory; "/jobs" or "jobs").',
  send: `usage: pmp send NAME VALUE [--codec pickle|json|raw] [--priority N] [--timeout S]
Sends VALUE to the queue NAME. pickle (default) sends VALUE parsed as JSON
when it parses (42, [1, 2], {"a": 1}), else as a string; json sends the JSON
text; raw sends the UTF-8 bytes. Waits for room up to S seconds (default: forever).`,
  recv: `usage: pmp recv NAME [--follow] [--decode auto|pickle|json|raw|hex] [--timeout S] [--json]
Receives one message from the queue NAME (with --follow, every message until
interrupted) and shows it decoded. Waits up to S seconds (default: forever).`,
  rm: 'usage: pmp rm NAME...\nRemoves the queues, semaphores and shared memory segments with these names.',
  clean: `usage: pmp clean [--dry-run] [--json]
Removes the objects this library created for processes that are gone
(anonymous objects are named /pmp-<pid>-...).`,
  demo: `usage: pmp demo
Runs the classic producer/consumer across real processes: 2 producers, 2
consumers, a JoinableQueue and a sentinel per consumer; prints what moves and
a summary (objects, time, objects/s). Leaves nothing behind.`,
  limits: 'usage: pmp limits [--json]\nShows the kernel\'s message queue limits, this user\'s budget, and how to raise them.',
  bench: `usage: pmp bench [queue|pickle|lock|pipe|pool|shm|all]... [--quick] [--json FILE] [--svg FILE]
Runs the benchmarks (default: all), one after another, with the references
(C, CPython, Node) measured in the same run, and prints one table: our value,
each reference, how many times better ours is, and the target. lock is
synchronize, pipe is connection. --quick runs shorter; --json FILE writes the
numbers; --svg FILE draws the throughput chart. Needs a clone of the repository
(the scripts are not in the npm package), python3 and a C compiler.`,
};

interface Parsed { values: Record<string, string | boolean | undefined>; positionals: string[] }

function options(argv: string[], config: ParseArgsConfig['options'] = {}): Parsed {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...config } }) as Parsed;
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\.?\s*\n\s*/g, '; '));
  }
}

function seconds(text: string | undefined, what: string): number | null {
  if (text === undefined) return null;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new UsageError(`${what} must be a number of seconds, not '${text}'`);
  return value;
}

function oneOf<T extends string>(text: string | undefined, choices: readonly T[], fallback: T, what: string): T {
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) throw new UsageError(`${what} must be one of ${choices.join(', ')}, not '${text}'`);
  return text as T;
}

function table(objects: ObjectInfo[]): string {
  const rows = objects.map((o) => [o.kind, o.name, o.owner, o.mode,
    o.size === undefined ? '' : String(o.size),
    o.kind === 'queue' ? (o.messages === undefined ? '?' : `${o.messages}/${o.maxMessages}`) : o.kind === 'semaphore' ? `value ${o.value ?? '?'}` : '',
    o.orphan ? 'orphan' : '']);
  const header = ['KIND', 'NAME', 'OWNER', 'MODE', 'BYTES', 'MESSAGES', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

const MOUNT_HINT = 'queues are not listed: no mqueue filesystem is mounted; as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue';

const commands: Record<string, (argv: string[]) => number | Promise<number>> = {
  ls(argv) {
    const { values } = options(argv);
    const { objects, queuesVisible } = inventory();
    if (values.json) {
      console.log(JSON.stringify({ queuesVisible, objects }, null, 2));
    } else {
      if (!queuesVisible) console.error(`pmp: ${MOUNT_HINT}`);
      console.log(objects.length === 0 ? 'no POSIX IPC objects' : table(objects));
    }
    return 0;
  },
  stat(argv) {
    const { values, positionals } = options(argv);
    if (positionals.length !== 1) throw new UsageError('stat takes one NAME');
    const found = find(positionals[0]);
    if (found.length === 0) {
      console.error(`pmp: nothing is named '${positionals[0]}' (pmp ls lists what exists)`);
      return 1;
    }
    if (values.json) console.log(JSON.stringify(found.length === 1 ? found[0] : found, null, 2));
    else console.log(found.map((o) => Object.entries(o).map(([k, v]) => `${k.padEnd(15)}${String(v)}`).join('\n')).join('\n\n'));
    return 0;
  },
  send(argv) {
    const { values, positionals } = options(argv, { codec: { type: 'string' }, priority: { type: 'string' }, timeout: { type: 'string' } });
    if (positionals.length !== 2) throw new UsageError('send takes NAME and VALUE');
    const priority = values.priority === undefined ? 0 : Number(values.priority);
    if (!Number.isInteger(priority) || priority < 0) throw new UsageError(`--priority must be a whole number from 0, not '${values.priority}'`);
    send(positionals[0], positionals[1], {
      codec: oneOf<Codec>(values.codec as string | undefined, CODECS, 'pickle', '--codec'),
      priority, timeout: seconds(values.timeout as string | undefined, '--timeout'),
    });
    return 0;
  },
  async recv(argv) {
    const { values, positionals } = options(argv, { follow: { type: 'boolean', short: 'f' }, decode: { type: 'string' }, timeout: { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('recv takes one NAME');
    await receive(positionals[0], {
      decoding: oneOf<Decoding>(values.decode as string | undefined, DECODINGS, 'auto', '--decode'),
      timeout: seconds(values.timeout as string | undefined, '--timeout'), follow: Boolean(values.follow),
    }, (message) => console.log(values.json ? JSON.stringify(message, (_, v) => (typeof v === 'bigint' ? v.toString() : v)) : display(message.value)));
    return 0;
  },
  rm(argv) {
    const { positionals } = options(argv);
    if (positionals.length === 0) throw new UsageError('rm takes at least one NAME');
    let status = 0;
    for (const name of positionals) {
      if (remove(name).length === 0) {
        console.error(`pmp: nothing is named '${name}' (pmp ls lists what exists)`);
        status = 1;
      }
    }
    return status;
  },
  clean(argv) {
    const { values } = options(argv, { 'dry-run': { type: 'boolean', short: 'n' } });
    const orphans = inventory().objects.filter((o) => o.orphan);
    if (!values['dry-run']) orphans.forEach(removeObject);
    if (values.json) console.log(JSON.stringify(orphans.map(({ kind, name, creatorPid }) => ({ kind, name, creatorPid }))));
    else for (const o of orphans) console.log(`${values['dry-run'] ? 'would remove' : 'removed'} ${o.kind} ${o.name} (process ${o.creatorPid} is gone)`);
    return 0;
  },
  demo(argv) {
    options(argv);
    return demo();
  },
  async bench(argv) {
    const { values, positionals } = options(argv, { quick: { type: 'boolean' }, json: { type: 'string' }, svg: { type: 'string' } });
    const { AREAS, bench } = await import('./bench.js');
    const known = [...Object.keys(AREAS), 'all'];
    const unknown = positionals.find((area) => !known.includes(area));
    if (unknown !== undefined) throw new UsageError(`bench takes areas among ${known.join(', ')}, not '${unknown}'`);
    const areas = positionals.length === 0 || positionals.includes('all') ? Object.keys(AREAS) : [...new Set(positionals)];
    return bench(areas, { quick: Boolean(values.quick), json: values.json as string | undefined, svg: values.svg as string | undefined });
  },
  limits(argv) {
    const { values } = options(argv);
    const l = limits();
    if (values.json) {
      console.log(JSON.stringify(l, null, 2));
      return 0;
    }
    console.log(`/proc/sys/fs/mqueue/msg_default      ${l.msg_default} messages per new queue
/proc/sys/fs/mqueue/msgsize_default  ${l.msgsize_default} bytes per message in a new queue
/proc/sys/fs/mqueue/msg_max          ${l.msg_max} messages at most per queue
/proc/sys/fs/mqueue/msgsize_max      ${l.msgsize_max} bytes at most per message
/proc/sys/fs/mqueue/queues_max       ${l.queues_max} queues on the system
RLIMIT_MSGQUEUE (ulimit -q)          ${l.rlimit_msgqueue ?? 'unlimited'} bytes for this user's queues
a default queue costs                ${l.default_queue_bytes} bytes
this user's queues use               ${l.used_bytes ?? 'unknown (no mqueue filesystem)'} bytes
default queues this user can add     ${l.default_queues_left ?? 'unknown'}

To raise them (as root): sysctl -w fs.mqueue.msg_max=N (likewise msgsize_max,
queues_max; persist in /etc/sysctl.d/); ulimit -q BYTES in the shell that starts
node, LimitMSGQUEUE= in a systemd unit, or 'msgqueue' in /etc/security/limits.conf.`);
    return 0;
  },
};

async function main(argv: string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  if (command === '' || command === 'help' || command === '--help' || command === '-h') {
    console.log(HELP[rest[0] ?? ''] ?? HELP['']);
    return 0;
  }
  const run = commands[command];
  if (!run) throw new UsageError(`unknown command '${command}'`);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP[command]);
    return 0;
  }
  return run(rest);
}

main(process.argv.slice(2)).then((status) => { process.exitCode = status; }, (error: Error) => {
  if (error instanceof UsageError) {
    console.error(`pmp: ${error.message}; run 'pmp --help'`);
    process.exitCode = 2;
  } else {
    console.error(`pmp: ${error.message}`);
    process.exitCode = 1;
  }
});
