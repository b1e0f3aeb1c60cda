/**
 * `tsraft lease grant|revoke|keepalive|timetolive|list`: leases (see the README's "Leases"), through
 * KvClient, which takes every lease request to the leader (only it times leases).
 *
 *     tsraft lease grant 30                 lease 7 granted with TTL 30 s
 *     tsraft put KEY VALUE --lease 7        attach a key (put.ts)
 *     tsraft lease keepalive 7              renew it every TTL/3 until Ctrl-C / SIGTERM, a line per renewal
 *     tsraft lease keepalive 7 --once       renew it once
 *     tsraft lease timetolive 7 --keys      TTL, seconds left, the keys attached
 *     tsraft lease list                     every lease: id, TTL, keys
 *     tsraft lease revoke 7                 the lease is gone and its keys deleted, at one revision
 *
 * Exit codes: 0 done (keepalive: interrupted), 1 the lease does not exist (expired, revoked, never
 * granted; keepalive: it disappeared while being kept alive), 2 usage error (a TTL or id that is
 * not a positive integer), 3 cluster unavailable (keepalive: no renewal confirmed within the TTL).
 */
import { Command } from 'commander';
import { KvClientError, type KvLeaseKeepAlive } from '../kv/client.js';
import { LEASE_TTL_SECONDS_MAX, LEASE_TTL_SECONDS_MIN } from '../kv/lease-commands.js';
import { CliError, EXIT, formatTable, parseIntOption } from './common.js';
import { callCluster, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';
import { jsonValue, printJson, wantsJson, withOutputOption, type OutputOptions } from './values.js';

type LeaseOptions = ClientOptions & OutputOptions;

/** A lease id given on the command line (a positive integer), or a usage error. */
export function parseLeaseId(text: string, what = 'ID'): number {
  return parseIntOption(text, `${what} (a lease id)`, 1);
}

/** A lease TTL given on the command line, in seconds, or a usage error naming the range. */
function parseTtl(text: string): number {
  return parseIntOption(text, 'TTL (seconds)', LEASE_TTL_SECONDS_MIN, LEASE_TTL_SECONDS_MAX);
}

const NOT_FOUND = (id: number): string => `lease ${id} not found (lease-not-found): it expired, was revoked or was never granted`;

/**
 * callCluster, with 'lease-not-found' said plainly (exit 1, like a key that is not found): the
 * server's message follows, for the details.
 */
function leaseCall<T>(what: string, id: number, call: () => Promise<T>): Promise<T> {
  return callCluster(what, async () => {
    try {
      return await call();
    } catch (error) {
      if (error instanceof KvClientError && error.code === 'lease-not-found') {
        throw new CliError(NOT_FOUND(id), EXIT.failed);
      }
      throw error;
    }
  });
}

function renewalLine(renewal: KvLeaseKeepAlive, json: boolean): string {
  return json ? JSON.stringify({ id: renewal.id, ttl: renewal.ttl, revision: renewal.revision }) : `lease ${renewal.id} kept alive with TTL ${renewal.ttl} s`;
}

async function grant(ttlText: string, options: LeaseOptions): Promise<void> {
  const ttl = parseTtl(ttlText);
  const client = makeClient(options);
  const lease = await callCluster(`lease grant ${ttl}`, () => client.leaseGrant(ttl));
  if (wantsJson(options)) printJson({ id: lease.id, ttl: lease.ttl, revision: lease.revision, index: lease.index });
  else printLine(`lease ${lease.id} granted with TTL ${lease.ttl} s`);
}

async function revoke(idText: string, options: LeaseOptions): Promise<void> {
  const id = parseLeaseId(idText);
  const client = makeClient(options);
  const revoked = await leaseCall(`lease revoke ${id}`, id, () => client.leaseRevoke(id));
  if (wantsJson(options)) printJson({ id: revoked.id, ttl: revoked.ttl, deleted: revoked.deleted, revision: revoked.revision, index: revoked.index });
  else printLine(`lease ${revoked.id} revoked (${revoked.deleted} key${revoked.deleted === 1 ? '' : 's'} deleted, revision ${revoked.revision})`);
}

async function keepalive(idText: string, options: LeaseOptions & { once?: boolean }): Promise<void> {
  const id = parseLeaseId(idText);
  const json = wantsJson(options);
  const client = makeClient(options);
  if (options.once === true) {
    const renewal = await leaseCall(`lease keepalive ${id}`, id, () => client.leaseKeepAlive(id));
    printLine(renewalLine(renewal, json));
    return;
  }
  const what = `lease keepalive ${id}`;
  let renewals = 0;
  const keeper = client.keepLeaseAlive(id, {
    onRenewal: (renewal) => {
      renewals++;
      printLine(renewalLine(renewal, json));
    },
  });
  const interrupted = (): void => keeper.stop();
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    await keeper.done;
  } catch (error) {
    if (error instanceof KvClientError && error.code === 'lease-not-found') {
      if (renewals === 0) throw new CliError(`${what}: ${NOT_FOUND(id)}`, EXIT.failed);
      throw new CliError(`${what}: lease ${id} is gone (lease-not-found): it expired or was revoked; its keys are deleted`, EXIT.failed);
    }
    // After a renewal, a 'timeout' is the keeper's own verdict (nothing confirmed within the TTL),
    // which says more than callCluster's "unavailable" would; the exit code is the same.
    if (renewals > 0 && error instanceof KvClientError && error.code === 'timeout') throw new CliError(`${what}: ${error.message}`, EXIT.unavailable);
    // Anything else (the first keep-alive failed) is said and exits like every other command.
    await callCluster(what, () => Promise.reject(error));
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await client.close();
  }
}

