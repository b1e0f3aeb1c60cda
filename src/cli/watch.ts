/**
 * `tsraft watch KEY` / `--prefix P` / `--from A [--to B]`: prints every change to those keys as it
 * is applied, one line per change, until interrupted (or `--count N` changes):
 *
 *     PUT greeting = hello  (revision 42, version 3)
 *     DELETE greeting  (revision 43)
 *
 * With `-o json`, one JSON object per line: {"revision","type","key","value","encoding",
 * "createRevision","modRevision","version"} (`keyEncoding`/`encoding` base64 when not UTF-8).
 * `--from-revision N` starts at a past revision (every change since, then live). The watch moves to
 * another node when its node goes away, without losing or repeating a change (KvClient.watch).
 *
 * Exit codes: 0 interrupted or --count reached, 1 the start revision is compacted (the message
 * says where to start over), 2 usage error, 3 no node accepted the watch within --timeout.
 */
import { Command } from 'commander';
import type { KvWatchEvent, KvWatchFilter } from '../kv/client-watch.js';
import { parseIntOption, UsageError } from './common.js';
import { callCluster, checkKey, makeClient, withClientOptions, type ClientOptions } from './kv-common.js';
import { jsonValue, wantsJson, withOutputOption, type OutputOptions } from './values.js';

interface WatchOptions extends ClientOptions, OutputOptions {
  prefix?: string;
  from?: string;
  to?: string;
  fromRevision?: string;
  count?: string;
}

function line(revision: number, event: KvWatchEvent, json: boolean): string {
  if (json) {
    const key = jsonValue(event.keyBytes);
    const out: Record<string, unknown> = { revision, type: event.type, key: key.value };
    if (key.encoding !== 'utf8') out['keyEncoding'] = key.encoding;
    if (event.type === 'put') {
      const value = jsonValue(event.valueBytes);
      out['value'] = value.value;
      out['encoding'] = value.encoding;
    }
    out['createRevision'] = event.createRevision;
    out['modRevision'] = event.modRevision;
    out['version'] = event.version;
    return JSON.stringify(out);
  }
  return event.type === 'put'
    ? `PUT ${JSON.stringify(event.key).slice(1, -1)} = ${JSON.stringify(event.value ?? '').slice(1, -1)}  (revision ${revision}, version ${event.version})`
    : `DELETE ${JSON.stringify(event.key).slice(1, -1)}  (revision ${revision})`;
}

function filterOf(key: string | undefined, options: WatchOptions): KvWatchFilter {
  const ranged = [options.prefix !== undefined, options.from !== undefined, key !== undefined].filter(Boolean).length;
  if (ranged !== 1) throw new UsageError('give exactly one of KEY, --prefix or --from');
  if (options.to !== undefined && options.from === undefined) throw new UsageError('--to goes with --from');
  if (key !== undefined) return { key: checkKey(key) };
  if (options.prefix !== undefined) return { prefix: options.prefix };
  return { start: options.from!, ...(options.to === undefined ? {} : { end: options.to }) };
}

export function watchCommand(): Command {
  return withOutputOption(
    withClientOptions(
      new Command('watch')
        .description('print every change to KEY, a prefix (--prefix) or a range (--from/--to) as it is applied, until interrupted')
        .argument('[key]', 'the key (not with --prefix or --from)')
        .option('--prefix <prefix>', 'every key that starts with PREFIX ("" for every key)')
        .option('--from <key>', 'every key from KEY on (with --to: up to, not including, --to)')
        .option('--to <key>', 'with --from: the end of the range (exclusive)')
        .option('--from-revision <n>', 'start at this past revision: every change since, then live (default: from now on)')
        .option('--count <n>', 'exit after N changes'),
    ),
  )
    .addHelpText('after', '\nExit codes: 0 interrupted or --count reached, 1 --from-revision is older than the history kept (start over from a read), 2 usage error, 3 cluster unavailable.')
    .action(async (key: string | undefined, options: WatchOptions) => {
      const filter = filterOf(key, options);
      const fromRevision = options.fromRevision === undefined ? undefined : parseIntOption(options.fromRevision, '--from-revision', 1);
      const count = options.count === undefined ? Infinity : parseIntOption(options.count, '--count', 1);
      const json = wantsJson(options);
      const client = makeClient(options);
      const stop = new AbortController();
      const interrupted = (): void => stop.abort();
      process.once('SIGINT', interrupted);
      process.once('SIGTERM', interrupted);
      let seen = 0;
      try {
        await callCluster('watch', async () => {
          for await (const batch of client.watch(filter, { ...(fromRevision === undefined ? {} : { fromRevision }), signal: stop.signal })) {
            for (const event of batch.events) {
              process.stdout.write(`${line(batch.revision, event, json)}\n`);
              if (++seen >= count) return;
            }
          }
        });
      } finally {
        process.off('SIGINT', interrupted);
        process.off('SIGTERM', interrupted);
        await client.close();
      }
    });
}
