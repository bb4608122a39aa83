// The classic process-pool program, ported from Python:
//
//   def long_time_task(name):
//       print('Run task %s (%s)...' % (name, os.getpid()))
//       start = time.time(); time.sleep(random.random() * 3)
//       print('Task %s runs %0.2f seconds.' % (name, time.time() - start))
//
//   if __name__ == '__main__':
//       p = Pool(5)
//       for i in range(20): p.apply_async(long_time_task, args=(i,))
//       p.close(); p.join()
//
// Run: node dist/examples/pool.js [seconds per task at most, default 3]
import { Pool } from '../lib/index.js';

export async function long_time_task(name: number, maxSeconds: number): Promise<void> {
  console.log(`Run task ${name} (${process.pid})...`);
  const start = performance.now();
  await new Promise((resolve) => setTimeout(resolve, Math.random() * maxSeconds * 1000));
  console.log(`Task ${name} runs ${((performance.now() - start) / 1000).toFixed(2)} seconds.`);
}

// Only as the main script: the workers import this module too.
if (process.argv[1] === new URL(import.meta.url).pathname) {
  const maxSeconds = Number(process.argv[2] ?? 3);
  console.log(`Parent process ${process.pid}.`);
  const p = new Pool(5, { module: import.meta.url });
  for (let i = 0; i < 20; i++) p.apply_async(long_time_task, [i, maxSeconds]);
  console.log('Waiting for all subprocesses done...');
  p.close();
  p.join();
  console.log('All subprocesses done.');
}
