// The classic data-sharing program, ported from Python: 100 processes each
// take one from a shared counter, under a shared lock.
//
//   def worker(d, lock):
//       with lock:
//           d['count'] -= 1
//
//   if __name__ == '__main__':
//       with Manager() as manager:
//           d = manager.dict({'count': 100}); lock = manager.Lock()
//           ps = [Process(target=worker, args=(d, lock)) for _ in range(100)]
//           for p in ps: p.start()
//           for p in ps: p.join()
//           print(d['count'])   # 0
//
// Run: node dist/examples/manager_countdown.js [processes, default 100]
import { Manager, Process, type DictProxy, type LockProxy } from '../lib/index.js';

export function worker(d: DictProxy<string, number>, lock: LockProxy): void {
  using held = lock.hold();
  void held;
  d.set('count', d.getitem('count') - 1);
}

// Only as the main script: the children import this module too.
if (process.argv[1] === new URL(import.meta.url).pathname) {
  const processes = Number(process.argv[2] ?? 100);
  await using manager = await Manager.start();
  const d = manager.dict({ count: processes });
  const lock = manager.Lock();
  const ps = [...Array(processes).keys()].map(() => new Process({ module: import.meta.url, target: worker, args: [d, lock] }));
  for (const p of ps) p.start();
  for (const p of ps) p.join();
  console.log(d.getitem('count'));
}
