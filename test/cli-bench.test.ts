// pmp bench, run as a user runs it: usage errors, --help, one real quick run
// of the cheapest area with its combined JSON and its SVG chart; and the
// chart and table drawn from a made-up report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chart, table, type Combined } from '../bin/bench.js';

const pmp = fileURLToPath(new URL('../../bin/pmp.js', import.meta.url));

function run(...args: string[]) {
  const result = spawnSync(process.execPath, [pmp, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The elements of an XML document, checked well-formed: one root, every tag closed in order, attributes quoted. */
function elements(xml: string): { root: string; tags: { name: string; attributes: Record<string, string> }[] } {
  const body = xml.replace(/^<\?xml[^>]*\?>\s*/, '').trim();
  const stack: string[] = [];
  const tags: { name: string; attributes: Record<string, string> }[] = [];
  let root = '';
  let rootClosed = false;
  const pattern = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  for (const match of body.matchAll(pattern)) {
    const [, closing, name, attributeText, selfClosing, text, stray] = match;
    if (stray) assert.fail(`malformed tag at ${match.index}: ${body.slice(match.index, match.index + 40)}`);
    if (text !== undefined) {
      assert.ok(stack.length > 0 || text.trim() === '', 'text outside the root element');
      assert.doesNotMatch(text, /&(?!(amp|lt|gt|quot|apos|#\d+);)/, 'unescaped &');
      continue;
    }
    assert.ok(!rootClosed, `<${name}> after the root element closed`);
    if (closing) {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
      if (stack.length === 0) rootClosed = true;
      continue;
    }
    if (stack.length === 0) root = name!;
    const attributes = Object.fromEntries([...attributeText!.matchAll(/([\w:-]+)="([^"]*)"/g)].map(([, key, value]) => [key!, value!]));
    tags.push({ name: name!, attributes });
    if (selfClosing) {
      if (stack.length === 0) rootClosed = true;
    } else {
      stack.push(name!);
    }
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.ok(rootClosed, 'no root element');
  return { root, tags };
}

test('pmp bench --help, and bench is listed in pmp --help', () => {
  const help = run('bench', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /usage: pmp bench \[queue\|pickle\|lock\|pipe\|pool\|shm\|all\]/);
  assert.match(help.stdout, /--svg FILE/);
  assert.match(run('--help').stdout, /bench \[AREA\]/);
});

test('pmp bench usage errors exit 2 with one line saying what to do', () => {
  for (const args of [['bench', 'nope'], ['bench', 'pickle', 'all', 'synchronize'], ['bench', '--json'], ['bench', '--svg'], ['bench', '--fast']]) {
    const { status, stdout, stderr } = run(...args);
    assert.equal(status, 2, args.join(' '));
    assert.equal(stdout, '');
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(stderr, /^pmp: .*; run 'pmp --help'\n$/);
  }
  assert.match(run('bench', 'nope').stderr, /areas among pickle, shm, pipe, lock, queue, pool, all, not 'nope'/);
});

test('pmp bench pickle --quick writes the combined JSON and a well-formed SVG with a bar per value', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pmp-bench-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [jsonFile, svgFile] = [join(dir, 'bench.json'), join(dir, 'bench.svg')];
  const { status, stdout, stderr } = run('bench', 'pickle', '--quick', '--json', jsonFile, '--svg', svgFile);
  assert.equal(status, 0, stderr);
  assert.match(stderr, /pmp bench: pickle \(1\/1\) running/);
  assert.match(stderr, /pmp bench: pickle done in \d+\.\d s/);

  const combined = JSON.parse(readFileSync(jsonFile, 'utf8')) as Combined;
  assert.equal(combined.quick, true);
  assert.ok(!Number.isNaN(Date.parse(combined.date)));
  assert.deepEqual(Object.keys(combined.machine).sort(), ['cpus', 'model', 'node', 'python']);
  assert.equal(combined.machine.node, process.version);
  assert.deepEqual(combined.failed, []);
  assert.equal(combined.reports.length, 1);
  const [report] = combined.reports;
  assert.equal(report!.bench, 'pickle');
  assert.equal(report!.quick, true);
  assert.equal(report!.rows.length, 2);
  for (const row of report!.rows) {
    assert.equal(typeof row.name, 'string');
    assert.equal(typeof row.unit, 'string');
    assert.ok(Number.isFinite(row.value) && row.value > 0, `${row.name}: ${row.value}`);
    assert.equal(row.higherIsBetter, true);
    assert.ok(Object.keys(row.references).includes('v8 serialize'), row.name);
    for (const value of Object.values(row.references)) assert.ok(Number.isFinite(value) && value > 0);
    assert.equal(typeof row.target?.text, 'string');
    assert.equal(typeof row.target?.met, 'boolean');
    assert.ok(stdout.includes(row.name), 'the table has every case');
  }
  assert.match(stdout, /OURS ×/);

  const { root, tags } = elements(readFileSync(svgFile, 'utf8'));
  assert.equal(root, 'svg');
  const bars = (kind: string) => tags.filter((tag) => tag.name === 'rect' && tag.attributes.class === kind);
  assert.equal(bars('ours').length, report!.rows.length);
  assert.equal(bars('reference').length, report!.rows.reduce((sum, row) => sum + Object.keys(row.references).length, 0));
  for (const bar of [...bars('ours'), ...bars('reference')]) assert.ok(Number(bar.attributes.width) > 0);
});

test('the chart draws throughput rows only, escapes text, scales each case and goes logarithmic for wide spreads', () => {
  const combined: Combined = {
    date: '2026-01-01T00:00:00.000Z', quick: false, failed: [],
    machine: { cpus: 2, model: 'test', node: 'v20', python: '3.11' },
    reports: [{
      bench: 'made-up', date: '2026-01-01T00:00:00.000Z', quick: false, machine: { cpus: 2, model: 'test', node: 'v20', python: '3.11' },
      rows: [
        { name: 'a < b & c', unit: 'ops/s', value: 50, higherIsBetter: true, references: { 'C "fast"': 100 } },
        { name: 'wide', unit: 'MB/s', value: 1, higherIsBetter: true, references: { far: 1000 }, target: { text: '≥ 2×', met: false } },
        { name: 'latency', unit: 'µs', value: 10, higherIsBetter: false, references: { C: 5 } },
      ],
    }],
  };
  const svg = chart(combined);
  const { root, tags } = elements(svg);
  assert.equal(root, 'svg');
  const bars = tags.filter((tag) => tag.name === 'rect' && tag.attributes.class);
  assert.deepEqual(bars.map((bar) => bar.attributes.class), ['ours', 'reference', 'ours', 'reference']);
  const [half, full, tiny, huge] = bars.map((bar) => Number(bar.attributes.width)) as [number, number, number, number];
  assert.equal(half * 2, full, 'linear: half the value, half the bar');
  assert.ok(tiny > huge / 100, 'log: a thousandth of the value still gets a visible bar');
  assert.match(svg, /a &lt; b &amp; c/);
  assert.match(svg, /wide \(MB\/s, log scale\)/);
  assert.doesNotMatch(svg, /latency/);

  const text = table(combined);
  assert.match(text, /a < b & c\s+50\s+ops\/s\s+C "fast"\s+100\s+0\.50×/);
  assert.match(text, /latency\s+10\s+µs\s+C\s+5\s+0\.50×/, 'a latency twice the reference is half as good');
  assert.match(text, /≥ 2×: NOT met/);
});
