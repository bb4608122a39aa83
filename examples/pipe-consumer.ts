// A consumer that reads until the producer closes its end, ported from Python:
//
//   def consumer(conn):
//       while True:
//           try:
//               item = conn.recv()
//           except EOFError:
//               break
//           print('consumed', item)
//
//   if __name__ == '__main__':
//       reader, writer = Pipe(duplex=False)
//       p = Process(target=consumer, args=(reader,))
//       p.start()
//       reader.close()
//       for item in range(5):
//           writer.send({'item': item, 'square': item * item})
//       writer.close()
//       p.join()
//
// Run: node dist/examples/pipe-consumer.js [items, default 5]
import { EOFError, Pipe, Process, type Connection } from '../lib/index.js';

export function consumer(conn: Connection): void {
  for (;;) {
    let item: Map<string, number>;
    try {
      item = conn.recv();
    } catch (error) {
      if (error instanceof EOFError) break;  // the producer closed its end: nothing more will come
      throw error;
    }
    console.log(`consumed item ${item.get('item')} (square ${item.get('square')})`);
  }
  console.log('consumer: end of file, done');
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const count = Number(process.argv[2] ?? 5);
  const [reader, writer] = Pipe(false);
  const p = new Process({ module: import.meta.url, target: consumer, args: [reader] });
  p.start();
  reader.close();
  for (let item = 0; item < count; item++) writer.send({ item, square: item * item });
  writer.close();
  p.join();
}
