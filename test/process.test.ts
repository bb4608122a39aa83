// Process with real child processes: exit codes, signals, arguments, names,
// daemonic children outliving nothing, and CPython's errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deserialize } from 'node:v8';
import {
  AssertionError, Event, JoinableQueue, Lock, Pipe, Process, Queue, Value, ValueError, active_children, cpu_count,
  current_process, parent_process,
} from '../lib/index.js';
import { finished } from './helpers.js';

const targets = new URL('./fixtures/process_targets.js', import.meta.url);
const targetsPath = targets.pathname;

function tempFile(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmp-proc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'out');
}

/** Whether a process runs (a zombie waiting for its reaper does not). */
function pidAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function stopLater(t: { after(fn: () => void): void }, p: Process): void {
  t.after(() => {
    try {
      p.kill();
      p.join();
    } catch (error) {
      if (!(error instanceof ValueError)) throw error;  // closed: it had ended
    }
  });
}

test('the main process', () => {
  const me = current_process();
  assert.equal(me.name, 'MainProcess');
  assert.equal(me.pid, process.pid);
  assert.equal(me.daemon, false);
  assert.equal(me.is_alive(), true);
  assert.equal(me.authkey.length, 32);
  assert.equal(parent_process(), null);
  assert.ok(cpu_count() >= 1);
});

test('a target gets its arguments and knows itself and its parent', (t) => {
  const file = tempFile(t);
  const args = [file, null, true, false, 0, -7, 2 ** 53 - 1, 1.5, -0.25, 'héllo ☃', '', [1, [2, 'x']], { a: 1, b: [null, 'c'] }, Buffer.from([0, 255])];
  const p = new Process({ module: targets, target: 'record', args, kwargs: { key: 'word' } });
  assert.match(p.name, /^Process-\d+$/);
  assert.equal(p.pid, null);
  assert.equal(p.exitcode, null);
  assert.equal(p.is_alive(), false);
  p.start();
  assert.ok(typeof p.pid === 'number' && p.pid > 0);
  p.join();
  assert.equal(p.exitcode, 0);
  assert.equal(p.is_alive(), false);
  const seen = deserialize(fs.readFileSync(file));
  // A plain object crosses as a dict: pickle gives it back as a Map.
  const object = seen.args.at(-3);
  seen.args[seen.args.length - 3] = object instanceof Map ? Object.fromEntries(object) : object;
  assert.deepEqual(seen.args.slice(0, -2), args.slice(1, -1));
  assert.deepEqual(Buffer.from(seen.args.at(-2)), Buffer.from([0, 255]));
  assert.deepEqual(seen.args.at(-1), { key: 'word' });
  assert.equal(seen.name, p.name);
  assert.equal(seen.pid, p.pid);
  assert.equal(seen.daemon, false);
  assert.deepEqual(seen.parent, { name: 'MainProcess', pid: process.pid, alive: true });
  p.close();
});

test('pipe ends, queues, locks, values and events in args arrive working', async (t) => {
  const [here, there] = Pipe();
  const q = new Queue();
  const jq = new JoinableQueue<number>();
  const lock = new Lock();
  const v = new Value('i', 1);
  const ev = new Event();
  t.after(() => {
    here.close();
    q.close();
    jq.close();
  });
  const p = new Process({ module: targets, target: 'useShared', args: [there, q, jq, lock, v, ev] });
  p.start();
  there.close();
  jq.put(41);
  assert.deepEqual(here.recv(), ['hello', p.pid]);
  here.send('echo');
  assert.equal(await q.getAsync({ timeout: 30 }), 'echo');
  assert.equal(await ev.waitAsync({ timeout: 30 }), true);
  await jq.joinAsync();
  await p.joinAsync();
  assert.equal(p.exitcode, 0);
  assert.equal(v.value, 42);
});

test('the target may be given as the exported function, and names nest as Python does', async (t) => {
  const file = tempFile(t);
  const { nested } = await import(targets.href);
  const p = new Process({ module: targetsPath, target: nested, args: [file], name: 'outer' });
  assert.equal(p.name, 'outer');
  p.start();
  await p.joinAsync();
  assert.equal(p.exitcode, 0);
  const seen = deserialize(fs.readFileSync(file));
  assert.match(seen.name, /^Process-\d+:1$/);
  assert.equal(seen.parent.name, 'outer');
});

test('exit codes: 0, process.exit(n), an uncaught exception, SIGTERM, SIGKILL', async (t) => {
  const cases: [string, unknown[], number][] = [['sleep', [0], 0], ['exitWith', [7], 7], ['exitWith', [0], 0]];
  for (const [target, args, code] of cases) {
    const p = new Process({ module: targets, target, args });
    p.start();
    p.join();
    assert.equal(p.exitcode, code, target);
  }
  const term = new Process({ module: targets, target: 'sleep', args: [60] });
  stopLater(t, term);
  term.start();
  term.join(0);
  term.join(-1);
  assert.equal(term.exitcode, null);
  assert.equal(term.is_alive(), true);
  term.terminate();
  term.join();
  assert.equal(term.exitcode, -15);
  assert.match(String(term), /stopped exitcode=-SIGTERM/);
  const kill = new Process({ module: targets, target: 'sleep', args: [60] });
  stopLater(t, kill);
  kill.start();
  kill.kill();
  await kill.joinAsync();
  assert.equal(kill.exitcode, -9);
});

