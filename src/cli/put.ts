/**
 * `tsraft put KEY VALUE`: prints OK once the write is committed and applied (VALUE: text, `-` stdin,
 * @FILE). `--if-mod-revision N`: only if the key's mod revision is N (0: only if absent); otherwise
 * nothing is written, the key's current mod revision is printed to stderr, and the exit code is 1.
 * `--lease ID`: attach the key to lease ID (`tsraft lease grant`): it is deleted when the lease
 * expires or is revoked; exit 1 if there is no such lease (nothing is written). A put without
 * --lease detaches the key from any lease it had.
 */
import { Command } from 'commander';
import { KvClientError } from '../kv/client.js';
import { CliError, EXIT, parseIntOption } from './common.js';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';
import { parseLeaseId } from './lease.js';
import { printJson, readValues, wantsJson, withOutputOption, withValueOptions, type OutputOptions, type ValueOptions } from './values.js';

export function putCommand(): Command {
  return withOutputOption(
    withValueOptions(
      withClientOptions(
        new Command('put')
          .description('set KEY to VALUE (prints OK once committed)')
          .argument('<key>', 'the key')
          .argument('<value>', 'the value: text, `-` for standard input, @FILE for a file (use -- before a value that starts with -)')
          .option('--if-mod-revision <n>', "write only if the key's mod revision is N (0: only if the key is absent); exit 1 if not")
          .option('--lease <id>', 'attach the key to lease ID (tsraft lease grant): deleted when it expires or is revoked; exit 1 if there is no such lease'),
      ),
    ),
  ).action(async (key: string, valueArg: string, options: ClientOptions & ValueOptions & OutputOptions & { ifModRevision?: string; lease?: string }) => {
    checkKey(key);
    const ifModRevision = options.ifModRevision === undefined ? undefined : parseIntOption(options.ifModRevision, '--if-mod-revision', 0);
    const lease = options.lease === undefined ? undefined : parseLeaseId(options.lease, '--lease');
    const [value] = await readValues([valueArg], ['VALUE'], options);
    const client = makeClient(options);
    const result = await callCluster(`put ${JSON.stringify(key)}`, async () => {
      try {
        return await client.put(key, value!, { ...(ifModRevision === undefined ? {} : { ifModRevision }), ...(lease === undefined ? {} : { lease }) });
      } catch (error) {
        if (error instanceof KvClientError && error.code === 'lease-not-found') {
          throw new CliError(`lease ${lease} not found (lease-not-found): it expired, was revoked or was never granted; nothing was written`, EXIT.failed);
        }
        throw error;
      }
    });
    const revisions = { ...(result.revision === undefined ? {} : { revision: result.revision }), ...(result.modRevision === undefined ? {} : { modRevision: result.modRevision }) };
    if (result.written === false) {
      if (wantsJson(options)) {
        printJson({ ok: false, key, written: false, index: result.index, ...revisions });
        process.exitCode = EXIT.failed;
        return;
      }
      throw new CliError(`put ${JSON.stringify(key)}: not written: the key's mod revision is ${result.modRevision ?? '?'}${result.modRevision === 0 ? ' (absent)' : ''}, not ${ifModRevision}`, EXIT.failed);
    }
    if (wantsJson(options)) printJson({ ok: true, key, index: result.index, ...revisions, ...(lease === undefined ? {} : { lease }) });
    else printLine('OK');
  });
}
