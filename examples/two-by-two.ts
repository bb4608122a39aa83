// Two producers and two consumers on one queue: every item is consumed once.
import { pathToFileURL } from 'node:url';
import { Process, Queue } from '../lib/index.js';

export function producer(queue: Queue<number>, from: number): void {
  for (let i = from; i < from + 500; i++) queue.put(i);
  queue.close();
  queue.join_thread();
}

export function consumer(queue: Queue<number | null>, results: Queue<number[]>): void {
  const seen: number[] = [];
  for (let item = queue.get(); item !== null; item = queue.get()) seen.push(item);
  results.put(seen);
}

export async function main(): Promise<void> {
  const queue = new Queue<number | null>();
  const results = new Queue<number[]>();
  const producers = [0, 500].map((from) => new Process({ module: import.meta.url, target: producer, args: [queue, from] }));
  const consumers = [0, 1].map(() => new Process({ module: import.meta.url, target: consumer, args: [queue, results] }));
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