test('an uncaught exception exits 1 with "Process <name>:" and the stack on stderr', async () => {
  for (const target of ['fail', 'failLater']) {
    const parent = spawn(process.execPath, [targetsPath, 'normal', 'exit', target, 'it went wrong'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const { code, stderr } = await finished(parent);
    assert.equal(code, 0);
    assert.match(stderr, /^Process Process-1:\n(RangeError|TypeError): it went wrong\n\s+at (fail|failLater) /);
  }
});

test('join(timeout) waits at most timeout seconds and blocks the thread', (t) => {
  const p = new Process({ module: targets, target: 'sleep', args: [0.3] });
  stopLater(t, p);
  p.start();
  let ticked = false;
  setImmediate(() => { ticked = true; });
  const start = performance.now();
  p.join(0.1);
  const waited = performance.now() - start;
  assert.ok(waited >= 95 && waited < 1000, `join(0.1) took ${waited} ms`);
  assert.equal(p.exitcode, null);
  p.join();
  assert.equal(p.exitcode, 0);
  assert.equal(ticked, false, 'the event loop ran during a synchronous join');
});

test('joinAsync honours its timeout and an AbortSignal', async (t) => {
  const p = new Process({ module: targets, target: 'sleep', args: [60] });
  stopLater(t, p);
  p.start();
  const start = performance.now();
  await p.joinAsync(0.1);
  assert.ok(performance.now() - start >= 95);
  assert.equal(p.is_alive(), true);
  const controller = new AbortController();
  const waiting = p.joinAsync({ signal: controller.signal });
  controller.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  p.terminate();
  await p.joinAsync({ timeout: 10 });
  assert.equal(p.exitcode, -15);
});

test("CPython's errors for misuse", async (t) => {
  const p = new Process({ module: targets, target: 'sleep', args: [60] });
  stopLater(t, p);
  assert.throws(() => p.join(), new AssertionError('can only join a started process'));
  assert.throws(() => p.sentinel, new ValueError('process not started'));
  assert.throws(() => { (p as { name: unknown }).name = 3; }, new AssertionError('name must be a string'));
  p.start();
  assert.ok(p.sentinel > 2);
  assert.throws(() => p.start(), new AssertionError('cannot start a process twice'));
  assert.throws(() => { p.daemon = true; }, new AssertionError('process has already started'));
  assert.throws(() => p.close(), new ValueError('Cannot close a process while it is still running. You should first call join() or terminate().'));
  assert.ok(active_children().includes(p));
  p.kill();
  p.join();
  assert.ok(!active_children().includes(p));
  p.close();
  p.close();
  for (const use of [() => p.is_alive(), () => p.join(), () => p.terminate(), () => p.exitcode, () => p.pid, () => p.start()]) {
    assert.throws(use, new ValueError('process object is closed'));
  }
  assert.match(p.name, /^Process-/);
  assert.throws(() => new Process({ target: 'sleep' }), TypeError);
  assert.throws(() => new Process({ module: targets, target: [() => {}][0] }), TypeError);
  const idle = new Process();
  idle.start();
  idle.join();
  assert.equal(idle.exitcode, 0);
});

test('a daemonic process may not have children; a missing export fails the child', () => {
  const daemon = new Process({ module: targets, target: 'startChild', daemon: true });
  daemon.start();
  daemon.join();
  assert.equal(daemon.exitcode, 1);
  const missing = new Process({ module: targets, target: 'noSuchFunction' });
  missing.start();
  missing.join();
  assert.equal(missing.exitcode, 1);
});

test('daemonic children end with their parent, even when it is killed with SIGKILL', async () => {
  for (const hold of ['hold', 'exit']) {
    const parent = spawn(process.execPath, [targetsPath, 'daemon', hold, 'sleep', '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (line) => resolve(Number(String(line)))));
    assert.ok(pid > 0);
    if (hold === 'hold') {
      assert.ok(pidAlive(pid));
      parent.kill('SIGKILL');
    }
    await finished(parent);
    const deadline = Date.now() + 5000;
    while (pidAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pidAlive(pid), false, `daemonic child ${pid} outlived its parent (${hold})`);
  }
});

test('a parent waits for its non-daemonic children before exiting', async () => {
  const parent = spawn(process.execPath, [targetsPath, 'normal', 'exit', 'sleep', '0.3'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const start = performance.now();
  const { code, stdout } = await finished(parent);
  assert.equal(code, 0);
  assert.ok(performance.now() - start >= 300);
  assert.equal(pidAlive(Number(stdout)), false);
});
