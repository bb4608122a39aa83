// Queue throughput and ping-pong latency between two processes, against the
// references measured in the same run: raw C mq_send/mq_receive (a tiny C
// program compiled here), CPython's multiprocessing.Queue and Node's fork
// channel.
//   node dist/bench/queue.js [--json FILE] [--quick]
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Queue, type CodecName } from '../lib/queues.js';
import { writeReport, type Target } from './report.js';

const self = fileURLToPath(import.meta.url);
const QUICK = process.argv.includes('--quick');
const SMALL = QUICK ? 50_000 : 200_000;
const ROUND_TRIPS = QUICK ? 2_000 : 10_000;

const dict = (i: number) => ({ id: i, name: 'alex', score: 1.5 });

/** The codec objects are measured with: pickle once lib/pickle.ts has it, v8 until then. */
function objectCodec(): CodecName {
  const probe = new Queue(0, { codec: 'pickle' });
  try {
    probe.put(1);
    probe.get();
    return 'pickle';
  } catch {
    return 'v8';
  } finally {
    probe.close();
  }
}

// ---- child roles ----------------------------------------------------------
async function child(role: string, args: string[]): Promise<void> {
  if (role === '--consume') {
    const [name, codec, count] = [args[0]!, args[1] as CodecName, Number(args[2])];
    const queue = Queue.open(name, { codec });
    console.log('ready');
    for (let i = 0; i < count; i++) queue.get();
    console.log('done');
    queue.close();
  } else if (role === '--echo') {
    const [from, to, codec, count] = [Queue.open(args[0]!, { codec: args[2] as CodecName }), Queue.open(args[1]!, { codec: args[2] as CodecName }), args[2], Number(args[3])];
    void codec;
    console.log('ready');
    for (let i = 0; i < count; i++) to.put(from.get());
    from.close();
    to.close();
    to.join_thread();
  } else if (role === '--fork-consume') {
    let left = Number(args[0]);
    process.on('message', () => {
      if (--left === 0) process.send!('done', () => process.exit(0));
    });
    process.send!('ready');
  } else if (role === '--fork-echo') {
    let left = Number(args[0]);
    process.on('message', (message) => process.send!(message, () => { if (--left === 0) process.exit(0); }));
    process.send!('ready');
  }
}

