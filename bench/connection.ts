// Pipe throughput and ping-pong latency: this package against CPython's
// multiprocessing.Pipe and a C socketpair program (compiled here), measured
// in the same run. A child process sends; the parent receives and times.
//   node dist/bench/connection.js [--json FILE] [--quick]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection, Pipe } from '../lib/connection.js';

type Kind = 'objects' | 'bytes64' | 'bytes1m' | 'pingpong';
// A small object as CPython programs send them: a list of a few scalars.
const SMALL_OBJECT = [1, 'hello', 2.5, null, true];

const quick = process.argv.includes('--quick');
const counts: Record<Kind, number> = quick
  ? { objects: 20000, bytes64: 20000, bytes1m: 200, pingpong: 2000 }
  : { objects: 200000, bytes64: 200000, bytes1m: 2000, pingpong: 20000 };

// The child: sends `count` messages of a kind on fd 3 (or echoes for ping-pong).
function child(kind: Kind, count: number): void {
  const conn = new Connection(3);
  if (kind === 'pingpong') {
    for (let i = 0; i < count; i++) conn.send_bytes(conn.recv_bytes());
  } else if (kind === 'objects') {
    for (let i = 0; i < count; i++) conn.send(SMALL_OBJECT);
  } else {
    const payload = Buffer.alloc(kind === 'bytes64' ? 64 : 1 << 20, 1);
    for (let i = 0; i < count; i++) conn.send_bytes(payload);
  }
  conn.close();
}

/** Seconds for `count` messages (or round trips), timed from the first one. */
async function node(kind: Kind, count: number): Promise<number> {
  const [parent, childEnd] = Pipe();
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', kind, String(count)],
    { stdio: ['ignore', 'inherit', 'inherit', childEnd.fileno()] });
  childEnd.close();
  let start: number;
  if (kind === 'pingpong') {
    const ball = Buffer.alloc(64, 1);
    parent.send_bytes(ball);
    parent.recv_bytes();
    start = performance.now();
    for (let i = 1; i < count; i++) {
      parent.send_bytes(ball);
      parent.recv_bytes();
    }
  } else if (kind === 'objects') {
    parent.recv();
    start = performance.now();
    for (let i = 1; i < count; i++) parent.recv();
  } else {
    parent.recv_bytes();
    start = performance.now();
    for (let i = 1; i < count; i++) parent.recv_bytes();
  }
  const seconds = (performance.now() - start) / 1000;
  parent.close();
  await new Promise((resolve) => proc.once('exit', resolve));
  return seconds;
}

const PYTHON = String.raw`
import sys, time
from multiprocessing import get_context
kind, count = sys.argv[1], int(sys.argv[2])
ctx = get_context('fork')

def child(conn):
    if kind == 'pingpong':
        for _ in range(count): conn.send_bytes(conn.recv_bytes())
    elif kind == 'objects':
        obj = [1, 'hello', 2.5, None, True]
        for _ in range(count): conn.send(obj)
    else:
        payload = b'\x01' * (64 if kind == 'bytes64' else 1 << 20)
        for _ in range(count): conn.send_bytes(payload)
    conn.close()

parent, end = ctx.Pipe()
p = ctx.Process(target=child, args=(end,))
p.start()
end.close()
if kind == 'pingpong':
    ball = b'\x01' * 64
    parent.send_bytes(ball); parent.recv_bytes()
    start = time.perf_counter()
    for _ in range(count - 1):
        parent.send_bytes(ball); parent.recv_bytes()
else:
    recv = parent.recv if kind == 'objects' else parent.recv_bytes
    recv()
    start = time.perf_counter()
    for _ in range(count - 1): recv()
print(time.perf_counter() - start)
p.join()
`;

