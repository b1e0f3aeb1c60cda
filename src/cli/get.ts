/**
 * `tsraft get KEY`: prints the value's bytes as stored (never re-encoded: invalid UTF-8 is not
 * turned into U+FFFD) and a newline; `--raw` without the newline, `--base64` as base64,
 * `-o json` as JSON (with the key's revisions, its lease when it has one, and the store revision
 * the read reflects). Exit 1 if
 * the key is absent.
 *
 * `tsraft get --prefix P` / `--from A [--to B]`: every key of the range in key-byte order, read page
 * by page (one page in memory at a time, each linearizable unless --stale), printed as it arrives:
 * a line with the key and a line with the value each (`--keys-only`: keys only; `--base64`: both
 * base64), or with `-o json` one document `{"kvs":[{"key","value","encoding","createRevision",
 * "modRevision","version"[,"lease"]},...],"count","revision"}` (keys that are not UTF-8 with
 * `"keyEncoding":"base64"`; `revision`: the first page's). `--limit N` stops after N keys.
 * An empty range is no failure (exit 0).
 */
import { Command } from 'commander';
import type { KvClient, KvRangeSelector } from '../kv/client.js';
import { CliError, EXIT, parseIntOption, UsageError } from './common.js';
import { callCluster, checkKey, makeClient, withClientOptions, type ClientOptions } from './kv-common.js';
import { jsonValue, printJson, wantsJson, withOutputOption, type OutputOptions } from './values.js';

interface GetOptions extends ClientOptions, OutputOptions {
  stale?: boolean;
  raw?: boolean;
  base64?: boolean;
  prefix?: string;
  from?: string;
  to?: string;
  keysOnly?: boolean;
  limit?: string;
}

/** Keys per page when the whole range is read. */
const PAGE_KEYS = 1000;

export function getCommand(): Command {
  return withOutputOption(
    withClientOptions(
      new Command('get')
        .description('print the value of KEY (linearizable read through the leader; exit 1 if absent), or every key of a range (--prefix, --from/--to)')
        .argument('[key]', 'the key (not with --prefix or --from)')
        .option('--stale', 'read from the first node that answers, without confirming it is up to date')
        .option('--raw', 'print the bytes exactly as stored, without a trailing newline (for binary values: tsraft get --raw k > file)')
        .option('--base64', 'print the value base64-encoded (a range: keys and values)')
        .option('--prefix <prefix>', 'print every key that starts with PREFIX, in key order ("" for every key)')
        .option('--from <key>', 'print every key from KEY on, in key order (with --to: up to, not including, --to)')
        .option('--to <key>', 'with --from: the end of the range (exclusive)')
        .option('--keys-only', 'a range: print the keys only')
        .option('--limit <n>', 'a range: stop after N keys (default: all of them, read 1000 at a time)'),
    ),
  ).action(async (key: string | undefined, options: GetOptions) => {
    const json = wantsJson(options);
    const ranged = options.prefix !== undefined || options.from !== undefined;
    if (ranged) {
      if (key !== undefined) throw new UsageError('give either KEY, or --prefix / --from, not both');
      await getRange(options, json);
      return;
    }
    if (options.to !== undefined) throw new UsageError('--to goes with --from');
    if (options.keysOnly === true || options.limit !== undefined) throw new UsageError('--keys-only and --limit go with --prefix or --from');
    if (key === undefined) throw new UsageError('give a KEY, or --prefix / --from for a range');
    checkKey(key);
    if ([options.raw === true, options.base64 === true, json].filter(Boolean).length > 1) throw new UsageError('choose one of --raw, --base64 and -o json');
    const client = makeClient(options);
    if (json) {
      const read = await callCluster(`get ${JSON.stringify(key)}`, () => client.getWithRevisions(key, { stale: options.stale === true }));
      if (read === null) {
        printJson({ key, found: false, value: null, encoding: 'utf8' });
        process.exitCode = EXIT.failed;
        return;
      }
      printJson({
        key,
        found: true,
        ...jsonValue(read.value),
        revision: read.revision,
        createRevision: read.createRevision,
        modRevision: read.modRevision,
        version: read.version,
        ...(read.lease === undefined ? {} : { lease: read.lease }),
      });
      return;
    }
    const value = await callCluster(`get ${JSON.stringify(key)}`, () => client.getBytes(key, { stale: options.stale === true }));
    if (value === null) throw new CliError(`key ${JSON.stringify(key)} not found`, EXIT.failed);
    if (options.base64 === true) process.stdout.write(`${Buffer.from(value).toString('base64')}\n`);
    else if (options.raw === true) process.stdout.write(value);
    else process.stdout.write(Buffer.concat([value, Buffer.from('\n')]));
  });
}

