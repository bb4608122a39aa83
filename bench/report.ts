// The one JSON shape every benchmark's --json writes (and `pmp bench`
// combines): one row per case, our value, the references measured in the same
// run under their own labels, and the target when it has one.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';

export interface Target {
  /** The target as the issue states it, e.g. "≥ 600 k/s" or "≤ 1.5× C". */
  text: string;
  met: boolean;
}

export interface Row {
  name: string;
  unit: string;
  value: number;
  /** false for latencies. */
  higherIsBetter: boolean;
  references: Record<string, number>;
  target?: Target;
}

export interface Machine {
  cpus: number;
  model: string;
  node: string;
  python: string | null;
}

export interface Report {
  bench: string;
  date: string;
  quick: boolean;
  machine: Machine;
  rows: Row[];
}

export function machine(): Machine {
  const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  return {
    cpus: os.availableParallelism(),
    model: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    python: python.status === 0 ? python.stdout.trim().replace(/^Python /, '') : null,
  };
}

/** How many times better ours is than `reference` (> 1: ours is faster), whichever way the unit points. */
export function advantage(row: Row, reference: number): number {
  return row.higherIsBetter ? row.value / reference : reference / row.value;
}

/** Writes `rows` as `bench`'s report to the file after --json, when the command line has one. */
export function writeReport(bench: string, rows: Row[], argv: string[] = process.argv): void {
  const at = argv.indexOf('--json');
  if (at === -1) return;
  const report: Report = { bench, date: new Date().toISOString(), quick: argv.includes('--quick'), machine: machine(), rows };
  writeFileSync(argv[at + 1]!, `${JSON.stringify(report, null, 2)}\n`);
}
