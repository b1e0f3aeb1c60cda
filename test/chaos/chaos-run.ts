/**
 * The chaos run, shared by `npm run chaos` (scripts/chaos.ts) and the short run in `npm test`
 * (test/chaos/chaos.test.ts).
 *
 * A 3-node cluster of `tsraft node` processes (fsync on, fast elections) in a temporary directory;
 * `clients` concurrent KvClients doing random get / put / append / cas / delete on a small key set;
 * a fault loop that, one fault at a time, kill -9s a random node (the leader half of the time) and
 * restarts it, or pauses one with SIGSTOP for 1-3 s and resumes it with SIGCONT. Every operation
 * is recorded in a HistoryRecorder (a timeout is an operation of unknown outcome).
 *
 * Afterwards: heal (resume, restart), wait until every node has applied the leader's commit index,
 * read every key on every node (stale reads must agree: the replicas converged) and through the
 * leader (recorded too), then check
 *   - the append keys: every acknowledged append is in the final value exactly once, each client's
 *     acknowledged appends in the order it made them, no token appears twice;
 *   - the whole history is linearizable (checkLinearizable; 'unknown' = the time budget ran out,
 *     reported as a warning).
 * Keys are split so that appends never race with puts: `a*` keys only get appends (and reads),
 * `r*` keys get put / cas / delete (and reads).
 */
import { Prng } from '../../src/sim/prng.js';
import { KvClient, KvClientError } from '../../src/kv/client.js';
import { KvProcessCluster, type KvNodeProcess } from '../../src/testing/process-cluster.js';
import { checkLinearizable, type CheckResult } from '../../src/linearizability/checker.js';
import { HistoryRecorder, describeOperation, type KvInput } from '../../src/linearizability/history.js';

export interface ChaosOptions {
  /** How long clients and faults run, in seconds. */
  readonly seconds: number;
  /** Concurrent clients (default 8). */
  readonly clients?: number;
  /** Seed for the choices of clients and faults (default: random). */
  readonly seed?: number;
  /** Budget of the linearizability check (default 60 s). */
  readonly checkBudgetMs?: number;
  /** Per-operation client timeout (default 3 s): past it an operation is 'unknown'. */
  readonly opTimeoutMs?: number;
  /** Mean pause between a client's operations, in ms (default 5); keeps the history checkable. */
  readonly thinkMs?: number;
  /**
   * Negative control: clients read with `stale: true` (any node, unconfirmed). The history is then
   * expected NOT to be linearizable; this shows the checks can fail.
   */
  readonly staleReads?: boolean;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
  /** Copy every node's output lines here (default: kept for the failure report only). */
  readonly nodeOutput?: (id: number, line: string) => void;
}

export interface ChaosReport {
  readonly seed: number;
  readonly seconds: number;
  readonly clients: number;
  readonly ops: number;
  readonly okOps: number;
  readonly unknownOps: number;
  readonly opsByKind: Record<string, number>;
  readonly acknowledgedWrites: number;
  readonly acknowledgedAppends: number;
  readonly kills: number;
  readonly pauses: number;
  readonly finalIndex: number;
  readonly check: CheckResult;
  readonly checkMs: number;
  /** Violations: the run failed if there is any. */
  readonly problems: string[];
  /** Not violations, worth printing (unknown outcomes, an inconclusive check). */
  readonly warnings: string[];
}

const APPEND_KEYS = ['a0', 'a1', 'a2'];
const REGISTER_KEYS = ['r0', 'r1', 'r2', 'r3'];
const SEPARATOR = ';';


function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


