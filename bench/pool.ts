// Pool.map of 100 000 trivial tasks (chunksize 1, and the default chunksize)
// against CPython's multiprocessing.Pool and piscina's worker-thread pool,
// measured in the same run, same worker count. Best of --repeat runs.
//   node dist/bench/pool.js [--json FILE] [--quick] [--workers N] [--repeat N]
import { execFileSync } from 'node:child_process';
import { isMainThread } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Pool } from '../lib/pool.js';
import { writeReport } from './report.js';

export function square(x: number): number {
  return x * x;
}

/** piscina's task for a chunk: its pool has no chunksize, so the chunk is the task. */
export function squareChunk(xs: number[]): number[] {
  return xs.map(square);
}

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

const TASKS = process.argv.includes('--quick') ? 20_000 : 100_000;
const WORKERS = option('--workers', 2);
const REPEAT = option('--repeat', 3);
const inputs = [...Array(TASKS).keys()];
const autoChunk = Math.ceil(TASKS / (WORKERS * 4));  // CPython's default chunksize for map

type Timings = Record<'chunk1' | 'auto', number>;

async function best(run: () => unknown): Promise<number> {
  let fastest = Infinity;
  for (let i = 0; i < REPEAT; i++) {
    const start = performance.now();
    await run();
    fastest = Math.min(fastest, performance.now() - start);
  }
  return fastest;
}

async function ours(): Promise<Timings> {
  const pool = new Pool(WORKERS, { module: import.meta.url });
  pool.map(square, [...Array(WORKERS * 4).keys()], 1);  // the workers are up
  const check = pool.map(square, inputs, 1);
  if (check[TASKS - 1] !== square(TASKS - 1)) throw new Error('wrong result');
  const result = { chunk1: await best(() => pool.map(square, inputs, 1)), auto: await best(() => pool.map(square, inputs)) };
  pool.close();
  pool.join();
  return result;
}

function cpython(): Timings {
  const script = `
import json, multiprocessing, time
def square(x): return x * x
if __name__ == '__main__':
    with multiprocessing.Pool(${WORKERS}) as pool:
        pool.map(square, range(${WORKERS * 4}), 1)
        def best(chunksize):
            times = []
            for _ in range(${REPEAT}):
                start = time.perf_counter(); pool.map(square, range(${TASKS}), chunksize); times.append(time.perf_counter() - start)
            return min(times) * 1000
        print(json.dumps({'chunk1': best(1), 'auto': best(None)}))
`;
  return JSON.parse(execFileSync('python3', ['-c', script], { encoding: 'utf8' }));
}

async function piscina(): Promise<Timings | null> {
  let Piscina: typeof import('piscina').Piscina;
  try {
    ({ Piscina } = await import('piscina'));
  } catch {
    return null;  // a devDependency: absent in an installed package
  }
  const pool = new Piscina({ filename: import.meta.url, minThreads: WORKERS, maxThreads: WORKERS });
  await Promise.all([...Array(WORKERS * 4).keys()].map((x) => pool.run(x, { name: 'square' })));
  const chunks: number[][] = [];
  for (let i = 0; i < TASKS; i += autoChunk) chunks.push(inputs.slice(i, i + autoChunk));
  const result = {
    chunk1: await best(() => Promise.all(inputs.map((x) => pool.run(x, { name: 'square' })))),
    auto: await best(async () => (await Promise.all(chunks.map((chunk) => pool.run(chunk, { name: 'squareChunk' })))).flat()),
  };
  await pool.destroy();
  return result;
}

function table(results: { ours: Timings; cpython: Timings; piscina: Timings | null }): string {
  const rows = [['workload', 'posix-multiprocessing', 'CPython Pool', 'vs CPython', 'piscina (threads)', 'vs piscina']];
  for (const [key, label] of [['chunk1', `map ${TASKS} tasks, chunksize 1`], ['auto', `map ${TASKS} tasks, chunksize ${autoChunk} (default)`]] as const) {
    const mine = results.ours[key];
    const theirs = results.cpython[key];
    const threads = results.piscina?.[key];
    rows.push([label, `${mine.toFixed(0)} ms`, `${theirs.toFixed(0)} ms`, `${(theirs / mine).toFixed(2)}x`,
      threads === undefined ? 'n/a' : `${threads.toFixed(0)} ms`, threads === undefined ? 'n/a' : `${(threads / mine).toFixed(2)}x`]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join('  ')).join('\n');
}

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = { ours: await ours(), cpython: cpython(), piscina: await piscina() };
  console.log(`Pool(${WORKERS}).map of trivial tasks (x * x), best of ${REPEAT}; "vs" = their time / ours (higher is better for us)`);
  console.log(table(results));
  const tasksPerSecond = (ms: number) => TASKS / (ms / 1000);
  writeReport('pool', (['chunk1', 'auto'] as const).map((key) => {
    const references: Record<string, number> = { 'CPython Pool': tasksPerSecond(results.cpython[key]) };
    if (results.piscina) references['piscina (threads)'] = tasksPerSecond(results.piscina[key]);
    const value = tasksPerSecond(results.ours[key]);
    return { name: `Pool(${WORKERS}).map, chunksize ${key === 'chunk1' ? 1 : `${autoChunk} (default)`}`, unit: 'tasks/s', value, higherIsBetter: true,
      references, target: { text: '≥ 3× CPython', met: value >= 3 * references['CPython Pool']! } };
  }));
}
