// Parent and child over a duplex Pipe, ported from Python:
//
//   def adder(conn):
//       while (pair := conn.recv()) is not None:
//           conn.send(pair[0] + pair[1])
//       conn.close()
//
//   if __name__ == '__main__':
//       parent_conn, child_conn = Pipe()
//       p = Process(target=adder, args=(child_conn,))
//       p.start()
//       child_conn.close()
//       for x, y in [(1, 2), (10, 20), (2.5, 0.5)]:
//           parent_conn.send((x, y))
//           print(f'{x} + {y} = {parent_conn.recv()}')
//       parent_conn.send(None)
//       p.join()
//
// Run: node dist/examples/pipe-sum.js
import { Pipe, Process, type Connection } from '../lib/index.js';

export function adder(conn: Connection): void {
  for (let pair = conn.recv<[number, number] | null>(); pair !== null; pair = conn.recv()) {
    conn.send(pair[0] + pair[1]);
  }
  conn.close();
}

// Only as the main script: the child imports this module too.
if (process.argv[1] === new URL(import.meta.url).pathname) {
  const [parentConn, childConn] = Pipe();
  const p = new Process({ module: import.meta.url, target: adder, args: [childConn] });
  p.start();
  childConn.close();  // the child has its own copy; ours would keep the pipe open
  for (const [x, y] of [[1, 2], [10, 20], [2.5, 0.5]]) {
    parentConn.send([x, y]);
    console.log(`${x} + ${y} = ${parentConn.recv()}`);
  }
  parentConn.send(null);
  p.join();
  parentConn.close();
}