async function timetolive(idText: string, options: LeaseOptions & { keys?: boolean }): Promise<void> {
  const id = parseLeaseId(idText);
  const client = makeClient(options);
  const withKeys = options.keys === true;
  const info = await leaseCall(`lease timetolive ${id}`, id, () => client.leaseTimeToLive(id, { keys: withKeys }));
  if (wantsJson(options)) {
    const keys = info.keys?.map((k) => jsonValue(k));
    // Keys are text when every one is UTF-8; else every one is base64, so that a reader decodes them one way.
    const base64 = keys?.some((k) => k.encoding === 'base64') === true;
    printJson({
      id: info.id,
      ttl: info.ttl,
      remaining: info.remaining,
      keyCount: info.keyCount,
      ...(info.keys === undefined ? {} : { keys: base64 ? info.keys.map((k) => Buffer.from(k).toString('base64')) : keys!.map((k) => k.value), keysEncoding: base64 ? 'base64' : 'utf8' }),
      revision: info.revision,
    });
    return;
  }
  printLine(`lease ${info.id}: TTL ${info.ttl} s, ${info.remaining.toFixed(3)} s remaining, ${info.keyCount} key${info.keyCount === 1 ? '' : 's'}`);
  for (const key of info.keys ?? []) process.stdout.write(Buffer.concat([key, Buffer.from('\n')]));
}

async function list(options: LeaseOptions): Promise<void> {
  const client = makeClient(options);
  const all = await callCluster('lease list', () => client.leaseList());
  if (wantsJson(options)) {
    printJson({ leases: all.leases.map((l) => ({ id: l.id, ttl: l.ttl, keyCount: l.keyCount })), revision: all.revision });
    return;
  }
  if (all.leases.length === 0) {
    printLine('no leases');
    return;
  }
  printLine(formatTable([['id', 'ttl', 'keys'], ...all.leases.map((l) => [String(l.id), `${l.ttl} s`, String(l.keyCount)])], new Set([0, 1, 2])));
}

export function leaseCommand(): Command {
  const leaf = (name: string): Command => withOutputOption(withClientOptions(new Command(name)));
  const grantCommand = leaf('grant')
    .description('grant a lease of TTL seconds: keys put with --lease ID are deleted when it expires or is revoked')
    .argument('<ttl>', `seconds (${LEASE_TTL_SECONDS_MIN}..${LEASE_TTL_SECONDS_MAX}); the leader restarts this clock on every keep-alive`)
    .action(grant);
  const revokeCommand = leaf('revoke')
    .description('revoke lease ID: it is gone and every key attached to it is deleted, at one revision (exit 1 if there is no such lease)')
    .argument('<id>', 'the lease id (from lease grant)')
    .action(revoke);
  const keepaliveCommand = leaf('keepalive')
    .description('keep lease ID alive: a keep-alive every TTL/3, a line per renewal, until Ctrl-C / SIGTERM (exit 1 if the lease disappears)')
    .argument('<id>', 'the lease id')
    .option('--once', 'send one keep-alive and exit')
    .action(keepalive);
  const timetoliveCommand = leaf('timetolive')
    .description("lease ID's TTL, the seconds left on the leader's clock and how many keys it holds (exit 1 if there is no such lease)")
    .argument('<id>', 'the lease id')
    .option('--keys', 'also print the keys attached to it, one per line')
    .action(timetolive);
  const listCommand = leaf('list')
    .description('every lease the store holds: id, TTL, keys attached')
    .action(list);
  const lease = new Command('lease').description('leases: keys that are deleted unless their holder keeps the lease alive (`tsraft lease grant|revoke|keepalive|timetolive|list`)');
  for (const command of [grantCommand, revokeCommand, keepaliveCommand, timetoliveCommand, listCommand]) {
    command.exitOverride().showHelpAfterError('(add --help for usage)');
    lease.addCommand(command);
  }
  return lease.addHelpText(
      'after',
      `
Examples:
  tsraft lease grant 30                       prints: lease 7 granted with TTL 30 s
  tsraft put service/a 10.0.0.1 --lease 7     the key lives as long as lease 7
  tsraft lease keepalive 7                    renew it until Ctrl-C (--once: renew once)
  tsraft lease timetolive 7 --keys            TTL, seconds left, the keys attached
  tsraft lease revoke 7                       the lease and its keys are gone

Exit codes: 0 ok, 1 no such lease (expired, revoked, never granted), 2 usage error, 3 cluster unavailable.`,
    );
}
