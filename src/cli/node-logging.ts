/**
 * `--log-format` and `--log-level` for `tsraft node` and `tsraft start`, and the logger a node
 * process writes with.
 */
import { createLogger, isLogFormat, isLogLevel, LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevel } from '../runtime/logger.js';
import { UsageError } from './common.js';

/**
 * The format of `--log-format` (default pretty, on a terminal and in a pipe alike: scripts that
 * read the lines of earlier versions keep working; json is asked for).
 */
export function parseLogFormat(value: string | undefined): LogFormat {
  if (value === undefined) return 'pretty';
  if (!isLogFormat(value)) throw new UsageError(`--log-format must be one of ${LOG_FORMATS.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

/** The level of `--log-level` (default info). */
export function parseLogLevel(value: string | undefined): LogLevel {
  if (value === undefined) return 'info';
  if (!isLogLevel(value)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

export interface NodeLoggingConfig {
  readonly id: number;
  readonly logFormat: LogFormat;
  readonly logLevel: LogLevel;
  /** --quiet: ordinary lines are dropped; warnings that concern security still reach stderr. */
  readonly quiet: boolean;
}

/**
 * The loggers of a `tsraft node` process: `main` writes to stdout (nothing with --quiet);
 * `alert` writes to stderr always, for the start-up warnings an operator must not miss.
 */
export function nodeLoggers(config: NodeLoggingConfig): { main: Logger; alert: Logger } {
  const common = { node: config.id, format: config.logFormat } as const;
  return {
    main: createLogger({ ...common, level: config.logLevel, write: config.quiet ? () => undefined : (line) => void process.stdout.write(`${line}\n`) }),
    alert: createLogger({ ...common, level: 'warn', write: (line) => void process.stderr.write(`${line}\n`) }),
  };
}
