// Every function and class of the addon, called with random argument types
// and counts in a child process: only thrown errors, never a crash or a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageQueue } from '../lib/posix.js';
import { testName } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/fuzz-addon.js', import.meta.url));

test('random calls to every native export only throw errors', async (t) => {
  const name = testName('fuzz');
  t.after(() => {
    // Fuzzed calls may have created kernel objects under the names they were given.
    for (const leftover of [name, `${name}-other`]) {
      try { MessageQueue.unlink(leftover); } catch { /* never created, or already unlinked */ }
      for (const file of [leftover, `/sem.${leftover.slice(1)}`]) rmSync(`/dev/shm${file}`, { force: true });
    }
  });
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  const log = join(mkdtempSync(join(tmpdir(), 'pmp-fuzz-')), 'calls.log');
  t.after(() => rmSync(dirname(log), { recursive: true, force: true }));
  const child = spawn(process.execPath, [fixture, String(seed), '2000', name, log], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearTimeout(watchdog);
  const lastLines = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-3);
  const context = `seed ${seed} (rerun with FUZZ_SEED=${seed}); last calls:\n${lastLines.join('\n')}\n${stderr}`;
  assert.equal(signal, null, `the fuzzed process died of ${signal}: ${context}`);
  assert.equal(code, 0, context);
  const summary = lastLines.find((line) => line.startsWith('done '));
  assert.ok(summary, context);
  const counts = JSON.parse(summary.slice(5));
  assert.ok(counts.calls > 1000 && counts.threw > 0 && counts.returned > 0, summary);
});
