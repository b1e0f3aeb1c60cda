/**
 * How a user can run this same CLI again from their own shell, so that the commands `tsraft start`
 * suggests work when pasted as printed. Printing a bare `tsraft` would be wrong whenever the
 * package is not installed globally (inside the repository, or in a project that installed it
 * locally, the name is not on the shell's PATH).
 */
import { realpathSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface CliInvocation {
  /** The command that runs the CLI, e.g. `tsraft`, `npx tsraft` or `node /path/to/main.js`. */
  readonly command: string;
  /** Where `command` must be run from (npx resolves the package from the working directory); undefined: anywhere. */
  readonly directory: string | undefined;
}

/** Quotes `word` for a POSIX shell when it holds anything but plain path characters. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

function realpathOrUndefined(path: string): string | undefined {
  try {
    return statSync(path).isFile() ? realpathSync(path) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The invocation for the CLI whose entry point is `entryPoint`, given the environment it was
 * started with:
 * - started through npm (`npm start`, `npx tsraft start`): npm's PATH holds directories the user's
 *   shell does not have, so `npx tsraft` from the directory npm was run in (INIT_CWD), where npx
 *   finds the same package again;
 * - else a `tsraft` on PATH that is this very entry point (a global install, `npm link`): `tsraft`;
 * - else (e.g. `node dist/src/cli/main.js start`): `node` with the entry point's absolute path,
 *   which works from any directory.
 */
export function cliInvocation(entryPoint: string, env: NodeJS.ProcessEnv = process.env): CliInvocation {
  const launchedByNpm = env['npm_lifecycle_event'] !== undefined && env['INIT_CWD'] !== undefined && env['INIT_CWD'] !== '';
  if (launchedByNpm) return { command: 'npx tsraft', directory: env['INIT_CWD'] };
  const self = realpathOrUndefined(entryPoint) ?? entryPoint;
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    if (realpathOrUndefined(join(dir, 'tsraft')) === self) return { command: 'tsraft', directory: undefined };
  }
  return { command: `node ${shellQuote(self)}`, directory: undefined };
}
