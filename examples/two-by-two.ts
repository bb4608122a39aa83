// Two producers and two consumers on one queue: every item is consumed once.
import { pathToFileURL } from 'node:url';
import { Process, Queue } from '../lib/index.js';

export function producer(queueName: string, from: number): void {
  const queue = Queue.open<number>(queueName, { codec: 'json' });
  for (let i = from; i < from + 500; i++) queue.put(i);
  queue.close();
  queue.join_thread();
}

export function consumer(queueName: string, resultsName: string): void {
  const queue = Queue.open<number | null>(queueName, { codec: 'json' });
  const results = Queue.open<number[]>(resultsName, { codec: 'json' });
  const seen: number[] = [];
  for (let item = queue.get(); item !== null; item = queue.get()) seen.push(item);
  results.put(seen);
}

export async function main(): Promise<void> {
  const queue = new Queue<number | null>(0, { codec: 'json' });
  const results = new Queue<number[]>(0, { codec: 'json' });
  const producers = [0, 500].map((from) => new Process({ module: import.meta.url, target: producer, args: [queue.name, from] }));
  const consumers = [0, 1].map(() => new Process({ module: import.meta.url, target: consumer, args: [queue.name, results.name] }));
  for (const p of [...producers, ...consumers]) p.start();
  for (const p of producers) await p.joinAsync();
  queue.put(null);
  queue.put(null);
  const seen = [...results.get(), ...results.get()].sort((a, b) => a - b);
  for (const p of consumers) await p.joinAsync();
  queue.close();
  results.close();
  console.log(`${seen.length} items, each once: ${seen.every((n, i) => n === i)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