// The same with raw frames (4-byte length, then payload) over a socketpair.
const C_SOURCE = String.raw`
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void full(ssize_t (*io)(int, void *, size_t), int fd, char *p, size_t n) {
  while (n > 0) { ssize_t k = io(fd, p, n); if (k <= 0) exit(1); p += k; n -= (size_t)k; }
}
static ssize_t rd(int fd, void *p, size_t n) { return read(fd, p, n); }
static ssize_t wr(int fd, void *p, size_t n) { return write(fd, p, n); }
static size_t recv_frame(int fd, char *buf) {
  uint32_t len; full(rd, fd, (char *)&len, 4); len = ntohl(len); full(rd, fd, buf, len); return len;
}
static void send_frame(int fd, char *frame, size_t n) {
  uint32_t len = htonl((uint32_t)n); memcpy(frame, &len, 4); full(wr, fd, frame, n + 4);
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
  const char *kind = argv[1]; long count = atol(argv[2]);
  size_t size = strcmp(kind, "bytes1m") == 0 ? 1 << 20 : 64;
  char *frame = calloc(1, size + 4), *buf = malloc(size);
  int sv[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  int ping = strcmp(kind, "pingpong") == 0;
  if (fork() == 0) {
    close(sv[0]);
    for (long i = 0; i < count; i++) {
      if (ping) { size_t n = recv_frame(sv[1], buf); memcpy(frame + 4, buf, n); send_frame(sv[1], frame, n); }
      else send_frame(sv[1], frame, size);
    }
    _exit(0);
  }
  close(sv[1]);
  double start = 0;
  for (long i = 0; i < count; i++) {
    if (i == 1) start = now();
    if (ping) send_frame(sv[0], frame, size);
    recv_frame(sv[0], buf);
  }
  printf("%f\n", now() - start);
  wait(NULL);
  return 0;
}
`;

function python(kind: Kind, count: number): number {
  return Number(execFileSync('python3', ['-c', PYTHON, kind, String(count)], { encoding: 'utf8' }));
}

function compileC(dir: string): string | null {
  const source = join(dir, 'socketpair.c');
  const binary = join(dir, 'socketpair');
  writeFileSync(source, C_SOURCE);
  const result = spawnSync('cc', ['-O2', '-o', binary, source], { encoding: 'utf8' });
  return result.status === 0 ? binary : null;
}

async function main(): Promise<void> {
  const jsonAt = process.argv.indexOf('--json');
  const dir = mkdtempSync(join(tmpdir(), 'pmp-bench-'));
  const cBinary = compileC(dir);
  const rows: Record<string, unknown>[] = [];
  try {
    for (const kind of ['objects', 'bytes64', 'bytes1m', 'pingpong'] as Kind[]) {
      const count = counts[kind];
      const ours = await node(kind, count);
      const cpython = python(kind, count);
      const c = cBinary && kind !== 'objects' ? Number(execFileSync(cBinary, [kind, String(count)], { encoding: 'utf8' })) : null;
      rows.push({ kind, count, node: ours, cpython, c });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const label: Record<Kind, string> = {
    objects: 'send/recv small object', bytes64: 'send_bytes 64 B', bytes1m: 'send_bytes 1 MiB', pingpong: 'ping-pong 64 B (latency)',
  };
  const rate = (kind: Kind, seconds: number | null, count: number) => {
    if (seconds === null) return '-';
    return kind === 'pingpong' ? `${(seconds / (count - 1) * 1e6).toFixed(1)} µs` : `${Math.round((count - 1) / seconds).toLocaleString('en')} msg/s`;
  };
  console.log('| what | node | CPython Pipe | C socketpair | node vs CPython | node vs C |');
  // Ratios: throughput as node's speed over the other's (> 1 is faster), latency as node's time over the other's (< 1 is faster).
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) {
    const kind = row.kind as Kind;
    const [ours, cpython, c, count] = [row.node as number, row.cpython as number, row.c as number | null, row.count as number];
    const vsPython = kind === 'pingpong' ? `${(ours / cpython).toFixed(2)}× the latency` : `${(cpython / ours).toFixed(2)}× the speed`;
    const vsC = c === null ? '-' : kind === 'pingpong' ? `${(ours / c).toFixed(2)}× the latency` : `${(c / ours).toFixed(2)}× the speed`;
    console.log(`| ${label[kind]} | ${rate(kind, ours, count)} | ${rate(kind, cpython, count)} | ${rate(kind, c, count)} | ${vsPython} | ${vsC} |`);
  }
  if (jsonAt !== -1) writeFileSync(process.argv[jsonAt + 1], JSON.stringify(rows, null, 2));
}

if (process.argv[2] === 'child') child(process.argv[3] as Kind, Number(process.argv[4]));
else await main();
