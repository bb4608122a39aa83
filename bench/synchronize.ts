// Uncontended acquire+release pairs per second and two-process ping-pong
// latency: this package against C sem_wait/sem_post (compiled here) and
// CPython's multiprocessing.Lock / Semaphore, measured in the same run.
//   node dist/bench/synchronize.js [--json FILE] [--quick]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lock, RLock, Semaphore } from '../lib/synchronize.js';
import { anonymousName } from '../lib/names.js';
import { writeReport, type Row } from './report.js';

const quick = process.argv.includes('--quick');
const PAIRS = quick ? 1_000_000 : 5_000_000;
const ROUND_TRIPS = quick ? 2_000 : 20_000;

interface Latency { p50: number; p99: number }

function percentiles(samples: number[]): Latency {
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(samples.length / 2)]!, p99: samples[Math.floor(samples.length * 0.99)]! };
}

// The ping-pong child: takes `ping`, gives `pong`, `count` times.
async function child(ping: string, pong: string, count: number, async: boolean): Promise<void> {
  const [take, give] = [Semaphore.open(ping), Semaphore.open(pong)];
  for (let i = 0; i < count; i++) {
    if (async) await take.acquireAsync();
    else take.acquire();
    give.release();
  }
  take.close();
  give.close();
}

function pairsPerSecond(lock: { acquire(): boolean; release(): void }): number {
  for (let i = 0; i < 100_000; i++) { lock.acquire(); lock.release(); }
  const start = performance.now();
  for (let i = 0; i < PAIRS; i++) { lock.acquire(); lock.release(); }
  return PAIRS / ((performance.now() - start) / 1000);
}

async function nodePingPong(async: boolean): Promise<Latency> {
  const ping = new Semaphore(0, { name: anonymousName() });
  const pong = new Semaphore(0, { name: anonymousName() });
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', ping.name, pong.name, String(ROUND_TRIPS), String(async)], { stdio: 'inherit' });
  const samples: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const start = process.hrtime.bigint();
    ping.release();
    if (async) await pong.acquireAsync();
    else pong.acquire();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  await new Promise((resolve) => proc.once('exit', resolve));
  for (const semaphore of [ping, pong]) { semaphore.close(); semaphore.unlink(); }
  return percentiles(samples.slice(100));
}

const C_SOURCE = String.raw`
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void* a, const void* b) { double x = *(const double*)a, y = *(const double*)b; return x < y ? -1 : x > y; }
int main(int argc, char** argv) {
  long pairs = atol(argv[1]), trips = atol(argv[2]);
  char name[64], ping_name[64], pong_name[64];
  snprintf(name, sizeof name, "/pmp-bench-%d-c", getpid());
  sem_t* s = sem_open(name, O_CREAT | O_EXCL, 0600, 1);
  sem_unlink(name);
  double start = now_us();
  for (long i = 0; i < pairs; i++) { sem_wait(s); sem_post(s); }
  double rate = pairs / ((now_us() - start) / 1e6);
  snprintf(ping_name, sizeof ping_name, "/pmp-bench-%d-ping", getpid());
  snprintf(pong_name, sizeof pong_name, "/pmp-bench-%d-pong", getpid());
  sem_t* ping = sem_open(ping_name, O_CREAT | O_EXCL, 0600, 0);
  sem_t* pong = sem_open(pong_name, O_CREAT | O_EXCL, 0600, 0);
  sem_unlink(ping_name); sem_unlink(pong_name);
  if (fork() == 0) { for (long i = 0; i < trips; i++) { sem_wait(ping); sem_post(pong); } _exit(0); }
  double* samples = malloc(trips * sizeof(double));
  for (long i = 0; i < trips; i++) { double t = now_us(); sem_post(ping); sem_wait(pong); samples[i] = now_us() - t; }
  wait(NULL);
  qsort(samples + 100, trips - 100, sizeof(double), cmp);
  long n = trips - 100;
  printf("%f %f %f\n", rate, samples[100 + n / 2], samples[100 + (long)(n * 0.99)]);
  return 0;
}
`;

const PYTHON = String.raw`
import sys, time
from multiprocessing import get_context
pairs, trips = int(sys.argv[1]), int(sys.argv[2])
ctx = get_context('fork')
lock = ctx.Lock()
start = time.perf_counter()
for _ in range(pairs):
    lock.acquire(); lock.release()
rate = pairs / (time.perf_counter() - start)
ping, pong = ctx.Semaphore(0), ctx.Semaphore(0)
def child():
    for _ in range(trips):
        ping.acquire(); pong.release()
p = ctx.Process(target=child); p.start()
samples = []
for _ in range(trips):
    t = time.perf_counter_ns(); ping.release(); pong.acquire(); samples.append((time.perf_counter_ns() - t) / 1000)
p.join()
samples = sorted(samples[100:])
print(rate, samples[len(samples) // 2], samples[int(len(samples) * 0.99)])
`;

