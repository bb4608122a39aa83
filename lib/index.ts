// posix-multiprocessing: Python's multiprocessing surface.
export * from './errors.js';
export { Pipe, Connection, Listener, Client, ClientAsync, wait, type Waitable, type Address, type Family, type ListenerOptions, type ClientOptions } from './connection.js';
export { Process, ParentProcess, current_process, parent_process, active_children, cpu_count, type ProcessOptions, type Target } from './process.js';