/** Writes to stdout, waiting when its buffer is full (so a slow reader bounds what is held). */
function write(chunk: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (process.stdout.write(chunk, (error) => (error ? reject(error) : undefined))) resolve();
    else process.stdout.once('drain', () => resolve());
  });
}

async function getRange(options: GetOptions, json: boolean): Promise<void> {
  if (options.raw === true) throw new UsageError('--raw reads one key; a range prints keys and values line by line');
  if (json && options.base64 === true) throw new UsageError('choose one of --base64 and -o json');
  if (options.prefix !== undefined && (options.from !== undefined || options.to !== undefined)) throw new UsageError('give either --prefix, or --from (and --to), not both');
  for (const [name, k] of [['--prefix', options.prefix], ['--from', options.from], ['--to', options.to]] as const) {
    if (k !== undefined && Buffer.byteLength(k) > 1024) throw new UsageError(`${name} is ${Buffer.byteLength(k)} bytes; keys are 1..1024 bytes`);
  }
  if (options.to === '') throw new UsageError('--to must not be empty (leave it out to read to the end)');
  if (options.to !== undefined && options.from !== undefined && Buffer.compare(Buffer.from(options.to), Buffer.from(options.from)) <= 0) {
    throw new UsageError('--to must come after --from');
  }
  const limit = options.limit === undefined ? undefined : parseIntOption(options.limit, '--limit', 1);
  const selector: KvRangeSelector =
    options.prefix !== undefined ? { prefix: options.prefix } : { start: options.from!, ...(options.to === undefined ? {} : { end: options.to }) };
  const what = options.prefix !== undefined ? `get --prefix ${JSON.stringify(options.prefix)}` : `get --from ${JSON.stringify(options.from)}`;
  const client: KvClient = makeClient(options);
  const keysOnly = options.keysOnly === true;
  let printed = 0;
  let revision: number | undefined;
  let after: string | undefined;
  if (json) await write('{"kvs":[');
  for (;;) {
    const pageKeys = limit === undefined ? PAGE_KEYS : Math.min(PAGE_KEYS, limit - printed);
    const page = await callCluster(what, () =>
      client.range(selector, { limit: pageKeys, keysOnly, stale: options.stale === true, ...(after === undefined ? {} : { after }) }),
    );
    revision ??= page.revision;
    for (const kv of page.kvs) {
      if (json) {
        const k = jsonValue(kv.key);
        const item: Record<string, unknown> = { key: k.value, ...(k.encoding === 'base64' ? { keyEncoding: 'base64' } : {}) };
        if (kv.value !== undefined) Object.assign(item, jsonValue(kv.value));
        Object.assign(item, { createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version }, kv.lease === undefined ? {} : { lease: kv.lease });
        await write(`${printed === 0 ? '\n  ' : ',\n  '}${JSON.stringify(item)}`);
      } else if (options.base64 === true) {
        await write(`${Buffer.from(kv.key).toString('base64')}\n${kv.value === undefined ? '' : `${Buffer.from(kv.value).toString('base64')}\n`}`);
      } else {
        await write(Buffer.concat([kv.key, Buffer.from('\n'), ...(kv.value === undefined ? [] : [kv.value, Buffer.from('\n')])]));
      }
      printed++;
    }
    if (!page.more || page.next === null || (limit !== undefined && printed >= limit)) break;
    after = page.next;
  }
  if (json) await write(`${printed === 0 ? '' : '\n'}],"count":${printed},"revision":${revision ?? 0}}\n`);
}
