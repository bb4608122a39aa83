// Shared by the tests: real peers (python3, node child processes) and names.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';

let counter = 0;
/** A fresh name for a named kernel object made by a test: '/pmp-test-<pid>-<n>'. */
export function testName(label = 'obj'): string {
  return `/pmp-test-${process.pid}-${label}-${counter++}`;
}

/** Runs a CPython 3 snippet (stdlib only) and returns its stdout; throws with stderr on failure. */
export function python(code: string, input?: string | Buffer): string {
  const result = spawnSync('python3', ['-c', code], { input, encoding: 'buffer', maxBuffer: 1 << 30 });
  return check(result, 'python3').toString('utf8');
}

/** The same as python(), returning raw stdout bytes. */
export function pythonBytes(code: string, input?: string | Buffer): Buffer {
  return check(spawnSync('python3', ['-c', code], { input, encoding: 'buffer', maxBuffer: 1 << 30 }), 'python3');
}

function check(result: SpawnSyncReturns<Buffer>, what: string): Buffer {
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${what} exited with ${result.status ?? result.signal}:\n${result.stderr.toString()}`);
  return result.stdout;
}

/** Starts python3 with a snippet, for peers that must run alongside the test. */
export function pythonProcess(code: string) {
  return spawn('python3', ['-c', code], { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Collects a child's stdout and exit status. */
export function finished(child: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => { stdout += chunk; });
  child.stderr?.on('data', (chunk) => { stderr += chunk; });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A CPython prelude binding libc's sem_open/sem_wait/sem_post/sem_getvalue with ctypes; opens sys.argv[1] as `sem`. */
export const PY_SEM_CTYPES = `
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.sem_open.restype = ctypes.c_void_p
libc.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
for f in (libc.sem_wait, libc.sem_post, libc.sem_close):
    f.argtypes = [ctypes.c_void_p]
libc.sem_getvalue.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
sem = libc.sem_open(sys.argv[1].encode(), 0)
`;
