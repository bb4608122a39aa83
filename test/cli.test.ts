// Every pmp subcommand, run as a user runs it (a child process), with its
// output and exit code: 0 success, 1 the operation failed, 2 usage error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MessageQueue } from '../lib/posix/mqueue.js';
import { NamedSemaphore } from '../lib/posix/semaphore.js';
import { SharedMemorySegment } from '../lib/posix/shm.js';
import { ANONYMOUS_PREFIX } from '../lib/names.js';
import { python, testName } from './helpers.js';

const pmp = fileURLToPath(new URL('../../bin/pmp.js', import.meta.url));

function run(...args: string[]) {
  const result = spawnSync(process.execPath, [pmp, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function queue(t: { after(fn: () => void): void }, maxMessageSize = 1024): MessageQueue {
  const q = new MessageQueue(testName('cli'), { create: true, exclusive: true, maxMessages: 4, maxMessageSize });
  t.after(() => { q.close(); try { q.unlink(); } catch { /* removed by the test */ } });
  return q;
}

test('--help and no arguments print the commands; every command has --help', () => {
  for (const args of [[], ['--help'], ['help']]) {
    const { status, stdout } = run(...args);
    assert.equal(status, 0);
    assert.match(stdout, /usage: pmp <command>/);
    assert.match(stdout, /limits/);
  }
  for (const command of ['ls', 'stat', 'send', 'recv', 'rm', 'clean', 'limits', 'demo']) {
    const { status, stdout } = run(command, '--help');
    assert.equal(status, 0, command);
    assert.match(stdout, new RegExp(`usage: pmp ${command}`));
  }
});

test('usage errors exit 2 with one line saying what to do', () => {
  for (const args of [['frobnicate'], ['ls', '--bogus'], ['stat'], ['send', '/x'], ['recv', '/x', '--timeout', 'soon'],
    ['send', '/x', '1', '--codec', 'xml'], ['send', '/x', '1', '--priority', '-3'], ['rm']]) {
    const { status, stderr } = run(...args);
    assert.equal(status, 2, args.join(' '));
    assert.match(stderr, /^pmp: .+; run 'pmp --help'\n$/, args.join(' '));
  }
});

test('ls --json lists a queue with its messages, a semaphore with its value, a segment with its size', (t) => {
  const q = queue(t);
  q.send('one');
  q.send('two');
  using semaphore = new NamedSemaphore(testName('cli-sem'), { create: true, exclusive: true, initialValue: 3 });
  t.after(() => semaphore.unlink());
  using segment = new SharedMemorySegment(testName('cli-shm'), { create: true, exclusive: true, size: 4096 });
  t.after(() => segment.unlink());
  const { status, stdout } = run('ls', '--json');
  assert.equal(status, 0);
  const { objects, queuesVisible } = JSON.parse(stdout);
  const byName = new Map(objects.map((o: { name: string }) => [o.name, o]));
  assert.deepEqual(byName.get(semaphore.name), { kind: 'semaphore', name: semaphore.name, owner: 'root', mode: '0600', value: 3, orphan: false });
  assert.deepEqual(byName.get(segment.name), { kind: 'shm', name: segment.name, owner: 'root', mode: '0600', size: 4096, orphan: false });
  if (queuesVisible) {
    assert.deepEqual(byName.get(q.name), { kind: 'queue', name: q.name, owner: 'root', mode: '0600', size: 6, messages: 2, maxMessages: 4, maxMessageSize: 1024, orphan: false });
  }
  const table = run('ls');
  assert.equal(table.status, 0);
  assert.match(table.stdout, new RegExp(`semaphore\\s+${semaphore.name}\\s+root\\s+0600\\s+value 3`));
});

test('stat shows one object; a missing name exits 1', (t) => {
  using segment = new SharedMemorySegment(testName('cli-stat'), { create: true, exclusive: true, size: 100 });
  t.after(() => segment.unlink());
  const found = run('stat', segment.name.slice(1), '--json');
  assert.equal(found.status, 0);
  assert.equal(JSON.parse(found.stdout).size, 100);
  const missing = run('stat', '/pmp-test-no-such-object');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^pmp: nothing is named '\/pmp-test-no-such-object' \(pmp ls lists what exists\)\n$/);
});

test('send then recv with each codec; a pickle is exactly what CPython writes', (t) => {
  const q = queue(t);
  assert.equal(run('send', q.name, '{"id": 7, "tags": ["a"]}').status, 0);
  const pickled = q.receive({ timeout: 0 }).data;
  assert.equal(python(`import pickle,sys; sys.stdout.write(repr(pickle.loads(bytes.fromhex('${pickled.toString('hex')}'))))`), "{'id': 7, 'tags': ['a']}");
  assert.equal(run('send', q.name, 'plain words', '--codec', 'raw', '--priority', '5').status, 0);
  assert.equal(run('send', q.name, '[1, 2]', '--codec', 'json').status, 0);
  const first = run('recv', q.name, '--json', '--timeout', '0');
  assert.equal(first.status, 0, first.stderr);
  assert.deepEqual(JSON.parse(first.stdout), { priority: 5, bytes: 11, value: 'plain words' });
  const second = run('recv', q.name, '--decode', 'json', '--timeout', '0');
  assert.equal(second.stdout.trim(), '[ 1, 2 ]');
  const empty = run('recv', q.name, '--timeout', '0');
  assert.equal(empty.status, 1);
  assert.match(empty.stderr, /^pmp: .*empty/);
  const notJson = run('send', q.name, 'not json', '--codec', 'json');
  assert.equal(notJson.status, 1);
  assert.equal(q.currentMessages, 0, 'nothing is sent when the value does not encode');
});

test('recv shows a pickle a CPython process put on the queue', (t) => {
  const q = queue(t);
  q.send(Buffer.from(python(`import pickle,sys; sys.stdout.write(pickle.dumps({'answer': 42}, 4).hex())`), 'hex'));
  const { status, stdout } = run('recv', q.name, '--timeout', '0');
  assert.equal(status, 0);
  assert.match(stdout, /answer/);
  assert.match(stdout, /42/);
});

test('rm removes objects of every kind; a missing name exits 1 after removing the others', () => {
  const semaphore = new NamedSemaphore(testName('cli-rm'), { create: true, exclusive: true });
  semaphore.close();
  const q = new MessageQueue(testName('cli-rm'), { create: true, exclusive: true, maxMessages: 1, maxMessageSize: 8 });
  q.close();
  const result = run('rm', semaphore.name, '/pmp-test-no-such-object', q.name);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /nothing is named '\/pmp-test-no-such-object'/);
  assert.throws(() => new NamedSemaphore(semaphore.name), { code: 'ENOENT' });
  assert.throws(() => new MessageQueue(q.name), { code: 'ENOENT' });
});

test('clean removes the objects of a process that is gone, and only those', (t) => {
  const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
  const orphan = new NamedSemaphore(`/${ANONYMOUS_PREFIX}${gone}-cli`, { create: true, exclusive: true });
  orphan.close();
  const mine = new NamedSemaphore(`/${ANONYMOUS_PREFIX}${process.pid}-cli`, { create: true, exclusive: true });
  t.after(() => { mine.close(); mine.unlink(); });
  t.after(() => { try { NamedSemaphore.unlink(orphan.name); } catch { /* cleaned */ } });
  const dry = run('clean', '--dry-run', '--json');
  assert.deepEqual(JSON.parse(dry.stdout).filter((o: { name: string }) => o.name.endsWith('-cli')), [{ kind: 'semaphore', name: orphan.name, creatorPid: gone }]);
  assert.ok(new NamedSemaphore(orphan.name).close() === undefined, 'a dry run removes nothing');
  const { status, stdout } = run('clean');
  assert.equal(status, 0);
  assert.match(stdout, new RegExp(`removed semaphore ${orphan.name} \\(process ${gone} is gone\\)`));
  assert.throws(() => new NamedSemaphore(orphan.name), { code: 'ENOENT' });
  assert.doesNotThrow(() => new NamedSemaphore(mine.name).close(), 'a live process keeps its objects');
});

test('limits reports the kernel settings and this user\'s budget', () => {
  const { status, stdout } = run('limits', '--json');
  assert.equal(status, 0);
  const limits = JSON.parse(stdout);
  assert.equal(limits.msg_max, 10);
  assert.equal(limits.msgsize_max, 8192);
  assert.equal(limits.rlimit_msgqueue, 819200);
  assert.ok(limits.default_queue_bytes > 10 * 8192);
  const text = run('limits');
  assert.match(text.stdout, /sysctl -w fs\.mqueue\.msg_max/);
});

test('demo moves every job across real processes and leaves nothing behind', () => {
  const { status, stdout, stderr } = run('demo');
  assert.equal(status, 0, stderr);
  assert.match(stdout, /producer-1 put job 0/);
  assert.match(stdout, /consumer-\d got job \d from producer-\d/);
  assert.match(stdout, /50008 objects through the queue in [\d.]+ s: [\d,]+ objects\/s/);
});
