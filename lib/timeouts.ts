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

/** The rejection of an async call cancelled by its AbortSignal, as Node's own (name AbortError, code ABORT_ERR). */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}
