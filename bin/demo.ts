// pmp demo: the classic producer/consumer, across real processes. Two
// producers put jobs on a JoinableQueue; two consumers square them and mark
// each done; a sentinel (null) per consumer ends it. The first jobs are
// printed as they move; then a bulk run measures objects per second.
import { JoinableQueue, Process, Queue } from '../lib/index.js';

const SHOWN_PER_PRODUCER = 4;
const BULK_PER_PRODUCER = 25_000;

/** A job (a plain object crosses as a dict of str keys); null is the sentinel that stops a consumer. */
type Job = { from: string; n: number; show: boolean } | null;
/** [consumer, jobs handled] */
type Tally = [consumer: string, handled: number];

export function producer(jobs: JoinableQueue<Job>, name: string): void {
  for (let n = 0; n < SHOWN_PER_PRODUCER; n++) {
    console.log(`${name} put job ${n}`);
    jobs.put({ from: name, n, show: true });
  }
  for (let n = SHOWN_PER_PRODUCER; n < SHOWN_PER_PRODUCER + BULK_PER_PRODUCER; n++) jobs.put({ from: name, n, show: false });
}

export function consumer(jobs: JoinableQueue<Job>, tallies: Queue<Tally>, name: string): void {
  let handled = 0;
  for (let job = jobs.get(); job !== null; job = jobs.get()) {
    const { from, n, show } = job;
    handled++;
    if (show) console.log(`  ${name} got job ${n} from ${from}: ${n}² = ${n * n}`);
    jobs.task_done();
  }
  jobs.task_done();
  tallies.put([name, handled]);
}

export async function demo(): Promise<number> {
  const jobs = new JoinableQueue<Job>();
  const tallies = new Queue<Tally>();
  const module = import.meta.url;
  const consumers = ['consumer-1', 'consumer-2'].map((name) => new Process({ module, target: consumer, args: [jobs, tallies, name], name }));
  const producers = ['producer-1', 'producer-2'].map((name) => new Process({ module, target: producer, args: [jobs, name], name }));
  console.log(`pmp demo: 2 producers and 2 consumers (separate processes) share a JoinableQueue`);
  const started = performance.now();
  for (const p of [...consumers, ...producers]) p.start();
  for (const p of producers) await p.joinAsync();
  for (let i = 0; i < consumers.length; i++) jobs.put(null);
  await jobs.joinAsync();
  const seconds = (performance.now() - started) / 1000;
  const results = [await tallies.getAsync(), await tallies.getAsync()].sort(([a], [b]) => a.localeCompare(b));
  for (const p of consumers) await p.joinAsync();
  jobs.close();
  tallies.close();

  const total = results.reduce((sum, [, handled]) => sum + handled, 0);
  for (const [consumer, handled] of results) console.log(`${consumer} handled ${handled} jobs`);
  console.log(`${total} objects through the queue in ${seconds.toFixed(2)} s: ${Math.round(total / seconds).toLocaleString('en')} objects/s`);
  const expected = 2 * (SHOWN_PER_PRODUCER + BULK_PER_PRODUCER);
  if (total !== expected) {
    console.error(`pmp demo: ${expected - total} jobs were lost`);
    return 1;
  }
  return [...consumers, ...producers].every((p) => p.exitcode === 0) ? 0 : 1;
}
