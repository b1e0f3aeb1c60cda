/**
 * `tsraft tokens add|list|remove`: the bearer tokens of an auth file (security/auth-file.ts), which
 * `tsraft node --auth-file` reads (and re-reads on SIGHUP):
 *
 *     tsraft tokens add    --file auth.json --name app --role read --role write   prints the new token once
 *     tsraft tokens list   --file auth.json                                        names and roles
 *     tsraft tokens remove --file auth.json --name app
 *
 * Only a token's SHA-256 is stored, so a token cannot be shown again: a lost one is removed and
 * added anew. The file is created (mode 0600) when missing and always replaced atomically (a
 * temporary file, fsync, rename), so a node reloading it never reads half a file. Every error is
 * one line: exit 2 for a bad option, a name taken or a missing file (fix the command line), 1 for
 * an I/O failure, an auth file that is not valid, or a name to remove that is not there.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { ConfigError } from '../runtime/errors.js';
import { AUTH_FILE_VERSION, generateToken, hashToken, parseAuthFile, type AuthFile, type Role } from '../security/auth-file.js';
import { ioError, parseClientName, parseRoles, shellQuote } from './certs.js';
import { CliError, EXIT, UsageError, formatTable } from './common.js';
import { printLine } from './kv-common.js';

interface FileOption {
  file: string;
}

interface AddOptions extends FileOption {
  name: string;
  role?: string[];
  quiet?: boolean;
}

interface RemoveOptions extends FileOption {
  name: string;
}

function parseFile(text: string): string {
  if (text.trim() === '') throw new UsageError('--file: expected a file name');
  return resolve(text);
}

/** The auth file at `path`; null when it does not exist. A file that is not valid is a CliError (exit 1). */
function readAuthFileIfAny(path: string): AuthFile | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('cannot read', path, error);
  }
  try {
    return parseAuthFile(text, path);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(`${error.problems.join('; ')} (fix or remove the file)`, EXIT.failed);
    throw error;
  }
}

function readExistingAuthFile(path: string): AuthFile {
  const file = readAuthFileIfAny(path);
  if (file === null) throw new CliError(`${path} does not exist; create it with \`tsraft tokens add --file ${shellQuote(path)} --name <name> --role <role>\``, EXIT.usage);
  return file;
}

/**
 * Replaces `path` with `file` atomically, mode 0600: written to a temporary file beside it,
 * fsynced, renamed over it, the directory fsynced (where the platform allows).
 */
function writeAuthFile(path: string, file: AuthFile): void {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(file, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw ioError('cannot write', path, error);
  }
  try {
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch {
    // Not every platform can fsync a directory; the rename itself is atomic.
  }
}

/**
 * Adds a token for principal `name` with `roles` to the auth file at `path` (created, mode 0600,
 * with `"public": []`, when missing) and returns the token: the only time it exists outside the
 * caller. CliError when `name` has a token already (exit 2), the file is not valid or cannot be
 * written (exit 1). For `tsraft tokens add`, and for commands that set up a cluster with one.
 */
export function addToken(path: string, name: string, roles: readonly Role[]): string {
  const existing = readAuthFileIfAny(path);
  const file: AuthFile = existing ?? { version: AUTH_FILE_VERSION, tokens: [], public: [] };
  if (file.tokens.some((t) => t.name === name)) {
    throw new CliError(`${path} already has a token named ${JSON.stringify(name)}; remove it first (\`tsraft tokens remove --file ${shellQuote(path)} --name ${name}\`) or pick another name`, EXIT.usage);
  }
  const token = generateToken();
  writeAuthFile(path, { ...file, tokens: [...file.tokens, { name, roles: [...roles], sha256: hashToken(token) }] });
  return token;
}

export function runTokensAdd(options: AddOptions): void {
  const path = parseFile(options.file);
  const name = parseClientName(options.name);
  const roles = parseRoles(options.role) as Role[];
  const token = addToken(path, name, roles);
  if (options.quiet === true) {
    printLine(token);
    return;
  }
  const what = roles.length === 0 ? 'no roles: it may read /metrics and /v1/status only' : `roles ${roles.join(', ')}`;
  printLine(`added token ${JSON.stringify(name)} (${what}) to ${path}; it is shown this once (only its SHA-256 is stored):`);
  printLine(token);
  printLine(`use it: TSRAFT_TOKEN=${token} tsraft get <key>   (or --token, or the header "Authorization: Bearer <token>")`);
  printLine(`a node already running with --auth-file ${shellQuote(path)} takes it on SIGHUP (kill -HUP <its pid>)`);
}

export function runTokensList(options: FileOption): void {
  const path = parseFile(options.file);
  const file = readExistingAuthFile(path);
  if (file.tokens.length === 0) printLine(`${path}: no tokens`);
  else printLine(formatTable([['NAME', 'ROLES'], ...file.tokens.map((t) => [t.name, t.roles.length === 0 ? '(none)' : t.roles.join(', ')])]));
  printLine(`public: ${(file.public ?? []).length === 0 ? '(none: /metrics and /v1/status need a token)' : file.public!.join(', ')}`);
}

export function runTokensRemove(options: RemoveOptions): void {
  const path = parseFile(options.file);
  const name = parseClientName(options.name);
  const file = readExistingAuthFile(path);
  if (!file.tokens.some((t) => t.name === name)) {
    const names = file.tokens.map((t) => t.name).join(', ');
    throw new CliError(`${path} has no token named ${JSON.stringify(name)} (it has ${names === '' ? 'none' : names})`, EXIT.failed);
  }
  writeAuthFile(path, { ...file, tokens: file.tokens.filter((t) => t.name !== name) });
  printLine(`removed token ${JSON.stringify(name)} from ${path}; running nodes refuse it once they reload the file (SIGHUP)`);
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const EXIT_HELP = `
Exit codes: 0 done, 1 an I/O failure, an auth file that is not valid, or (remove) no such name,
2 a bad option, a name that has a token already, or (list, remove) no such file.`;

export function tokensCommand(): Command {
  const add = new Command('add')
    .description('add a bearer token to an auth file (created, mode 0600, if missing) and print it once')
    .requiredOption('--file <file>', 'the auth file (as `tsraft node --auth-file`)')
    .requiredOption('--name <name>', 'the principal (1..64 of letters, digits, "_", "." and "-")')
    .option('--role <role>', 'a role: read, write or admin (admin implies read and write; repeatable; default none)', collect)
    .option('-q, --quiet', 'print only the token')
    .addHelpText('after', `${EXIT_HELP}\n\nExample: tsraft tokens add --file auth.json --name app --role read --role write`)
    .action((options: AddOptions) => runTokensAdd(options));
  const list = new Command('list')
    .description("an auth file's principals and their roles")
    .requiredOption('--file <file>', 'the auth file')
    .addHelpText('after', EXIT_HELP)
    .action((options: FileOption) => runTokensList(options));
  const remove = new Command('remove')
    .description("remove a principal's token from an auth file")
    .requiredOption('--file <file>', 'the auth file')
    .requiredOption('--name <name>', 'the principal whose token goes')
    .addHelpText('after', EXIT_HELP)
    .action((options: RemoveOptions) => runTokensRemove(options));
  const tokens = new Command('tokens').description('bearer tokens for the HTTP API: `tsraft tokens add|list|remove` (see `tsraft node --auth-file`)');
  for (const sub of [add, list, remove]) {
    sub.exitOverride().showHelpAfterError('(add --help for usage)');
    tokens.addCommand(sub);
  }
  return tokens;
}