// ---- helpers --------------------------------------------------------------
function lines(process: ChildProcess): AsyncIterator<string> {
  return createInterface({ input: process.stdout! })[Symbol.asyncIterator]();
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

interface Row {
  case: string;
  ours: number;
  unit: string;
  reference?: string;
  referenceValue?: number;
}

async function throughput(codec: CodecName, batch: boolean, make: (i: number) => unknown, count: number): Promise<number> {
  const name = `/pmp-bench-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const queue = new Queue(0, { name, codec, batch });
  try {
    const consumer = spawn(process.execPath, [self, '--consume', name, codec, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const output = lines(consumer);
    await output.next();
    const start = performance.now();
    for (let i = 0; i < count; i++) queue.put(make(i));
    await output.next();
    return count / ((performance.now() - start) / 1000);
  } finally {
    queue.close();
    Queue.unlink(name);
  }
}

async function pingPong(codec: CodecName, asynchronous: boolean): Promise<number[]> {
  const names = [0, 1].map((i) => `/pmp-bench-${process.pid}-pp${i}${asynchronous ? 'a' : 's'}`);
  const [out, back] = names.map((name) => new Queue(0, { name, codec, batch: false }));
  try {
    const echo = spawn(process.execPath, [self, '--echo', names[0]!, names[1]!, codec, String(ROUND_TRIPS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await lines(echo).next();
    const latencies: number[] = [];
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const start = performance.now();
      out!.put(i);
      if (asynchronous) await back!.getAsync();
      else back!.get();
      latencies.push((performance.now() - start) * 1000);
    }
    return latencies.sort((a, b) => a - b);
  } finally {
    out!.close();
    back!.close();
    for (const name of names) Queue.unlink(name);
  }
}

const C_SOURCE = String.raw`
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cmp(const void* a, const void* b) { double x = *(double*)a, y = *(double*)b; return x < y ? -1 : x > y; }
int main(int argc, char** argv) {
  long count = atol(argv[2]), trips = atol(argv[3]);
  char a[256], b[256], buf[8192];
  snprintf(a, sizeof a, "%s-a", argv[1]); snprintf(b, sizeof b, "%s-b", argv[1]);
  struct mq_attr attr = {0, 10, 8192, 0};
  mqd_t qa = mq_open(a, O_RDWR | O_CREAT, 0600, &attr), qb = mq_open(b, O_RDWR | O_CREAT, 0600, &attr);
  if (qa < 0 || qb < 0) { perror("mq_open"); return 1; }
  memset(buf, 1, sizeof buf);
  double start = now();
  if (fork() == 0) { for (long i = 0; i < count; i++) mq_receive(qa, buf, 8192, 0); _exit(0); }
  for (long i = 0; i < count; i++) mq_send(qa, buf, 64, 0);
  wait(0);
  printf("%f\n", count / (now() - start));
  if (fork() == 0) { for (long i = 0; i < trips; i++) { ssize_t n = mq_receive(qa, buf, 8192, 0); mq_send(qb, buf, n, 0); } _exit(0); }
  double* lat = malloc(sizeof(double) * trips);
  for (long i = 0; i < trips; i++) { double t = now(); mq_send(qa, buf, 16, 0); mq_receive(qb, buf, 8192, 0); lat[i] = (now() - t) * 1e6; }
  wait(0);
  qsort(lat, trips, sizeof(double), cmp);
  printf("%f %f\n", lat[trips / 2], lat[trips * 99 / 100]);
  mq_unlink(a); mq_unlink(b);
  return 0;
}`;

function cReference(): { rate: number; p50: number; p99: number } {
  const dir = mkdtempSync(join(tmpdir(), 'pmp-bench-'));
  try {
    writeFileSync(join(dir, 'mq.c'), C_SOURCE);
    execFileSync('cc', ['-O2', '-o', join(dir, 'mq'), join(dir, 'mq.c'), '-lrt']);
    const [rate, latency] = execFileSync(join(dir, 'mq'), [`/pmp-bench-${process.pid}-c`, String(SMALL * 4), String(ROUND_TRIPS)], { encoding: 'utf8' }).trim().split('\n');
    const [p50, p99] = latency!.split(' ').map(Number);
    return { rate: Number(rate), p50: p50!, p99: p99! };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function cpythonReference(): { rate: number; p50: number; p99: number } {
  const script = `
import multiprocessing as mp, time, sys
def consume(q, n):
    for _ in range(n): q.get()
def echo(a, b, n):
    for _ in range(n): b.put(a.get())
if __name__ == '__main__':
    n, trips = ${SMALL}, ${ROUND_TRIPS}
    q = mp.Queue()
    p = mp.Process(target=consume, args=(q, n)); p.start()
    start = time.perf_counter()
    for i in range(n): q.put({'id': i, 'name': 'alex', 'score': 1.5})
    p.join()
    rate = n / (time.perf_counter() - start)
    a, b = mp.Queue(), mp.Queue()
    p = mp.Process(target=echo, args=(a, b, trips)); p.start()
    lat = []
    for i in range(trips):
        t = time.perf_counter(); a.put(i); b.get(); lat.append((time.perf_counter() - t) * 1e6)
    p.join()
    lat.sort()
    print(rate, lat[trips // 2], lat[trips * 99 // 100])
`;
  const [rate, p50, p99] = execFileSync('python3', ['-c', script], { encoding: 'utf8' }).trim().split(' ').map(Number);
  return { rate: rate!, p50: p50!, p99: p99! };
}

async function forkReference(): Promise<{ rate: number; p50: number; p99: number }> {
  const consumer = fork(self, ['--fork-consume', String(SMALL)]);
  await new Promise((resolve) => consumer.once('message', resolve));
  let start = performance.now();
  const done = new Promise((resolve) => consumer.once('message', resolve));
  for (let i = 0; i < SMALL; i++) consumer.send(dict(i));
  await done;
  const rate = SMALL / ((performance.now() - start) / 1000);
  const echo = fork(self, ['--fork-echo', String(ROUND_TRIPS)]);
  await new Promise((resolve) => echo.once('message', resolve));
  const latencies: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    start = performance.now();
    const back = new Promise((resolve) => echo.once('message', resolve));
    echo.send(i);
    await back;
    latencies.push((performance.now() - start) * 1000);
  }
  latencies.sort((a, b) => a - b);
  return { rate, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

async function main(): Promise<void> {
  const codec = objectCodec();
  const c = cReference();
  const cpython = cpythonReference();
  const node = await forkReference();
  const rows: Row[] = [];
  rows.push({ case: `small dicts, batched (${codec})`, ours: await throughput(codec, true, dict, SMALL), unit: 'objects/s', reference: 'CPython mp.Queue', referenceValue: cpython.rate });
  rows.push({ case: `small dicts, one per message (${codec})`, ours: await throughput(codec, false, dict, SMALL), unit: 'objects/s', reference: 'Node fork channel', referenceValue: node.rate });
  const b64 = Buffer.alloc(64, 1);
  rows.push({ case: '64 B Buffers (raw)', ours: await throughput('raw', false, () => b64, SMALL * 2), unit: 'messages/s', reference: 'C mq 64 B', referenceValue: c.rate });
  const b4k = Buffer.alloc(4096, 1);
  const rate4k = await throughput(codec, false, () => b4k, SMALL / 2);
  rows.push({ case: `4 KiB Buffers (${codec})`, ours: rate4k * 4096 / 1e6, unit: 'MB/s' });
  const b1m = Buffer.alloc(1 << 20, 1);
  const rate1m = await throughput(codec, false, () => b1m, QUICK ? 200 : 1000);
  rows.push({ case: `1 MiB Buffers (${codec}, shared memory)`, ours: rate1m * (1 << 20) / 1e6, unit: 'MB/s' });
  const sync = await pingPong(codec, false);
  const asyncLatencies = await pingPong(codec, true);
  rows.push({ case: 'ping-pong p50, sync get', ours: percentile(sync, 0.5), unit: 'µs', reference: 'C mq p50', referenceValue: c.p50 });
  rows.push({ case: 'ping-pong p99, sync get', ours: percentile(sync, 0.99), unit: 'µs', reference: 'C mq p99', referenceValue: c.p99 });
  rows.push({ case: 'ping-pong p50, getAsync', ours: percentile(asyncLatencies, 0.5), unit: 'µs', reference: 'C mq p50', referenceValue: c.p50 });
  rows.push({ case: 'ping-pong p99, getAsync', ours: percentile(asyncLatencies, 0.99), unit: 'µs', reference: 'C mq p99', referenceValue: c.p99 });
  console.log(`Queue benchmark, ${new Date().toISOString()}, ${QUICK ? 'quick' : 'full'} run`);
  console.log('| case | ours | unit | reference | reference value | ours / reference |');
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) {
    const ratio = row.referenceValue === undefined ? '' : (row.ours / row.referenceValue).toFixed(2);
    console.log(`| ${row.case} | ${Math.round(row.ours).toLocaleString('en')} | ${row.unit} | ${row.reference ?? ''} | ${row.referenceValue === undefined ? '' : Math.round(row.referenceValue).toLocaleString('en')} | ${ratio} |`);
  }
  console.log(`references: C mq 64 B ${Math.round(c.rate)} msg/s, p50 ${c.p50.toFixed(1)} µs, p99 ${c.p99.toFixed(1)} µs; CPython mp.Queue ${Math.round(cpython.rate)} dicts/s, p50 ${cpython.p50.toFixed(1)} µs; Node fork ${Math.round(node.rate)} dicts/s, p50 ${node.p50.toFixed(1)} µs`);
  // Every reference measured for a case, and the target for it.
  const allReferences: Record<string, Record<string, number>> = {
    'small dicts': { 'CPython mp.Queue': cpython.rate, 'Node fork channel': node.rate },
    'ping-pong p50': { 'C mq': c.p50, 'CPython mp.Queue': cpython.p50, 'Node fork channel': node.p50 },
    'ping-pong p99': { 'C mq': c.p99, 'CPython mp.Queue': cpython.p99, 'Node fork channel': node.p99 },
  };
  const targets: [RegExp, (value: number) => Target][] = [
    [/batched/, (v) => ({ text: '≥ 1.2 M/s', met: v >= 1_200_000 })],
    [/one per message/, (v) => ({ text: '≥ 400 k/s', met: v >= 400_000 })],
    [/64 B/, (v) => ({ text: '≥ 0.6× C', met: v >= 0.6 * c.rate })],
    [/1 MiB/, (v) => ({ text: '≥ 2 GB/s', met: v >= 2000 })],
    [/p50, sync/, (v) => ({ text: '≤ 1.5× C', met: v <= 1.5 * c.p50 })],
    [/p50, getAsync/, (v) => ({ text: '≤ 2.5× C', met: v <= 2.5 * c.p50 })],
  ];
  writeReport('queue', rows.map((row) => ({
    name: `queue ${row.case}`, unit: row.unit, value: row.ours, higherIsBetter: row.unit !== 'µs',
    references: Object.entries(allReferences).find(([prefix]) => row.case.startsWith(prefix))?.[1]
      ?? (row.reference === undefined ? {} : { [row.reference]: row.referenceValue! }),
    target: targets.find(([pattern]) => pattern.test(row.case))?.[1](row.ours),
  })));
}

const role = process.argv[2];
if (role?.startsWith('--') && role !== '--json' && role !== '--quick') await child(role, process.argv.slice(3));
else await main();
