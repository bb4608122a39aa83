// JoinableQueue with daemon workers: the parent waits with join() until every
// task was marked done, and never stops the workers (they die with it).
// (Python: JoinableQueue(), Process(..., daemon=True), q.task_done(), q.join().)
import { pathToFileURL } from 'node:url';
import { JoinableQueue, Process, Queue } from '../lib/index.js';

export function worker(tasks: JoinableQueue<number>, results: Queue<number>): void {
  for (;;) {
    const n = tasks.get();
    results.put(n * n);
    tasks.task_done();
  }
}

export async function main(): Promise<void> {
  const tasks = new JoinableQueue<number>();
  const results = new Queue<number>();
  for (let i = 0; i < 4; i++) new Process({ module: import.meta.url, target: worker, args: [tasks, results], daemon: true }).start();
  for (let n = 1; n <= 20; n++) tasks.put(n);
  await tasks.joinAsync();
  let sum = 0;
  for (let i = 0; i < 20; i++) sum += results.get();
  console.log(`all 20 tasks done, sum of squares ${sum}`);
  tasks.close();
  results.close();
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
