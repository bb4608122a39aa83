// The Python types JavaScript lacks, as small classes the codec reads into and
// writes from, so that Python → JS → Python gives back the same type:
// Float (an integral float such as 1.0), Tuple, Dict (Python's key equality),
// FrozenSet, Complex, Decimal, OrderedDict, Deque, the datetime family and
// PickleBuffer (protocol 5 out-of-band data).

/**
 * A Python float whose value is integral (1.0, 1e15): a plain JS number with
 * such a value is written as an int, so `loads` returns these as `Float`.
 * Arithmetic works through `valueOf()`.
 */
export class Float {
  constructor(readonly value: number) {}
  valueOf(): number { return this.value; }
  toString(): string { return Number.isInteger(this.value) ? this.value.toFixed(1) : String(this.value); }
  toJSON(): number { return this.value; }
}

/** A Python tuple: an Array that pickles as a tuple. Build one with `tuple(...items)`. */
export class Tuple<T = unknown> extends Array<T> {
  // map/filter/slice on a tuple give plain arrays (lists), as in Python.
  static override get [Symbol.species](): ArrayConstructor { return Array; }
}

/** `tuple(1, 'a')` is Python's `(1, 'a')`. */
export function tuple<T extends unknown[]>(...items: T): Tuple<T[number]> {
  const result = new Tuple<T[number]>();
  for (let i = 0; i < items.length; i++) result.push(items[i]);
  return result;
}

/** A tuple with the items of an iterable (Python's `tuple(iterable)`). */
export function toTuple<T>(items: Iterable<T>): Tuple<T> {
  const result = new Tuple<T>();
  for (const item of items) result.push(item);
  return result;
}

export function isTuple(value: unknown): value is Tuple {
  return value instanceof Tuple;
}

/**
 * A plain object (prototype Object.prototype or null): what `loads` makes of a
 * dict of str keys. By prototype, not `constructor`, which may be one of its keys.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A Python frozenset (a Set that pickles as frozenset). */
export class FrozenSet<T = unknown> extends Set<T> {}

// Python's key equality for Dict: 1 == 1.0 == True, tuples and frozensets by
// value. Strings, numbers and bigints are their own keys; the others get a
// canonical key (a string behind a noncharacter prefix, or a number).
const COMPOSITE = '\uFDD0';
const MAX_KEY_DEPTH = 200;
const MAX_KEY_NODES = 100_000;

/** The key a Dict stores for `key`: equal for keys Python finds equal. */
export function canonicalKey(key: unknown): unknown {
  switch (typeof key) {
    case 'string': case 'number': return key;
    case 'object': return key instanceof Tuple || key instanceof FrozenSet || key instanceof Float || Buffer.isBuffer(key) ? composite(key, 0, { nodes: 0 }) : key;
    default: return primitive(key);
  }
}

function primitive(key: unknown): unknown {
  if (typeof key === 'boolean') return key ? 1 : 0;
  if (typeof key === 'bigint') return key >= -9007199254740991n && key <= 9007199254740991n ? Number(key) : key;
  return key;
}

let hashed = 0;

/** How many tuple/frozenset nodes key hashing visited since the last call (the unpickler charges them to its work budget). */
export function takeHashedNodes(): number {
  const nodes = hashed;
  hashed = 0;
  return nodes;
}

// Tuples and frozensets hash by value; a budget stops hostile keys (deep, or wide and shared) from hanging.
function composite(key: unknown, depth: number, budget: { nodes: number }): unknown {
  if (typeof key !== 'object' || key === null) return primitive(key);
  if (key instanceof Float) return key.value;
  if (Buffer.isBuffer(key)) return COMPOSITE + 'b' + key.toString('latin1');
  hashed++;
  if (++budget.nodes > MAX_KEY_NODES || depth > MAX_KEY_DEPTH) throw new TypeError('dict key too large or too deeply nested to hash');
  if (key instanceof Tuple) {
    let out = COMPOSITE + '(';
    for (const item of key) out += describeKey(composite(item, depth + 1, budget)) + ',';
    return out + ')';
  }
  if (key instanceof FrozenSet) {
    const parts: string[] = [];
    for (const item of key) parts.push(describeKey(composite(item, depth + 1, budget)));
    return COMPOSITE + '{' + parts.sort().join(',') + '}';
  }
  return key;
}

