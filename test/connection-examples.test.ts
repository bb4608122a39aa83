// The classic Pipe programs in examples/, run as a user runs them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { finished } from './helpers.js';

function run(example: string, ...args: string[]) {
  const path = new URL(`../examples/${example}`, import.meta.url).pathname;
  return finished(spawn(process.execPath, [path, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

test('examples/pipe-sum: a child adds what the parent sends over a duplex Pipe', async () => {
  const { code, stdout, stderr } = await run('pipe-sum.js');
  assert.equal(code, 0, stderr);
  assert.equal(stdout, '1 + 2 = 3\n10 + 20 = 30\n2.5 + 0.5 = 3\n');
});

test('examples/pipe-consumer: a child consumes until EOFError', async () => {
  const { code, stdout, stderr } = await run('pipe-consumer.js', '3');
  assert.equal(code, 0, stderr);
  assert.equal(stdout, 'consumed item 0 (square 0)\nconsumed item 1 (square 1)\nconsumed item 2 (square 4)\nconsumer: end of file, done\n');
});
