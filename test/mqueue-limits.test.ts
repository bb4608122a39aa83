// The kernel's message queue limits, hit for real (never changing /proc/sys):
// each error names the limit, its current value and how to raise it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageQueue, queueBytes } from '../lib/posix.js';
import { testName } from './helpers.js';

const setting = (name: string) => Number(readFileSync(`/proc/sys/fs/mqueue/${name}`, 'utf8'));
const posix = fileURLToPath(new URL('../lib/posix.js', import.meta.url));

/** Creates queues until creating one fails; closes and unlinks all of them at once; returns the failure. */
function exhaust(options: { maxMessages?: number; maxMessageSize?: number }, attempts: number): { created: number; error?: NodeJS.ErrnoException } {
  const created: MessageQueue[] = [];
  try {
    for (let i = 0; i < attempts; i++) created.push(new MessageQueue(testName('limit'), { create: true, ...options }));
    return { created: created.length };
  } catch (error) {
    return { created: created.length, error: error as NodeJS.ErrnoException };
  } finally {
    for (const queue of created) {
      queue.close();
      queue.unlink();
    }
  }
}

test('maxMessages above msg_max names the limit, its value and the sysctl that raises it', (t) => {
  const msgMax = setting('msg_max');
  const { created, error } = exhaust({ maxMessages: msgMax + 1 }, 1);
  if (!error) return t.skip(`this process may exceed msg_max (CAP_SYS_RESOURCE); created ${created}`);
  assert.equal(error.code, 'EINVAL');
  assert.match(error.message, new RegExp(`maxMessages ${msgMax + 1} is above /proc/sys/fs/mqueue/msg_max = ${msgMax}`));
  assert.match(error.message, new RegExp(`sysctl -w fs.mqueue.msg_max=${msgMax + 1}`));
  assert.equal(error.syscall, 'mq_open');
});

test('maxMessageSize above msgsize_max names the limit, its value and the sysctl that raises it', (t) => {
  const msgsizeMax = setting('msgsize_max');
  const { error } = exhaust({ maxMessageSize: msgsizeMax + 1 }, 1);
  if (!error) return t.skip('this process may exceed msgsize_max (CAP_SYS_RESOURCE)');
  assert.equal(error.code, 'EINVAL');
  assert.match(error.message, new RegExp(`maxMessageSize ${msgsizeMax + 1} is above /proc/sys/fs/mqueue/msgsize_max = ${msgsizeMax}`));
  assert.match(error.message, /sysctl -w fs.mqueue.msgsize_max=/);
});

test('a queue costs its bytes of RLIMIT_MSGQUEUE as the kernel counts them', () => {
  // 10 messages of 8 KiB: 81920 bytes of messages, 48 bytes of header and 48 of priority tree per slot.
  assert.equal(queueBytes(10, 8192), 82880);
  assert.equal(Math.floor(819200 / queueBytes(10, 8192)), 9);
  assert.equal(queueBytes(1, 1), 97);
});

test('EMFILE from RLIMIT_MSGQUEUE says what a queue costs, the budget, what is in use and how to raise it', (t) => {
  // Holds this user's whole budget for a moment: everything is closed and unlinked at once.
  const { created, error } = exhaust({ maxMessages: 10, maxMessageSize: 8192 }, 40);
  if (!error) return t.skip(`created ${created} queues of 80 KiB without reaching RLIMIT_MSGQUEUE`);
  assert.equal(error.code, 'EMFILE');
  assert.ok(created <= 9, `created ${created} queues of 82880 bytes within 819200 bytes`);
  const budget = Number(/Max msgqueue size\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))![1]);
  assert.match(error.message, new RegExp(`costs 82880 bytes of this user's message queue budget, RLIMIT_MSGQUEUE = ${budget} bytes`));
  assert.match(error.message, /ulimit -q/);
  assert.match(error.message, /unlink queues no longer needed/);
  if (!/named queue\(s\) use \d+ bytes/.test(error.message)) t.diagnostic('no mqueue filesystem readable: usage not reported');
});

test('EMFILE from the descriptor limit (RLIMIT_NOFILE) is told apart from the queue budget', (t) => {
  const queue = new MessageQueue(testName('nofile'), { create: true, maxMessages: 1, maxMessageSize: 1 });
  t.after(() => { queue.close(); queue.unlink(); });
  const code = `import(${JSON.stringify(posix)}).then(({ MessageQueue }) => {
    const held = [];
    try { for (;;) held.push(new MessageQueue(${JSON.stringify(queue.name)})); }
    catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message, held: held.length })); }
  });`;
  const result = spawnSync('sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" -e '${code.replace(/'/g, `'\\''`)}'`], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const { code: errorCode, message, held } = JSON.parse(result.stdout);
  assert.equal(errorCode, 'EMFILE');
  assert.ok(held > 0 && held < 64);
  assert.match(message, /used all its descriptors \(RLIMIT_NOFILE, ulimit -n: 64\)/);
});

test('ENOSPC from queues_max names the system-wide limit and the sysctl that raises it', (t) => {
  const queuesMax = setting('queues_max');
  // Tiny queues (97 bytes each) reach queues_max long before the byte budget.
  const { created, error } = exhaust({ maxMessages: 1, maxMessageSize: 1 }, queuesMax + 1);
  if (!error) return t.skip(`created ${created} queues: this process may exceed queues_max (CAP_SYS_RESOURCE)`);
  assert.equal(error.code, 'ENOSPC');
  assert.ok(created <= queuesMax);
  assert.match(error.message, new RegExp(`system-wide limit of ${queuesMax} message queues \\(/proc/sys/fs/mqueue/queues_max\\)`));
  assert.match(error.message, new RegExp(`sysctl -w fs.mqueue.queues_max=${queuesMax * 2}`));
});

test('EACCES: a queue created with mode 0o600 cannot be opened by another user', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run a peer as another user');
  const queue = new MessageQueue(testName('private'), { create: true, maxMessages: 1, maxMessageSize: 1 });
  const readable = new MessageQueue(testName('readable'), { create: true, mode: 0o644, maxMessages: 1, maxMessageSize: 1 });
  t.after(() => { for (const q of [queue, readable]) { q.close(); q.unlink(); } });
  const code = `import(${JSON.stringify(posix)}).then(({ MessageQueue }) => {
    const attempt = (name, options) => { try { new MessageQueue(name, options).close(); return 'opened'; } catch (error) { return error.code + ': ' + error.message; } };
    console.log(JSON.stringify([attempt(${JSON.stringify(queue.name)}), attempt(${JSON.stringify(readable.name)}, { write: false }), attempt(${JSON.stringify(readable.name)})]));
  });`;
  const result = spawnSync(process.execPath, ['-e', code], { uid: 65534, gid: 65534, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const [privateQueue, readOnly, readWrite] = JSON.parse(result.stdout);
  assert.match(privateQueue, /^EACCES: cannot open message queue .*permission denied.*for reading and writing/);
  assert.equal(readOnly, 'opened');
  assert.match(readWrite, /^EACCES: /);
});
