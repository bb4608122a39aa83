// Python's timeout rules, in seconds: null/undefined waits forever, 0 or a
// negative number does not wait, block=false ignores the timeout.

/** Seconds to wait (Infinity = forever), validated as CPython does. */
export function waitSeconds(timeout: number | null | undefined, block = true): number {
  if (!block) return 0;
  if (timeout === null || timeout === undefined) return Infinity;
  if (typeof timeout !== 'number' || Number.isNaN(timeout)) {
    throw new TypeError(`timeout must be a number of seconds or null, not ${typeof timeout}`);
  }
  return Math.max(0, timeout);
}

/** A monotonic deadline in milliseconds for a wait of `seconds`. */
export function deadlineAfter(seconds: number): number {
  return seconds === Infinity ? Infinity : performance.now() + seconds * 1000;
}

/** Seconds left until a deadline (never negative). */
export function secondsUntil(deadline: number): number {
  return deadline === Infinity ? Infinity : Math.max(0, (deadline - performance.now()) / 1000);
}

// setTimeout fires at once for delays beyond 2^31 - 1 ms (about 24.8 days).
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `fire` after `seconds` (any length); returns what cancels it. */
export function afterSeconds(seconds: number, fire: () => void): () => void {
  const deadline = deadlineAfter(seconds);
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = deadline - performance.now();
    timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fire, Math.max(0, left));
  };
  arm();
  return () => clearTimeout(timer);
}

/** The options of every async wait. */
export interface WaitOptions {
  /** Seconds; null/undefined waits forever, 0 or less does not wait. */
  timeout?: number | null;
  /** Aborting rejects the wait with an AbortError. */
  signal?: AbortSignal;
}
