// The package loads as its users load it: ESM, CommonJS, and the addon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { binding, type PollerBinding } from '../lib/native.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('the addon loads and exposes FdPoller', () => {
  assert.equal(typeof binding<PollerBinding>().FdPoller, 'function');
});

for (const entry of ['posix-multiprocessing', 'posix-multiprocessing/posix', 'posix-multiprocessing/pickle']) {
  test(`${entry} loads with import and with require`, () => {
    for (const code of [`import(${JSON.stringify(entry)}).then((m) => console.log(Object.keys(m).length))`,
      `console.log(Object.keys(require(${JSON.stringify(entry)})).length)`]) {
      // From the package root, the name resolves through package.json exports, as a user's import does.
      const result = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      assert.ok(Number(result.stdout) > 0, `no exports from ${entry}`);
    }
  });
}
