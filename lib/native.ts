// Loads the addon: a prebuild matching this platform, else the local build.
// Each lib/ module declares the slice of the addon it uses (binding<T>()).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const packageRoot = fileURLToPath(new URL('../..', import.meta.url));
const addon: unknown = require('node-gyp-build')(packageRoot);

export function binding<T>(): T {
  return addon as T;
}

/** Readiness bits of FdPoller's callback and start(). */
export const READABLE = 1;
export const WRITABLE = 2;

export interface FdPoller {
  start(events: number): void;
  stop(): void;
  close(): void;
}
export interface PollerBinding {
  FdPoller: new (fd: number, callback: (status: number, events: number) => void) => FdPoller;
}
