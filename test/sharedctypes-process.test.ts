// Value, Array, SharedMemory and ShareableList handed to real Process
// children as arguments: the children map the same memory (and the same lock).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Process } from '../lib/process.js';
import { SharedArray, Value } from '../lib/sharedctypes.js';
import { SharedMemory, ShareableList } from '../lib/shared_memory.js';

const targets = new URL('./fixtures/sharedctypes-targets.js', import.meta.url).href;

async function runAll(processes: Process[]): Promise<void> {
  processes.forEach((p) => p.start());
  for (const p of processes) {
    await p.joinAsync();
    assert.equal(p.exitcode, 0, `${p.name} exited with ${p.exitcode}`);
  }
}

test("8 processes add 1 to a Value('i') 10 000 times each under get_lock(): exactly 80 000", async (t) => {
  const counter = new Value('i', 0);
  t.after(() => counter.close());
  await runAll(Array.from({ length: 8 }, () => new Process({ module: targets, target: 'addLocked', args: [counter, 10_000] })));
  assert.equal(counter.value, 80_000);
});

test("Array('d', 1_000_000) filled in stripes by 4 processes", async (t) => {
  const array = SharedArray('d', 1_000_000);
  t.after(() => array.close());
  await runAll([0, 1, 2, 3].map((i) => new Process({ module: targets, target: 'fillStripe', args: [array, i, 4] })));
  const view = array.view;
  for (let i = 0; i < view.length; i++) {
    if (view[i] !== Math.floor(i / 250_000) * 1e6 + i) assert.fail(`element ${i} is ${view[i]}`);
  }
});

test('a SharedMemory block and a ShareableList reach a child attached to the same memory', async (t) => {
  const shm = new SharedMemory({ create: true, size: 64 });
  const list = new ShareableList(['parent', 2]);
  t.after(() => { shm.close(); shm.unlink(); list.close(); list.shm.unlink(); });
  await runAll([new Process({ module: targets, target: 'writeShared', args: [shm, list] })]);
  assert.equal(shm.buf.toString('latin1', 0, 14), 'from the child');
  assert.deepEqual([...list], ['child', 2]);
});

test("the README's shared memory example runs and prints what it says", () => {
  const example = new URL('../examples/shared_counter.js', import.meta.url).pathname;
  const result = spawnSync(process.execPath, [example], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), '4 999.999499999875');
});
