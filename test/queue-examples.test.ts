// The classic queue programs of examples/, run as their users run them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { finished } from './helpers.js';

const expected: Record<string, RegExp> = {
  'producer-consumer': /^(?=[\s\S]*^a (\d+)$)(?=[\s\S]*^b (\d+)$)[\s\S]*exit codes 0 0$/m,
  'joinable-queue': /^all 20 tasks done, sum of squares 2870$/m,
  'two-by-two': /^1000 items, each once: true$/m,
  'bounded-queue': /put_nowait on a full queue: Full true\n3 blocking puts waited for room: true/,
};

for (const [example, output] of Object.entries(expected)) {
  test(`examples/${example}`, async () => {
    const child = spawn(process.execPath, [fileURLToPath(new URL(`../examples/${example}.js`, import.meta.url))], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const { code, stdout, stderr } = await finished(child);
    clearTimeout(timer);
    assert.equal(code, 0, stderr);
    assert.match(stdout.trim(), output);
    // Its anonymous queues (handed to children, so left to the resource tracker) go with it.
    const left = () => readdirSync('/dev/shm').filter((file) => file.includes(`pmp-${child.pid}-`));
    for (let waited = 0; left().length > 0 && waited < 3000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(left(), []);
    if (example === 'producer-consumer') {
      const totals = [...stdout.matchAll(/^[ab] (\d+)$/gm)].map((m) => Number(m[1]));
      assert.equal(totals.reduce((a, b) => a + b), 5050);
    }
  });
}
