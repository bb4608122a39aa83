// The first module a child started by Process runs (CPython's spawn.py):
// the whole library loads first, so every reconstructor is registered before
// the arguments are unpickled; then the child becomes the process and runs
// its target. argv[2] is the descriptor of its channel to the parent.
import './index.js';
import { runChild } from './process.js';

await runChild(Number(process.argv[2]));
