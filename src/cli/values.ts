/**
 * Where the CLI's values come from and how its answers are printed.
 *
 * Values (put, append, cas): a VALUE argument is taken as bytes from
 * - `-`: standard input, read to its end (only when asked: reading stdin whenever no value is
 *   given would hang a script whose stdin is an open pipe, and turn a forgotten argument into an
 *   empty write);
 * - `@FILE`: the file's bytes, as they are (binary-safe);
 * - `@@TEXT`: the literal text `@TEXT` (one leading @ removed);
 * - anything else: the argument's text, as UTF-8. `--literal` takes every value as given.
 *
 * Output: `-o json` (`--output json`) prints one JSON document per command, its shape documented
 * in README "CLI output as JSON"; values in it are text when they are valid UTF-8, else base64
 * (`"encoding": "base64"`).
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { UsageError } from './common.js';

/** The most bytes read from stdin for one value (the server takes at most 1 MiB anyway). */
const STDIN_MAX_BYTES = 16 * 1024 * 1024;

export interface ValueOptions {
  literal?: boolean;
}

/** Adds --literal to a command whose arguments are values. */
export function withValueOptions(command: Command): Command {
  return command
    .option('--literal', 'take values exactly as given (no `-` for stdin, no @FILE)')
    .addHelpText(
      'after',
      '\nValues: `-` reads standard input, `@FILE` a file\'s bytes, `@@TEXT` is the literal text @TEXT; --literal turns this off.',
    );
}

async function readStdin(stdin: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buffer.length;
    if (total > STDIN_MAX_BYTES) throw new UsageError(`standard input holds more than ${STDIN_MAX_BYTES} bytes; a value is at most 1 MiB`);
    chunks.push(buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * Reads the values `args` name (see the module comment), in order; stdin at most once.
 * `names` are the arguments' names, for messages.
 */
export async function readValues(
  args: readonly string[],
  names: readonly string[],
  options: ValueOptions,
  stdin: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin,
): Promise<Uint8Array[]> {
  if (options.literal === true) return args.map((a) => new Uint8Array(Buffer.from(a, 'utf8')));
  if (args.filter((a) => a === '-').length > 1) throw new UsageError('only one value can come from standard input (`-`)');
  const values: Uint8Array[] = [];
  for (const [i, arg] of args.entries()) {
    const name = names[i] ?? 'VALUE';
    if (arg === '-') {
      if (stdin.isTTY === true) process.stderr.write(`tsraft: reading ${name} from standard input (end with Ctrl-D)\n`);
      values.push(await readStdin(stdin));
    } else if (arg.startsWith('@@')) {
      values.push(new Uint8Array(Buffer.from(arg.slice(1), 'utf8')));
    } else if (arg.startsWith('@')) {
      const path = arg.slice(1);
      if (path === '') throw new UsageError(`${name}: "@" needs a file name (@FILE), or write @@ for a literal @`);
      try {
        values.push(new Uint8Array(await readFile(path)));
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : String((error as Error).message);
        throw new UsageError(`${name}: cannot read ${JSON.stringify(path)} (${why}); for a value that starts with @, write @@`);
      }
    } else {
      values.push(new Uint8Array(Buffer.from(arg, 'utf8')));
    }
  }
  return values;
}

export interface OutputOptions {
  output?: string;
  json?: boolean;
}

/** Adds `-o, --output text|json` to a command that prints. */
export function withOutputOption(command: Command): Command {
  return command.addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'));
}

/** Whether `-o json` (or a command's older `--json`) was asked for. */
export function wantsJson(options: OutputOptions): boolean {
  return options.output === 'json' || options.json === true;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes as JSON: `{value, encoding: 'utf8'}` when valid UTF-8, else base64. */
export function jsonValue(bytes: Uint8Array | null): { value: string | null; encoding: 'utf8' | 'base64' } {
  if (bytes === null) return { value: null, encoding: 'utf8' };
  try {
    return { value: strictDecoder.decode(bytes), encoding: 'utf8' };
  } catch {
    return { value: Buffer.from(bytes).toString('base64'), encoding: 'base64' };
  }
}
