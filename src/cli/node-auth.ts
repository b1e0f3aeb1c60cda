/**
 * `tsraft node --auth-file`: the auth file (security/auth-file.ts) read before the node starts —
 * a bad one refuses to start (exit 2) before the data directory is touched — and read again on
 * SIGHUP, so that tokens are added or removed (`tsraft tokens`) without a restart. A file that
 * cannot be read or is not valid on reload is one log line; the one in force stays.
 */
import type { KvServer } from '../kv/server.js';
import { ConfigError } from '../runtime/errors.js';
import { readAuthFile, type AuthFile } from '../security/auth-file.js';
import { CliError, EXIT } from './common.js';

/** Reads the auth file; a missing, unreadable or invalid one is a CliError (exit 2) naming the file and the field. */
export async function readNodeAuthFile(path: string): Promise<AuthFile> {
  try {
    return await readAuthFile(path);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(`--auth-file: ${error.problems.join('; ')}`, EXIT.usage);
    throw error;
  }
}

/** Re-reads `path` into `server` on every SIGHUP; returns what stops listening. */
export function reloadAuthOnSighup(server: KvServer, path: string, log: (line: string) => void): () => void {
  let reading = false;
  const reload = (): void => {
    // Two quick SIGHUPs: the second read would see the same file.
    if (reading) return;
    reading = true;
    readAuthFile(path)
      .then((file) => {
        server.setAuth(file, `auth file ${path}`);
        log(`auth file ${path} reloaded: ${file.tokens.length} token${file.tokens.length === 1 ? '' : 's'}, public: ${(file.public ?? []).join(', ') || 'none'}`);
      })
      .catch((error: unknown) => {
        const why = error instanceof ConfigError ? error.problems.join('; ') : String(error);
        log(`auth file ${path} not reloaded, the previous one stays in force: ${why}`);
      })
      .finally(() => (reading = false));
  };
  process.on('SIGHUP', reload);
  return () => process.off('SIGHUP', reload);
}
