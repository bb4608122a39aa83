// bench/pickle: dumps+loads round trips of a small dict and of a 1 MiB Buffer,
// against v8.serialize/deserialize, JSON and CPython's C pickler, all measured
// in the same run. Usage: node dist/bench/pickle.js [--json FILE] [--seconds S] [--quick]
// (--quick: 0.2 s per measurement)
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import v8 from 'node:v8';
import { dumps, loads } from '../lib/pickle.js';
import { writeReport } from './report.js';

const args = process.argv.slice(2);
const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : args.includes('--quick') ? 0.2 : 1;

const small = { id: 1, name: 'item', tags: ['a', 'b'], v: 3.5 };
const big = randomBytes(1 << 20);

interface Row { workload: string; codec: string; opsPerSecond: number; bytes: number; mbPerSecond: number }

/** Round trips per second of `roundTrip`, over about `seconds` after a warm-up. */
function measure(roundTrip: () => void): number {
  const deadline = performance.now() + 200;
  while (performance.now() < deadline) roundTrip();
  let batch = 1;
  let operations = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < seconds * 1000) {
    for (let i = 0; i < batch; i++) roundTrip();
    operations += batch;
    elapsed = performance.now() - started;
    if (elapsed < 50) batch *= 2;
  }
  return operations / (elapsed / 1000);
}

let sink: unknown;
const rows: Row[] = [];
function add(workload: string, codec: string, bytes: number, roundTrip: () => void): void {
  const opsPerSecond = measure(roundTrip);
  rows.push({ workload, codec, opsPerSecond, bytes, mbPerSecond: (opsPerSecond * bytes) / 1e6 });
}

add('small dict', 'pickle (this package)', dumps(small).length, () => { sink = loads(dumps(small)); });
add('small dict', 'v8 serialize', v8.serialize(small).length, () => { sink = v8.deserialize(v8.serialize(small)); });
add('small dict', 'JSON', JSON.stringify(small).length, () => { sink = JSON.parse(JSON.stringify(small)); });
add('1 MiB Buffer', 'pickle (this package)', big.length, () => { sink = loads(dumps(big)); });
add('1 MiB Buffer', 'v8 serialize', big.length, () => { sink = v8.deserialize(v8.serialize(big)); });
add('1 MiB Buffer', 'JSON (base64 string)', big.length, () => { sink = Buffer.from(JSON.parse(JSON.stringify(big.toString('base64'))), 'base64'); });
void sink;

// CPython's C pickler, the same workloads and timing rule, in the same run.
const cpython = spawnSync('python3', ['-c', `
import pickle, time, os, json
small = {'id': 1, 'name': 'item', 'tags': ['a', 'b'], 'v': 3.5}
big = os.urandom(1 << 20)
def measure(fn, seconds=${seconds}):
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end: fn()
    n, batch, start = 0, 1, time.perf_counter()
    while True:
        for _ in range(batch): fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds: return n / elapsed
        if elapsed < 0.05: batch *= 2
print(json.dumps([measure(lambda: pickle.loads(pickle.dumps(small, 4))), measure(lambda: pickle.loads(pickle.dumps(big, 4)))]))
`], { encoding: 'utf8' });
if (cpython.status === 0) {
  const [smallOps, bigOps] = JSON.parse(cpython.stdout) as number[];
  rows.push({ workload: 'small dict', codec: 'CPython C pickler', opsPerSecond: smallOps, bytes: dumps(small).length, mbPerSecond: (smallOps * dumps(small).length) / 1e6 });
  rows.push({ workload: '1 MiB Buffer', codec: 'CPython C pickler', opsPerSecond: bigOps, bytes: big.length, mbPerSecond: (bigOps * big.length) / 1e6 });
} else {
  console.error(`python3 failed, no CPython reference: ${cpython.stderr}`);
}

const ours = new Map(rows.filter((r) => r.codec.startsWith('pickle')).map((r) => [r.workload, r.opsPerSecond]));
console.log('dumps+loads round trips (each row measured in this run)');
console.log(`${'workload'.padEnd(14)} ${'codec'.padEnd(24)} ${'round trips/s'.padStart(14)} ${'MB/s'.padStart(10)} ${'pickle ÷ this'.padStart(14)}`);
for (const row of rows) {
  const ratio = ours.get(row.workload)! / row.opsPerSecond;
  console.log(`${row.workload.padEnd(14)} ${row.codec.padEnd(24)} ${Math.round(row.opsPerSecond).toLocaleString('en').padStart(14)} ${row.mbPerSecond.toFixed(0).padStart(10)} ${ratio.toFixed(2).padStart(14)}`);
}
const smallOurs = ours.get('small dict')!;
const bigOurs = (ours.get('1 MiB Buffer')! * big.length) / 1e9;
console.log(`targets: small dict ${Math.round(smallOurs).toLocaleString('en')}/s (≥ 600,000: ${smallOurs >= 600_000 ? 'met' : 'NOT met'}); 1 MiB Buffer ${bigOurs.toFixed(2)} GB/s (≥ 2: ${bigOurs >= 2 ? 'met' : 'NOT met'})`);
const references = (workload: string, field: 'opsPerSecond' | 'mbPerSecond') =>
  Object.fromEntries(rows.filter((r) => r.workload === workload && !r.codec.startsWith('pickle')).map((r) => [r.codec, r[field]]));
writeReport('pickle', [
  { name: 'pickle small dict dumps+loads', unit: 'round trips/s', value: smallOurs, higherIsBetter: true,
    references: references('small dict', 'opsPerSecond'), target: { text: '≥ 600 k/s', met: smallOurs >= 600_000 } },
  { name: 'pickle 1 MiB Buffer dumps+loads', unit: 'MB/s', value: bigOurs * 1000, higherIsBetter: true,
    references: references('1 MiB Buffer', 'mbPerSecond'), target: { text: '≥ 2 GB/s', met: bigOurs >= 2 } },
]);