/** The token one append adds: `<client>.<n>;`. */
function token(client: number, n: number): string {
  return `${client}.${n}${SEPARATOR}`;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const seconds = options.seconds;
  const clientCount = options.clients ?? 8;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const checkBudgetMs = options.checkBudgetMs ?? 60_000;
  const opTimeoutMs = options.opTimeoutMs ?? 3000;
  const thinkMs = options.thinkMs ?? 5;
  const log = options.log ?? (() => undefined);
  if (!(seconds > 0 && seconds <= 3600)) throw new RangeError('seconds must be in (0, 3600]');
  if (!Number.isSafeInteger(clientCount) || clientCount < 1 || clientCount > 256) throw new RangeError('clients must be 1..256');

  const random = new Prng(seed);
  const problems: string[] = [];
  const warnings: string[] = [];
  const recorder = new HistoryRecorder();
  const opsByKind: Record<string, number> = {};
  let okOps = 0;
  let unknownOps = 0;
  let acknowledgedWrites = 0;
  /** key → client → acknowledged append numbers, in the order they were made. */
  const ackedAppends = new Map<string, Map<number, number[]>>(APPEND_KEYS.map((k) => [k, new Map()]));
  /** Every token ever sent (acknowledged or not), to spot a token nobody appended. */
  const sentTokens = new Set<string>();
  let kills = 0;
  let pauses = 0;

  log(`chaos: seed ${seed}, ${clientCount} clients, ${seconds} s, keys ${[...APPEND_KEYS, ...REGISTER_KEYS].join(' ')}`);
  const cluster = await KvProcessCluster.start({
    size: 3,
    fsync: true,
    nodeArgs: ['--heartbeat-ms', '50', '--election-timeout-ms', '300-600', '--max-raft-state', '262144'],
    tmpPrefix: 'tsraft-chaos-',
    ...(options.nodeOutput === undefined ? {} : { onOutput: options.nodeOutput }),
  });
  log(`cluster up in ${cluster.root}: ${cluster.endpoints.join(' ')}`);

  let finalIndex = 0;
  let check: CheckResult = { result: 'unknown', keys: 0, keysChecked: 0, elapsedMs: 0, explanation: 'not run' };
  let checkMs = 0;
  try {
    const start = Date.now();
    const end = start + seconds * 1000;

    // ---- clients
    const client = async (c: number): Promise<void> => {
      const kv = new KvClient({ endpoints: cluster.endpoints, clientId: `chaos-${seed}-${c}`, timeoutMs: opTimeoutMs, retryDelayMs: 10, maxRetryDelayMs: 200 });
      // Negative control: reads pinned to one node each (followers too), unconfirmed.
      const reader = options.staleReads === true ? new KvClient({ endpoints: [cluster.endpoints[c % cluster.endpoints.length]!], timeoutMs: opTimeoutMs }) : kv;
      const crand = new Prng(seed * 1000 + c + 1);
      let n = 0;
      const lastSeen = new Map<string, string | null>();
      for (let i = 0; i < 1_000_000 && Date.now() < end; i++) {
        const roll = crand.nextInt(100);
        let input: KvInput;
        if (roll < 30) {
          input = { kind: 'get', key: crand.pick(crand.chance(1, 2) ? APPEND_KEYS : REGISTER_KEYS) };
        } else if (roll < 55) {
          input = { kind: 'append', key: crand.pick(APPEND_KEYS), value: token(c, ++n) };
        } else if (roll < 75) {
          input = { kind: 'put', key: crand.pick(REGISTER_KEYS), value: `v${c}.${++n}` };
        } else if (roll < 95) {
          const key = crand.pick(REGISTER_KEYS);
          const expected = crand.chance(1, 5) ? null : (lastSeen.get(key) ?? null);
          input = { kind: 'cas', key, expected, value: `x${c}.${++n}` };
        } else {
          input = { kind: 'delete', key: crand.pick(REGISTER_KEYS) };
        }
        opsByKind[input.kind] = (opsByKind[input.kind] ?? 0) + 1;
        if (input.kind === 'append') sentTokens.add(input.value);
        const pending = recorder.invoke(c, input);
        try {
          switch (input.kind) {
            case 'get': {
              const value = await reader.get(input.key, { stale: options.staleReads === true });
              pending.ok({ value });
              lastSeen.set(input.key, value);
              break;
            }
            case 'put':
              await kv.put(input.key, input.value);
              pending.ok({});
              acknowledgedWrites++;
              lastSeen.set(input.key, input.value);
              break;
            case 'append': {
              await kv.append(input.key, input.value);
              pending.ok({});
              acknowledgedWrites++;
              const perClient = ackedAppends.get(input.key)!;
              const list = perClient.get(c) ?? [];
              list.push(n);
              perClient.set(c, list);
              break;
            }
            case 'delete':
              await kv.delete(input.key);
              pending.ok({});
              acknowledgedWrites++;
              lastSeen.set(input.key, null);
              break;
            case 'cas': {
              const result = await kv.cas(input.key, input.expected, input.value);
              pending.ok(result.swapped ? { swapped: true } : { swapped: false, value: result.value });
              if (result.swapped) acknowledgedWrites++;
              lastSeen.set(input.key, result.swapped ? input.value : result.value);
              break;
            }
          }
          okOps++;
        } catch (error) {
          pending.unknown();
          unknownOps++;
          if (error instanceof KvClientError && error.code !== 'timeout') {
            // A definite answer that is not a result: a bug (the client only makes valid requests).
            problems.push(`client ${c}: ${input.kind} ${input.key} failed: ${error.code}: ${error.message}`);
          }
        }
        if (thinkMs > 0) await sleep(crand.nextInt(Math.max(1, Math.round(2 * thinkMs))));
      }
    };

    // ---- faults: one at a time, each bounded
    const faults = async (): Promise<void> => {
      await sleep(500 + random.nextInt(1000));
      for (let i = 0; i < 10_000 && Date.now() < end - 1000; i++) {
        const leader = random.chance(1, 2) ? await cluster.leader(300) : undefined;
        const victim: KvNodeProcess = leader ?? random.pick(cluster.nodes);
        if (random.chance(3, 5)) {
          const downMs = 300 + random.nextInt(1200);
          log(`fault: kill -9 node ${victim.id}${victim === leader ? ' (leader)' : ''}, restart after ${downMs} ms`);
          await victim.kill9();
          kills++;
          await sleep(downMs);
          victim.start();
        } else {
          const pauseMs = 1000 + random.nextInt(2000);
          log(`fault: SIGSTOP node ${victim.id}${victim === leader ? ' (leader)' : ''} for ${pauseMs} ms`);
          victim.pause();
          pauses++;
          await sleep(pauseMs);
          victim.resume();
        }
        await sleep(500 + random.nextInt(1500));
      }
    };

    const progress = setInterval(() => log(`… ${Math.round((Date.now() - start) / 1000)} s: ${okOps} ok, ${unknownOps} unknown, ${kills} kills, ${pauses} pauses`), 5000);
    try {
      await Promise.all([faults(), ...Array.from({ length: clientCount }, (_, c) => client(c))]);
    } finally {
      clearInterval(progress);
    }

    // ---- heal and converge
    for (const node of cluster.nodes) {
      node.resume();
      if (!node.alive) node.start();
    }
    log('healed; waiting for every node to catch up');
    try {
      finalIndex = await cluster.waitForConvergence(30_000);
    } catch (error) {
      problems.push((error as Error).message);
    }

    // ---- final reads: every node's local copy must agree; a linearizable read of each key is recorded
    const finalValues = new Map<string, string | null>();
    const reader = new KvClient({ endpoints: cluster.endpoints, clientId: `chaos-${seed}-final`, timeoutMs: 10_000 });
    for (const key of [...APPEND_KEYS, ...REGISTER_KEYS]) {
      const pending = recorder.invoke('final', { kind: 'get', key });
      try {
        const value = await reader.get(key);
        pending.ok({ value });
        finalValues.set(key, value);
      } catch (error) {
        pending.unknown();
        problems.push(`final read of ${key} failed: ${(error as Error).message}`);
        continue;
      }
      for (const node of cluster.nodes) {
        try {
          const local = await new KvClient({ endpoints: [node.url], timeoutMs: 5000 }).get(key, { stale: true });
          if (local !== finalValues.get(key)) {
            problems.push(`replicas diverge on ${key}: node ${node.id} has ${JSON.stringify(local)}, the leader ${JSON.stringify(finalValues.get(key))}`);
          }
        } catch (error) {
          problems.push(`stale read of ${key} on node ${node.id} failed: ${(error as Error).message}`);
        }
      }
    }

    // ---- every acknowledged append present, once, in each client's order
    for (const key of APPEND_KEYS) {
      const value = finalValues.get(key) ?? '';
      const tokens = value === '' ? [] : value.slice(0, -1).split(SEPARATOR).map((t) => `${t}${SEPARATOR}`);
      if (value !== '' && !value.endsWith(SEPARATOR)) problems.push(`${key}: final value does not end with "${SEPARATOR}": ${value.slice(-40)}`);
      const position = new Map<string, number>();
      tokens.forEach((t, i) => {
        if (position.has(t)) problems.push(`${key}: append ${t} applied twice`);
        else position.set(t, i);
        if (!sentTokens.has(t)) problems.push(`${key}: final value holds ${t}, which no client appended`);
      });
      for (const [c, numbers] of ackedAppends.get(key)!) {
        let last = -1;
        for (const n of numbers) {
          const t = token(c, n);
          const at = position.get(t);
          if (at === undefined) {
            problems.push(`${key}: acknowledged append ${t} by client ${c} is missing from the final value`);
            continue;
          }
          if (at < last) problems.push(`${key}: client ${c}'s acknowledged appends are out of order (${t} at ${at}, before an earlier one at ${last})`);
          last = at;
        }
      }
    }

    // ---- linearizability
    const operations = recorder.operations({ pendingAsUnknown: true });
    log(`checking linearizability of ${operations.length} operations (budget ${Math.round(checkBudgetMs / 1000)} s)`);
    const t0 = performance.now();
    check = checkLinearizable(operations, { timeBudgetMs: checkBudgetMs });
    checkMs = performance.now() - t0;
    if (check.result === 'illegal') {
      problems.push(`the history is NOT linearizable: ${check.explanation ?? ''}`);
      if (check.partialOrder !== undefined) {
        const p = check.partialOrder;
        problems.push(
          `key ${p.key}: state after the longest linearizable prefix (${p.prefix.length} ops): ${JSON.stringify(p.stateAfterPrefix)}; ` +
            `candidates:\n      ${p.candidates.slice(0, 10).map(describeOperation).join('\n      ')}`,
        );
      }
    } else if (check.result === 'unknown') {
      warnings.push(`linearizability check inconclusive (checked ${check.keysChecked} of ${check.keys} keys): ${check.explanation ?? 'time budget exhausted'}`);
    }
    if (unknownOps > 0) warnings.push(`${unknownOps} operations have an unknown outcome (timed out during faults); the checker lets each take effect once or not at all`);
  } finally {
    if (problems.length > 0) log(`node output at the end:\n${cluster.describeOutput(15)}`);
    await cluster.stop();
  }

  let acknowledgedAppends = 0;
  for (const perClient of ackedAppends.values()) for (const list of perClient.values()) acknowledgedAppends += list.length;
  return {
    seed,
    seconds,
    clients: clientCount,
    ops: okOps + unknownOps,
    okOps,
    unknownOps,
    opsByKind,
    acknowledgedWrites,
    acknowledgedAppends,
    kills,
    pauses,
    finalIndex,
    check,
    checkMs,
    problems,
    warnings,
  };
}

/** A human-readable summary of a report. */
export function formatChaosReport(report: ChaosReport): string {
  const kinds = Object.entries(report.opsByKind)
    .sort()
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const lines = [
    `chaos summary (seed ${report.seed}, ${report.seconds} s, ${report.clients} clients)`,
    `  operations:          ${report.ops} (${report.okOps} ok, ${report.unknownOps} unknown; ${kinds})`,
    `  acknowledged writes: ${report.acknowledgedWrites} (${report.acknowledgedAppends} appends)`,
    `  faults:              ${report.kills} kill -9, ${report.pauses} SIGSTOP pauses`,
    `  final log index:     ${report.finalIndex}`,
    `  linearizability:     ${report.check.result} (${report.check.keysChecked}/${report.check.keys} keys, check ${(report.checkMs / 1000).toFixed(2)} s)`,
  ];
  for (const warning of report.warnings) lines.push(`  warning: ${warning}`);
  if (report.problems.length === 0) lines.push('  result: OK — every acknowledged write is present and the history is linearizable');
  else {
    lines.push(`  result: FAILED — ${report.problems.length} problem(s):`);
    for (const problem of report.problems.slice(0, 30)) lines.push(`    - ${problem}`);
  }
  return lines.join('\n');
}
