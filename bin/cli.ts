// pmp: list, inspect, send to, receive from and remove POSIX IPC objects;
// run the demo and the benchmarks.
const USAGE = `usage: pmp <command> [options]

commands:
  ls        list POSIX message queues, named semaphores and shared memory
  help      show this help

Exit codes: 0 success, 1 operation failed, 2 usage error.`;

import { listKernelObjects } from '../lib/posix/inventory.js';

function main(argv: string[]): number {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    case 'ls': {
      const objects = listKernelObjects();
      if (rest.includes('--json')) {
        console.log(JSON.stringify(objects));
        return 0;
      }
      if (objects.queues === null) console.log('queues: not visible (mount the mqueue filesystem: sudo mkdir -p /dev/mqueue && sudo mount -t mqueue none /dev/mqueue)');
      for (const name of objects.queues ?? []) console.log(`queue      ${name}`);
      for (const name of objects.semaphores) console.log(`semaphore  ${name}`);
      for (const name of objects.segments) console.log(`shm        ${name}`);
      return 0;
    }
    default:
      console.error(`pmp: unknown command '${command}'; run 'pmp --help' for the list`);
      return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