function c(): { pairs: number; latency: Latency } {
  const dir = mkdtempSync(join(tmpdir(), 'pmp-bench-'));
  try {
    writeFileSync(join(dir, 'sem.c'), C_SOURCE);
    execFileSync('cc', ['-O2', '-o', join(dir, 'sem'), join(dir, 'sem.c'), '-lpthread']);
    const [pairs, p50, p99] = execFileSync(join(dir, 'sem'), [String(PAIRS * 4), String(ROUND_TRIPS)], { encoding: 'utf8' }).trim().split(' ').map(Number);
    return { pairs: pairs!, latency: { p50: p50!, p99: p99! } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function python(): { pairs: number; latency: Latency } {
  const [pairs, p50, p99] = execFileSync('python3', ['-c', PYTHON, String(PAIRS), String(ROUND_TRIPS)], { encoding: 'utf8' }).trim().split(' ').map(Number);
  return { pairs: pairs!, latency: { p50: p50!, p99: p99! } };
}

async function main(): Promise<void> {
  const reference = { c: c(), python: python() };
  const lock = new Lock();
  const rlock = new RLock();
  const semaphore = new Semaphore(1);
  const ours = {
    lock: pairsPerSecond(lock),
    rlock: pairsPerSecond(rlock),
    semaphore: pairsPerSecond(semaphore),
    pingPong: await nodePingPong(false),
    pingPongAsync: await nodePingPong(true),
  };
  for (const object of [lock, rlock, semaphore]) object.close();

  const million = (n: number) => (n / 1e6).toFixed(2).padStart(8);
  const times = (n: number) => `${n.toFixed(2)}×`.padStart(8);
  console.log(`uncontended acquire+release (${PAIRS} pairs)      M pairs/s   vs CPython Lock   vs C`);
  const pairRows: [string, number][] = [
    ['C sem_wait/sem_post', reference.c.pairs],
    ['CPython multiprocessing.Lock', reference.python.pairs],
    ['Lock (this package)', ours.lock],
    ['RLock (this package)', ours.rlock],
    ['Semaphore (this package)', ours.semaphore],
  ];
  for (const [label, rate] of pairRows) {
    console.log(`  ${label.padEnd(44)} ${million(rate)}   ${times(rate / reference.python.pairs)}        ${times(rate / reference.c.pairs)}`);
  }
  console.log(`\ntwo-process ping-pong over two semaphores (${ROUND_TRIPS} round trips)   p50 µs   p99 µs   p50 vs C`);
  const latencyRows: [string, Latency][] = [
    ['C sem_post/sem_wait', reference.c.latency],
    ['CPython multiprocessing.Semaphore', reference.python.latency],
    ['Semaphore acquire() (this package)', ours.pingPong],
    ['Semaphore acquireAsync() (this package)', ours.pingPongAsync],
  ];
  for (const [label, latency] of latencyRows) {
    console.log(`  ${label.padEnd(58)} ${latency.p50.toFixed(1).padStart(7)}  ${latency.p99.toFixed(1).padStart(7)}  ${times(latency.p50 / reference.c.latency.p50)}`);
  }
  const pairReferences = { 'C sem_wait/sem_post': reference.c.pairs, 'CPython mp.Lock': reference.python.pairs };
  const pairRow = (name: string, value: number): Row => ({ name, unit: 'pairs/s', value, higherIsBetter: true, references: pairReferences,
    target: { text: '≥ CPython mp.Lock', met: value >= reference.python.pairs } });
  const latencyRow = (name: string, value: number, p: 'p50' | 'p99'): Row => ({ name, unit: 'µs', value, higherIsBetter: false,
    references: { 'C sem_post/sem_wait': reference.c.latency[p], 'CPython mp.Semaphore': reference.python.latency[p] },
    target: p === 'p50' ? { text: '≤ 1.5× C', met: value <= 1.5 * reference.c.latency.p50 } : undefined });
  writeReport('lock', [
    pairRow('Lock acquire+release', ours.lock),
    pairRow('RLock acquire+release', ours.rlock),
    pairRow('Semaphore acquire+release', ours.semaphore),
    latencyRow('semaphore ping-pong p50, acquire()', ours.pingPong.p50, 'p50'),
    latencyRow('semaphore ping-pong p99, acquire()', ours.pingPong.p99, 'p99'),
    latencyRow('semaphore ping-pong p50, acquireAsync()', ours.pingPongAsync.p50, 'p50'),
    latencyRow('semaphore ping-pong p99, acquireAsync()', ours.pingPongAsync.p99, 'p99'),
  ]);
}

if (process.argv[2] === 'child') {
  await child(process.argv[3]!, process.argv[4]!, Number(process.argv[5]), process.argv[6] === 'true');
} else {
  await main();
}