function describeKey(key: unknown): string {
  switch (typeof key) {
    case 'string': return key.startsWith(COMPOSITE) ? key : 's' + JSON.stringify(key);
    case 'number': return Object.is(key, -0) ? 'n0' : 'n' + String(key);
    case 'bigint': return 'n' + key.toString();
    default: return 'o' + String(key); // unhashable in Python; any stable text will do
  }
}

/**
 * A Python dict: a Map with Python's key equality (`d.get(1)` finds the key
 * `true` or `1.0`; `d.get(tuple(1, 2))` finds an equal tuple key). The first
 * key inserted is the one kept, as in Python.
 */
export class Dict<K = unknown, V = unknown> extends Map<K, V> {
  #original: Map<unknown, K> | undefined;

  constructor(entries?: Iterable<readonly [K, V]> | null) {
    super();
    if (entries) for (const [key, value] of entries) this.set(key, value);
  }

  override get(key: K): V | undefined { return super.get(canonicalKey(key) as K); }
  override has(key: K): boolean { return super.has(canonicalKey(key) as K); }

  override set(key: K, value: V): this {
    const canonical = canonicalKey(key);
    if (canonical !== key && !super.has(canonical as K)) (this.#original ??= new Map()).set(canonical, key);
    return super.set(canonical as K, value);
  }

  override delete(key: K): boolean {
    const canonical = canonicalKey(key);
    this.#original?.delete(canonical);
    return super.delete(canonical as K);
  }

  override clear(): void {
    this.#original = undefined;
    super.clear();
  }

  // Iteration is the Map's own unless a key was stored under another (canonical) form.
  override keys(): MapIterator<K> {
    return this.#original === undefined || this.#original.size === 0 ? super.keys() : this.#originalKeys();
  }

  override entries(): MapIterator<[K, V]> {
    return this.#original === undefined || this.#original.size === 0 ? super.entries() : this.#originalEntries();
  }

  override [Symbol.iterator](): MapIterator<[K, V]> { return this.entries(); }

  *#originalKeys(): MapIterator<K> {
    const original = this.#original!;
    for (const key of super.keys()) yield original.has(key) ? original.get(key) as K : key;
  }

  *#originalEntries(): MapIterator<[K, V]> {
    const original = this.#original!;
    for (const [key, value] of super.entries()) yield [original.has(key) ? original.get(key) as K : key, value];
  }

  override forEach(callback: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }
}

/** collections.OrderedDict */
export class OrderedDict<K = unknown, V = unknown> extends Dict<K, V> {}

/** collections.deque: an Array with Python's `maxlen` (null when unbounded). */
export class Deque<T = unknown> extends Array<T> {
  maxlen: number | null = null;
  static override get [Symbol.species](): ArrayConstructor { return Array; }
}

/** Python's complex. */
export class Complex {
  constructor(readonly real: number, readonly imag: number) {}
  toString(): string { return `(${this.real}${this.imag < 0 || Object.is(this.imag, -0) ? '-' : '+'}${Math.abs(this.imag)}j)`; }
}

/** decimal.Decimal, kept as its exact text ('1.50', 'NaN', '-Infinity'). */
export class Decimal {
  constructor(readonly value: string) {}
  toString(): string { return this.value; }
  valueOf(): number { return Number(this.value); }
  toJSON(): string { return this.value; }
}

/** datetime.timedelta, normalised as Python does (0 <= seconds < 86400, 0 <= microseconds < 1e6). */
export class TimeDelta {
  readonly days: number;
  readonly seconds: number;
  readonly microseconds: number;
  constructor(days = 0, seconds = 0, microseconds = 0) {
    let us = Math.round(microseconds);
    let s = Math.floor(seconds) + Math.floor(us / 1e6);
    us = ((us % 1e6) + 1e6) % 1e6;
    const d = days + Math.floor(s / 86400);
    s = ((s % 86400) + 86400) % 86400;
    this.days = d;
    this.seconds = s;
    this.microseconds = us;
  }
  /** The whole duration in seconds. */
  total_seconds(): number { return (this.days * 86400 + this.seconds) + this.microseconds / 1e6; }
}

