// The package loads from its prebuilt binary alone: `npm run prebuild` in a
// copy of the package, the copy's build/ removed, loaded with PREBUILDS_ONLY=1
// (which forbids building or using a local build).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testName } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('the package loads from prebuilds/ alone, without build/', (t) => {
  const copy = mkdtempSync(join(tmpdir(), 'pmp-prebuild-'));
  t.after(() => rmSync(copy, { recursive: true, force: true }));
  for (const entry of ['package.json', 'binding.gyp', 'native', 'dist/lib']) cpSync(join(root, entry), join(copy, entry), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));

  const build = spawnSync('npm', ['run', 'prebuild'], { cwd: copy, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  rmSync(join(copy, 'build'), { recursive: true, force: true });
  const prebuilt = readdirSync(join(copy, 'prebuilds'), { recursive: true }).map(String);
  assert.ok(prebuilt.some((file) => /^linux-x64\/.+\.glibc\.node$/.test(file)), `prebuilds/: ${prebuilt.join(', ')}`);

  // From inside the copy, the package's own name resolves to the copy (self-reference through exports).
  const name = testName('prebuild');
  const code = `
    const path = require('node-gyp-build').path(process.cwd());
    import('posix-multiprocessing/posix').then(({ MessageQueue }) => {
      const queue = new MessageQueue(${JSON.stringify(name)}, { create: true, exclusive: true });
      try {
        queue.send('from the prebuild');
        console.log(JSON.stringify({ path, message: queue.receive().data.toString() }));
      } finally {
        queue.close();
        queue.unlink();
      }
    });`;
  const load = spawnSync(process.execPath, ['-e', code], { cwd: copy, encoding: 'utf8', env: { ...process.env, PREBUILDS_ONLY: '1' } });
  assert.equal(load.status, 0, load.stderr);
  const { path, message } = JSON.parse(load.stdout);
  assert.ok(path.startsWith(join(copy, 'prebuilds')), `loaded ${path}`);
  assert.equal(message, 'from the prebuild');
});
