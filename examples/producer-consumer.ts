// The classic producer/consumer: the parent puts work and one sentinel per
// consumer; each consumer takes work until it meets its sentinel.
// (Python: mp.Queue(), Process(target=consumer, args=(q,)), q.put(None).)
import { pathToFileURL } from 'node:url';
import { Process, Queue } from '../lib/index.js';

export function consumer(queue: Queue<number | null>, label: string): void {
  let total = 0;
  for (let item = queue.get(); item !== null; item = queue.get()) total += item;
  console.log(`${label} ${total}`);
}

export async function main(): Promise<void> {
  const queue = new Queue<number | null>();
  const consumers = ['a', 'b'].map((label) => new Process({ module: import.meta.url, target: consumer, args: [queue, label] }));
  for (const p of consumers) p.start();
  for (let i = 1; i <= 100; i++) queue.put(i);
  for (const _ of consumers) queue.put(null);
  for (const p of consumers) await p.joinAsync();
  queue.close();
  console.log('exit codes', consumers.map((p) => p.exitcode).join(' '));
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