/** datetime.timezone: a fixed offset, with an optional name. */
export class TimeZone {
  static readonly utc: TimeZone = new TimeZone(new TimeDelta(0));
  constructor(readonly offset: TimeDelta, readonly name: string | null = null) {}
}

/**
 * zoneinfo.ZoneInfo: an IANA zone by key. One instance per key, as in Python
 * (`ZoneInfo.of('Europe/Paris')`), so that datetimes sharing a zone share it.
 */
export class ZoneInfo {
  static readonly #cache = new Map<string, ZoneInfo>();
  private constructor(readonly key: string) {}
  static of(key: string): ZoneInfo {
    let zone = ZoneInfo.#cache.get(key);
    if (zone === undefined) ZoneInfo.#cache.set(key, zone = new ZoneInfo(key));
    return zone;
  }
  /** The zone's UTC offset in milliseconds at the instant `utc` (from the runtime's time zone data). */
  offsetAt(utc: number): number {
    const parts = new Intl.DateTimeFormat('en-US', {
      timeZone: this.key, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    }).formatToParts(new Date(utc));
    const field = (type: string) => Number(parts.find((part) => part.type === type)!.value);
    const wall = Date.UTC(field('year'), field('month') - 1, field('day'), field('hour'), field('minute'), field('second'));
    return wall - Math.floor(utc / 1000) * 1000;
  }
}

/** A tzinfo: a fixed offset or a zone. */
export type TzInfo = TimeZone | ZoneInfo;

/** datetime.date */
export class PyDate {
  constructor(readonly year: number, readonly month: number, readonly day: number) {}
}

/** datetime.time (tzinfo is a TimeZone, a ZoneInfo or null). */
export class PyTime {
  constructor(readonly hour = 0, readonly minute = 0, readonly second = 0, readonly microsecond = 0,
    readonly tzinfo: TzInfo | null = null, readonly fold = 0) {}
}

/** datetime.datetime (tzinfo is a TimeZone, a ZoneInfo or null). */
export class PyDateTime {
  constructor(readonly year: number, readonly month: number, readonly day: number,
    readonly hour = 0, readonly minute = 0, readonly second = 0, readonly microsecond = 0,
    readonly tzinfo: TzInfo | null = null, readonly fold = 0) {}

  /** An aware UTC datetime for a JS Date (what `dumps` writes for a Date). */
  static fromDate(date: Date): PyDateTime {
    return new PyDateTime(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(),
      date.getUTCMinutes(), date.getUTCSeconds(), date.getUTCMilliseconds() * 1000, TimeZone.utc);
  }

  /** The instant as a JS Date (microseconds truncated to milliseconds; a naive datetime is taken as UTC). */
  toDate(): Date {
    const wall = Date.UTC(this.year, this.month - 1, this.day, this.hour, this.minute, this.second, Math.floor(this.microsecond / 1000));
    const tz = this.tzinfo;
    if (tz === null) return new Date(wall);
    if (tz instanceof TimeZone) return new Date(wall - tz.offset.total_seconds() * 1000);
    // A zone: the offsets in force a day before and after; those that name this wall time
    // are its instants (two when the clock was set back: fold picks the later, as in Python;
    // none in a gap: fold 0 takes the earlier offset).
    const before = tz.offsetAt(wall - 86_400_000);
    const after = tz.offsetAt(wall + 86_400_000);
    const instants = [...new Set([before, after])].filter((offset) => tz.offsetAt(wall - offset) === offset).map((offset) => wall - offset).sort((a, b) => a - b);
    if (instants.length === 0) return new Date(wall - (this.fold ? after : before));
    return new Date(this.fold ? instants[instants.length - 1] : instants[0]);
  }
}

/**
 * Protocol 5 out-of-band data (Python's pickle.PickleBuffer): `dumps` hands it
 * to `buffer_callback`, which may keep it out of the stream.
 */
export class PickleBuffer {
  constructor(readonly data: Uint8Array, readonly readonly = false) {}
  /** The bytes, without copying. */
  raw(): Uint8Array { return this.data; }
}
