// The README's shared memory example: node dist/examples/shared_counter.js
import { Process, Value, Array, type Synchronized, type SharedCArray } from '../lib/index.js';

export function work(counter: Synchronized<'i'>, samples: SharedCArray<'d'>, stripe: number) {
  for (let i = stripe; i < samples.length; i += 4) samples.view[i] = Math.sqrt(i); // no lock, no copy
  counter.increment();                                  // with counter.get_lock(): counter.value += 1
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const counter = new Value('i', 0);                    // a shared C int guarded by an RLock
  const samples = new Array('d', 1_000_000, { lock: false });
  const workers = [0, 1, 2, 3].map((stripe) => new Process({ module: import.meta.url, target: work, args: [counter, samples, stripe] }));
  workers.forEach((p) => p.start());
  workers.forEach((p) => p.join());
  console.log(counter.value, samples.view[999_999]);     // 4 999.999499999875
}
