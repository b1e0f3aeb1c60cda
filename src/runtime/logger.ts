/**
 * Structured logs: every record has a time, a level, the node it comes from, a message and fields.
 * Two formats: `pretty` (one line a person reads) and `json` (one object per line, for machines).
 *
 * Hand-written rather than a dependency: a library should not impose a logger, and the whole need
 * is a level filter and two formatters. Old callers that pass `(line: string) => void` keep working
 * through `loggerFromLines`, which turns records back into the plain lines they always received.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'pretty' | 'json';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
export const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json'];

/** Values of a record's fields: anything; what JSON cannot say is turned into a string. */
export type LogFields = Readonly<Record<string, unknown>>;

export interface LogRecord {
  /** ISO 8601, UTC, milliseconds. */
  readonly time: string;
  readonly level: LogLevel;
  /** The node the record is about; null before a node knows its id (or outside a node). */
  readonly node: number | null;
  readonly msg: string;
  readonly fields: LogFields;
}

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Whether records of `level` are written at all (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
  /** A logger that adds `fields` to every record (e.g. `{ component: 'transport' }`). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  readonly node?: number | null;
  /** Records below this level are dropped (default info). */
  readonly level?: LogLevel;
  /** Default pretty. */
  readonly format?: LogFormat;
  /** Where finished lines go, without their newline (default: stderr). */
  readonly write?: (line: string, level: LogLevel) => void;
  /** For tests: the time of a record (default: now). */
  readonly now?: () => Date;
}

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };
/** The record's own keys: a field of the same name is renamed in JSON so it cannot hide them. */
const RESERVED = new Set(['time', 'level', 'node', 'msg']);

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

export function isLogFormat(value: unknown): value is LogFormat {
  return typeof value === 'string' && (LOG_FORMATS as readonly string[]).includes(value);
}

/** A record as one JSON line: `{"time","level","node","msg",...fields}`. */
export function formatJson(record: LogRecord): string {
  const out: Record<string, unknown> = { time: record.time, level: record.level, node: record.node, msg: record.msg };
  for (const [key, value] of Object.entries(record.fields)) {
    if (value === undefined) continue;
    out[RESERVED.has(key) ? `field_${key}` : key] = jsonValue(value);
  }
  // jsonValue leaves nothing JSON.stringify could throw on, and JSON escapes line breaks.
  return JSON.stringify(out);
}

/** A record as one readable line: `2026-01-02T03:04:05.678Z INFO  node=0 became leader term=3 votes=0,1`. */
export function formatPretty(record: LogRecord): string {
  const node = record.node === null ? '' : ` node=${record.node}`;
  return `${record.time} ${record.level.toUpperCase().padEnd(5)}${node} ${plainLine(record.msg, record.fields)}`;
}

/**
 * `component: msg key=value ...`: the component (transport, storage, raft) leads, as the plain
 * lines of earlier versions did, so that what people grep for stays where it was.
 */
export function plainLine(msg: string, fields: LogFields): string {
  const { component, ...rest } = fields;
  const lead = typeof component === 'string' && component !== '' ? `${component}: ` : '';
  const tail = formatFields(component === undefined || lead !== '' ? rest : fields);
  return `${lead}${oneLine(msg)}${tail === '' ? '' : ` ${tail}`}`;
}

/** `key=value` pairs; values with spaces, quotes, `=` or control characters are JSON-quoted. */
export function formatFields(fields: LogFields): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(`${plainOrQuoted(key)}=${plainOrQuoted(textValue(value))}`);
  }
  return parts.join(' ');
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format === 'json' ? formatJson : formatPretty;
  const write = options.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const node = options.node ?? null;
  return new RecordLogger(options.level ?? 'info', {}, (level, msg, fields) => {
    write(format({ time: now().toISOString(), level, node, msg: String(msg), fields }), level);
  });
}

/**
 * A Logger over an old-style line callback: each record becomes `msg key=value ...`, as the
 * callback's owner always received it (no time, no level: the owner adds what it wants).
 */
export function loggerFromLines(sink: (line: string) => void, level: LogLevel = 'info'): Logger {
  return new RecordLogger(level, {}, (_level, msg, fields) => sink(plainLine(msg, fields)));
}

/** A logger that writes nothing. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  enabled: () => false,
  child: () => silentLogger,
};

type Emit = (level: LogLevel, msg: string, fields: LogFields) => void;

class RecordLogger implements Logger {
  constructor(
    private readonly minimum: LogLevel,
    private readonly bound: LogFields,
    private readonly emit: Emit,
  ) {}

  debug(msg: string, fields?: LogFields): void {
    this.record('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.record('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.record('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.record('error', msg, fields);
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.minimum];
  }

  child(fields: LogFields): Logger {
    return new RecordLogger(this.minimum, { ...this.bound, ...fields }, this.emit);
  }

  private record(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    if (!this.enabled(level)) return;
    // A log line must never take the node down: a sink that throws (a closed pipe) is ignored.
    try {
      this.emit(level, msg, fields === undefined ? this.bound : { ...this.bound, ...fields });
    } catch {
      // nothing sensible to do: the log itself is what failed
    }
  }
}

function oneLine(text: string): string {
  // One record, one line: a message with a line break (an error's stack) keeps it escaped.
  return text.replace(/\r?\n/g, '\\n').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function plainOrQuoted(text: string): string {
  return text !== '' && /^[^\s"=\\\u0000-\u001f\u007f]+$/.test(text) ? text : JSON.stringify(text);
}

function textValue(value: unknown): string {
  if (typeof value === 'string') return value;
  // An empty list reads as `none` rather than a bare `""`, as the plain lines always said it.
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.map((v) => textValue(v)).join(',');
  if (value instanceof Error) return value.message;
  if (value === null || typeof value !== 'object') return String(value);
  const json = jsonValue(value);
  return typeof json === 'string' ? json : JSON.stringify(json);
}

/** `value` reduced to what JSON can carry: errors as messages, bigints as strings, cycles cut. */
function jsonValue(value: unknown, seen: Set<object> = new Set()): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint' || typeof value === 'symbol' || typeof value === 'function' || value === undefined) return String(value);
  if (value instanceof Error) return value.message;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  if (seen.has(value)) return '[cycle]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => jsonValue(v, seen));
    if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), jsonValue(v, seen)]));
    if (value instanceof Set) return [...value].map((v) => jsonValue(v, seen));
    if (ArrayBuffer.isView(value)) return `<${value.byteLength} bytes>`;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = jsonValue(v, seen);
    return out;
  } catch {
    return '[unserializable]';
  } finally {
    seen.delete(value);
  }
}
