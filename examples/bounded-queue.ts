// A bounded queue: put blocks while it is full until a consumer makes room;
// put_nowait on a full queue raises Full.
import { pathToFileURL } from 'node:url';
import { Full, Process, Queue } from '../lib/index.js';

export function slowConsumer(queue: Queue<number>): void {
  for (let i = 0; i < 5; i++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    queue.get();
  }
}

export async function main(): Promise<void> {
  const queue = new Queue<number>(2);
  queue.put(1);
  queue.put(2);
  try {
    queue.put_nowait(3);
  } catch (error) {
    console.log(`put_nowait on a full queue: ${(error as Error).name} ${error instanceof Full}`);
  }
  const consumer = new Process({ module: import.meta.url, target: slowConsumer, args: [queue] });
  consumer.start();
  const started = performance.now();
  for (let i = 3; i <= 5; i++) queue.put(i);
  console.log(`3 blocking puts waited for room: ${performance.now() - started > 50}`);
  await consumer.joinAsync();
  queue.close();
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await main();
