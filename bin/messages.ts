// pmp send, pmp recv: put a value on a queue by name, or take messages off
// it and show them decoded (pickles as the objects they carry).
import { inspect } from 'node:util';
import { MessageQueue } from '../lib/posix/mqueue.js';
import { dumps, loads } from '../lib/pickle.js';
import { posixName } from './inspect.js';

export const CODECS = ['pickle', 'json', 'raw'] as const;
export const DECODINGS = ['auto', 'pickle', 'json', 'raw', 'hex'] as const;
export type Codec = typeof CODECS[number];
export type Decoding = typeof DECODINGS[number];

/** The message bytes for VALUE: pickle takes VALUE as JSON when it parses (42, [1,2], "s"), else as a string. */
export function encode(value: string, codec: Codec): Buffer {
  switch (codec) {
    case 'pickle': {
      let parsed: unknown = value;
      try {
        parsed = JSON.parse(value);
      } catch {
        // Not JSON: the string itself.
      }
      return dumps(parsed, { protocol: 4 });
    }
    case 'json':
      JSON.parse(value); // a clear error now beats a consumer's later
      return Buffer.from(value);
    case 'raw':
      return Buffer.from(value);
  }
}

const PICKLE_PROTO = 0x80;

export function decode(data: Buffer, decoding: Decoding): unknown {
  switch (decoding) {
    case 'pickle':
      return loads(data);
    case 'json':
      return JSON.parse(data.toString('utf8'));
    case 'raw':
      return data.toString('utf8');
    case 'hex':
      return data.toString('hex');
    case 'auto':
      if (data[0] === PICKLE_PROTO) {
        try {
          return loads(data);
        } catch {
          // Looked like a pickle, was not: show the bytes.
        }
      }
      return new TextDecoder('utf8', { fatal: true }).decode(data);
  }
}

export function send(name: string, value: string, options: { codec: Codec; priority: number; timeout: number | null }): void {
  using queue = new MessageQueue(posixName(name), { read: false });
  queue.send(encode(value, options.codec), { priority: options.priority, timeout: options.timeout });
}

export interface Received { priority: number; bytes: number; value: unknown }

/** Receives one message (or, with follow, every message until interrupted), passing each to `show`. */
export async function receive(name: string, options: { decoding: Decoding; timeout: number | null; follow: boolean },
  show: (message: Received) => void): Promise<void> {
  using queue = new MessageQueue(posixName(name), { write: false });
  do {
    const { data, priority } = await queue.receiveAsync({ timeout: options.timeout });
    let value: unknown;
    try {
      value = decode(data, options.decoding);
    } catch {
      value = data.toString('hex');
    }
    show({ priority, bytes: data.length, value });
  } while (options.follow);
}

export function display(value: unknown): string {
  return typeof value === 'string' ? value : inspect(value, { depth: 6, breakLength: Infinity });
}
