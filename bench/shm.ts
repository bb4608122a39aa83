// Shared memory speed: node dist/bench/shm.js [--json FILE]
// Each row sets this package against a reference measured in the same run:
// CPython's multiprocessing (same operation), or Node's own memory.
import { spawnSync } from 'node:child_process';
import { SharedMemory } from '../lib/shared_memory.js';
import { RawValue, Value } from '../lib/sharedctypes.js';
import { writeReport } from './report.js';

interface Row { what: string; ours: number; reference: string; theirs: number; unit: string }

function rate(count: number, run: () => void): number {
  const start = process.hrtime.bigint();
  run();
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

function python(code: string): number {
  const result = spawnSync('python3', ['-c', code], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(result.stderr);
  return Number(result.stdout.trim());
}

const N = 1_000_000;
const rows: Row[] = [];

{
  const value = Value('i', 0);
  const ours = rate(N, () => { for (let i = 0; i < N; i++) value.increment(); });
  const theirs = python(`
import time, multiprocessing as mp
v = mp.Value('i', 0)
n = ${N}
t = time.perf_counter()
for _ in range(n):
    with v.get_lock():
        v.value += 1
print(n / (time.perf_counter() - t))`);
  rows.push({ what: "Value('i') += 1 under its lock", ours, reference: 'CPython mp.Value', theirs, unit: 'ops/s' });
  value.close();
}

{
  const value = RawValue('i', 0);
  const view = value.view;
  const ours = rate(N, () => { for (let i = 0; i < N; i++) Atomics.add(view, 0, 1); });
  const theirs = python(`
import time, multiprocessing as mp
v = mp.RawValue('i', 0)
n = ${N}
t = time.perf_counter()
for _ in range(n):
    v.value += 1
print(n / (time.perf_counter() - t))`);
  rows.push({ what: "Atomics.add on RawValue('i').view", ours, reference: 'CPython RawValue += 1 (not atomic)', theirs, unit: 'ops/s' });
  value.close();
}

{
  const size = 64 * 1024 * 1024;
  const source = Buffer.alloc(size, 7);
  const shm = new SharedMemory({ create: true, size });
  const heap = Buffer.alloc(size);
  const rounds = 10;
  // Warm both up first: the first write to each page of a segment allocates it.
  source.copy(shm.buf);
  source.copy(heap);
  const ours = rate(rounds * size / 2 ** 30, () => { for (let i = 0; i < rounds; i++) source.copy(shm.buf); });
  const theirs = rate(rounds * size / 2 ** 30, () => { for (let i = 0; i < rounds; i++) source.copy(heap); });
  rows.push({ what: 'copy 64 MiB into SharedMemory.buf', ours, reference: 'the same copy into a heap Buffer', theirs, unit: 'GiB/s' });
  shm.close();
  shm.unlink();
}

const format = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
console.log('| what | ours | reference | reference value | ratio |');
console.log('|---|---|---|---|---|');
for (const row of rows) {
  console.log(`| ${row.what} | ${format(row.ours)} ${row.unit} | ${row.reference} | ${format(row.theirs)} ${row.unit} | ${(row.ours / row.theirs).toFixed(2)}× |`);
}
writeReport('shm', rows.map((row) => ({ name: row.what, unit: row.unit, value: row.ours, higherIsBetter: true, references: { [row.reference]: row.theirs } })));
