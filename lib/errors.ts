// The exception classes of Python's multiprocessing, queue, threading and
// pickle modules, with Python's hierarchy (BufferTooShort is a ProcessError...).
import { getSystemErrorMap } from 'node:util';

function named<T extends abstract new (...args: never[]) => Error>(cls: T, name: string): T {
  Object.defineProperty(cls.prototype, 'name', { value: name, writable: true, configurable: true });
  return cls;
}

export class ProcessError extends Error {}
named(ProcessError, 'ProcessError');

/** recv_bytes_into with too small a buffer: `data` is the whole message. */
export class BufferTooShort extends ProcessError {
  constructor(readonly data: Buffer) {
    super('BufferTooShort: message does not fit the buffer');
  }
}
named(BufferTooShort, 'BufferTooShort');

export class AuthenticationError extends ProcessError {}
named(AuthenticationError, 'AuthenticationError');

/** multiprocessing.TimeoutError (not the builtin one). */
export class TimeoutError extends ProcessError {}
named(TimeoutError, 'TimeoutError');

/** queue.Empty */
export class Empty extends Error {}
named(Empty, 'Empty');

/** queue.Full */
export class Full extends Error {}
named(Full, 'Full');

export class ValueError extends Error {}
named(ValueError, 'ValueError');

export class IndexError extends Error {}
named(IndexError, 'IndexError');

/** Python's AttributeError (e.g. a lock for Value() without an acquire method). */
export class AttributeError extends Error {}
named(AttributeError, 'AttributeError');

/** Python's AssertionError, raised where CPython's multiprocessing asserts. */
export class AssertionError extends Error {}
named(AssertionError, 'AssertionError');

export class EOFError extends Error {}
named(EOFError, 'EOFError');

/** threading.BrokenBarrierError */
export class BrokenBarrierError extends Error {}
named(BrokenBarrierError, 'BrokenBarrierError');

export class PickleError extends Error {}
named(PickleError, 'PickleError');

export class PicklingError extends PickleError {}
named(PicklingError, 'PicklingError');

export class UnpicklingError extends PickleError {}
named(UnpicklingError, 'UnpicklingError');

/** An Error for an operating-system failure, shaped as Node's own (code, errno, syscall, path). */
export interface OSError extends Error {
  code: string;
  errno: number;
  syscall?: string;
  path?: string;
}

export function isOSError(error: unknown, code?: string): error is OSError {
  return error instanceof Error && typeof (error as OSError).code === 'string' &&
    (code === undefined || (error as OSError).code === code);
}

/** Python's OSError without an errno, as CPython raises for a closed handle ('handle is closed'). */
export function handleError(message: string): Error {
  const error = new Error(message);
  error.name = 'OSError';
  return error;
}

/** The same error with a message that says what happened and what to do. */
export function withHint(error: OSError, message: string): OSError {
  error.message = `${message} (${error.code})`;
  return error;
}

/** What an aborted async call rejects with, as Node's own APIs do (name AbortError, code ABORT_ERR). */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}

/** An OSError built in JS from an errno number (e.g. one reported by a native thread). */
export function errnoError(errno: number, syscall: string, path?: string): OSError {
  const [code, description] = getSystemErrorMap().get(-errno) ?? ['UNKNOWN', 'unknown error'];
  const error = new Error(`${code}: ${description}, ${syscall}${path === undefined ? '' : ` '${path}'`}`) as OSError;
  Object.assign(error, { code, errno, syscall, ...(path === undefined ? {} : { path }) });
  return error;
}
