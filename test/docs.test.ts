// Every code snippet in README.md and docs/*.md runs as written: TypeScript
// ones transpiled and run with node inside the package (so they import it
// by name, as a user does), Python ones with python3 in the repository root
// (so a `node -e` peer they start imports the package by name too). A fence
// whose info string says `norun` is shown, not run (e.g. shell commands).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../..', import.meta.url));
const scratch = fileURLToPath(new URL('./snippets/', import.meta.url));
const documents = ['README.md', ...readdirSync(`${root}docs`).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`)];

interface Snippet { document: string; line: number; language: 'ts' | 'python'; code: string }

function snippets(document: string): Snippet[] {
  const found: Snippet[] = [];
  const fence = /^```(\w+)([^\n]*)\n([\s\S]*?)^```$/gm;
  const text = readFileSync(`${root}${document}`, 'utf8');
  for (let match; (match = fence.exec(text));) {
    const [, language, info, code] = match;
    if (info.includes('norun')) continue;
    const line = text.slice(0, match.index).split('\n').length;
    if (language === 'ts' || language === 'typescript') found.push({ document, line, language: 'ts', code });
    else if (language === 'python' || language === 'py') found.push({ document, line, language: 'python', code });
  }
  return found;
}

function run(snippet: Snippet) {
  if (snippet.language === 'python') return spawnSync('python3', ['-c', snippet.code], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  const file = `${scratch}${snippet.document.replace(/\W/g, '_')}_${snippet.line}.mjs`;
  const { outputText } = ts.transpileModule(snippet.code, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  writeFileSync(file, outputText);
  return spawnSync(process.execPath, [file], { cwd: root, encoding: 'utf8', timeout: 60_000 });
}

mkdirSync(scratch, { recursive: true });
test.after(() => rmSync(scratch, { recursive: true, force: true }));

for (const document of documents) {
  for (const snippet of snippets(document)) {
    test(`${document}:${snippet.line} (${snippet.language}) runs`, () => {
      const result = run(snippet);
      assert.equal(result.status, 0, `exit ${result.status ?? result.signal}\n${result.stdout}\n${result.stderr}`);
    });
  }
}
