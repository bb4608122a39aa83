// pmp bench: runs the benchmark scripts (dist/bench/*.js) as child processes,
// one after another so they do not compete for the cores, collects their
// reports (bench/report.ts) and prints one table; --json writes them
// combined, --svg draws the throughput chart the README shows.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { advantage, machine, type Machine, type Report, type Row } from '../bench/report.js';

/** Area name on the command line → script in bench/, cheapest first. */
export const AREAS: Record<string, string> = {
  pickle: 'pickle', shm: 'shm', pipe: 'connection', lock: 'synchronize', queue: 'queue', pool: 'pool',
};

/** Seconds a full run of each area took on a 2-core VM: how much of the bar each area fills. */
const EXPECTED_SECONDS: Record<string, number> = { pickle: 12, shm: 5, pipe: 21, lock: 7, queue: 30, pool: 30 };

export interface Combined {
  date: string;
  quick: boolean;
  machine: Machine;
  reports: Report[];
  /** Areas whose script failed, with the last line it wrote to stderr. */
  failed: { bench: string; error: string }[];
}

export interface BenchOptions { quick: boolean; json?: string; svg?: string }

/** Shows which area runs and how far along the run is: a bar on a terminal, plain lines otherwise. */
class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private timer: NodeJS.Timeout | undefined;
  private readonly total: number;
  private done = 0;

  constructor(private readonly areas: string[]) {
    this.total = areas.reduce((sum, area) => sum + EXPECTED_SECONDS[area]!, 0);
  }

  start(index: number, area: string): void {
    const started = Date.now();
    if (!this.tty) {
      console.error(`pmp bench: ${area} (${index + 1}/${this.areas.length}) running`);
      return;
    }
    const draw = () => {
      const width = 24;
      const seconds = (Date.now() - started) / 1000;
      // The running area fills its share as time passes, never quite all of it before it ends.
      const share = Math.min(seconds, 0.95 * EXPECTED_SECONDS[area]!);
      const filled = Math.round(((this.done + share) / this.total) * width);
      process.stderr.write(`\r\x1b[K[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${index}/${this.areas.length} done, running ${area} ${Math.round(seconds)} s`);
    };
    draw();
    this.timer = setInterval(draw, 500);
  }

  finish(area: string, seconds: number, ok: boolean): void {
    clearInterval(this.timer);
    this.done += EXPECTED_SECONDS[area]!;
    if (this.tty) process.stderr.write('\r\x1b[K');
    console.error(`pmp bench: ${area} ${ok ? 'done' : 'FAILED'} in ${seconds.toFixed(1)} s`);
  }
}

function runScript(script: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    // The scripts' own tables are not shown: the combined table says the same.
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stderr }));
  });
}

export async function bench(areas: string[], options: BenchOptions): Promise<number> {
  const scripts = areas.map((area) => fileURLToPath(new URL(`../bench/${AREAS[area]}.js`, import.meta.url)));
  const missing = scripts.find((script) => !existsSync(script));
  if (missing) {
    console.error(`pmp: ${missing} is missing; the benchmarks run from a clone of the repository after 'npm run compile'`);
    return 1;
  }
  const combined: Combined = { date: new Date().toISOString(), quick: options.quick, machine: machine(), reports: [], failed: [] };
  const progress = new Progress(areas);
  const dir = mkdtempSync(join(tmpdir(), 'pmp-bench-'));
  try {
    for (const [index, area] of areas.entries()) {
      const file = join(dir, `${area}.json`);
      progress.start(index, area);
      const started = Date.now();
      const { status, stderr } = await runScript(scripts[index]!, ['--json', file, ...(options.quick ? ['--quick'] : [])]);
      const ok = status === 0 && existsSync(file);
      progress.finish(area, (Date.now() - started) / 1000, ok);
      if (ok) combined.reports.push(JSON.parse(readFileSync(file, 'utf8')) as Report);
      else combined.failed.push({ bench: area, error: stderr.trim().split('\n').at(-1) || `exit status ${status}` });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(table(combined));
  if (options.json) writeFileSync(options.json, `${JSON.stringify(combined, null, 2)}\n`);
  if (options.svg) writeFileSync(options.svg, chart(combined));
  for (const { bench: area, error } of combined.failed) console.error(`pmp: the ${area} benchmark failed: ${error}`);
  return combined.failed.length === 0 ? 0 : 1;
}

/** 1,234,567 and 12.3: whole numbers from 100 up, three significant digits below. */
export function formatNumber(n: number): string {
  return Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : Number(n.toPrecision(3)).toString();
}

/** One line per reference; the case, our value and the target on the first. */
export function table(combined: Combined): string {
  const header = ['BENCH', 'CASE', 'OURS', 'UNIT', 'REFERENCE', 'VALUE', 'OURS ×', 'TARGET'];
  const lines: string[][] = [];
  for (const report of combined.reports) {
    for (const row of report.rows) {
      const references = Object.entries(row.references);
      const target = row.target ? `${row.target.text}: ${row.target.met ? 'met' : 'NOT met'}` : '';
      const first = [report.bench, row.name, formatNumber(row.value), row.unit];
      if (references.length === 0) lines.push([...first, '', '', '', target]);
      references.forEach(([label, value], i) => {
        lines.push([...(i === 0 ? first : ['', '', '', '']), label, formatNumber(value), `${advantage(row, value).toFixed(2)}×`, i === 0 ? target : '']);
      });
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)));
  const numeric = new Set([2, 5, 6]);
  const body = [header, ...lines].map((line) => line.map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd());
  const m = combined.machine;
  return [`${combined.date}, ${m.cpus} CPUs (${m.model}), Node ${m.node}, CPython ${m.python ?? 'absent'}${combined.quick ? ', quick run' : ''}`,
    'OURS × = how many times better ours is than the reference (above 1: ours is faster)', ...body].join('\n');
}

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * Horizontal bars, ours and each reference, for every throughput case (latency
 * rows are in the table). Each case has its own scale, linear unless its
 * values span more than 30×, where the scale is logarithmic (and says so).
 */
export function chart(combined: Combined): string {
  const rows = combined.reports.flatMap((report) => report.rows.filter((row) => row.higherIsBetter));
  const [width, labelWidth, barWidth, barHeight, gap] = [960, 230, 560, 16, 4];
  const parts: string[] = [];
  let y = 56;
  for (const row of rows) {
    const bars: [string, number, string][] = [['ours', row.value, 'ours'], ...Object.entries(row.references).map(([label, value]): [string, number, string] => [label, value, 'reference'])];
    const values = bars.map(([, value]) => value).filter((value) => value > 0);
    const [max, min] = [Math.max(...values), Math.min(...values)];
    const log = max / min > 30;
    const floor = min / 3;
    const length = (value: number) => Math.max(1, value <= 0 ? 0 : log ? (Math.log(value / floor) / Math.log(max / floor)) * barWidth : (value / max) * barWidth);
    parts.push(`<text x="8" y="${y + 12}" class="case">${escape(`${row.name} (${row.unit}${log ? ', log scale' : ''})`)}</text>`);
    y += 20;
    for (const [label, value, kind] of bars) {
      const w = length(value).toFixed(1);
      parts.push(`<text x="${labelWidth - 8}" y="${y + 12}" class="label">${escape(label)}</text>`,
        `<rect class="${kind}" x="${labelWidth}" y="${y}" width="${w}" height="${barHeight}"/>`,
        `<text x="${(labelWidth + Number(w) + 6).toFixed(1)}" y="${y + 12}" class="value">${escape(formatNumber(value))}</text>`);
      y += barHeight + gap;
    }
    y += 12;
  }
  const m = combined.machine;
  const subtitle = `${combined.date.slice(0, 10)}, ${m.cpus} CPUs, Node ${m.node}, CPython ${m.python ?? 'absent'}${combined.quick ? ', quick run' : ''}; longer is faster`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 8}" viewBox="0 0 ${width} ${y + 8}" font-family="sans-serif" font-size="12">
<style>.ours{fill:#2b6cb0}.reference{fill:#a0aec0}.case{font-weight:bold}.label{text-anchor:end}.value{fill:#2d3748}</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="8" y="22" font-size="16" font-weight="bold">posix-multiprocessing throughput: ours (blue) against references measured in the same run (grey)</text>
<text x="8" y="40">${escape(subtitle)}</text>
${parts.join('\n')}
</svg>
`;
}
