/**
 * Part 3A of the 6.824 kvraft tests (2021–2024 `src/kvraft/test_test.go`, spec §6): a replicated
 * key/value service on Raft, without snapshots. The GenericTest family, Speed, UnreliableOneKey and
 * OnePartition follow the Go tests step by step: the same cluster sizes, client counts, sleeps,
 * probabilities, bounds and failure messages. Beyond the Go tests, every test (not only the
 * GenericTest family) checks its whole clerk history for linearizability at `end()`, including
 * the operations Go leaves out of its log.
 *
 * Porting conventions as in raft-2c.ts: a goroutine is `cfg.go(async () => ...)`, Go's
 * `rand.Int() % N` is `cfg.rand(N)` drawn in the Go test's order. Virtual time: on the reliable
 * network an operation takes the KV server's service time (kv-cluster.ts, KV_SERVICE_MS), so the
 * operation counts depend on it. The `ops` figure (the suite runner's "cmds" column) counts the
 * operations made through the counting wrappers cfg.get/put/append/check, as Go's cfg.op() does.
 */
import { ELECTION_TIMEOUT_MS as ET, KvCluster, type Clerk } from '../../src/harness/kv-cluster.js';
import { BYTES_NOTE, type SuiteContext, type SuiteTest } from '../../src/harness/suite.js';

/** Go prints whole values in its failure messages; ours keep them readable. */
function shorten(v: string): string {
  return v.length > 300 ? `${v.slice(0, 140)} … ${v.slice(-140)} (${v.length} chars)` : v;
}

/** Every "x clnt j y" for j < count is in v exactly once, in order (6.824 checkClntAppends). */
export function checkClntAppends(cfg: KvCluster, clnt: number, v: string, count: number): void {
  let lastoff = -1;
  for (let j = 0; j < count; j++) {
    const wanted = `x ${clnt} ${j} y`;
    const off = v.indexOf(wanted);
    if (off < 0) cfg.fail(`${clnt} missing element ${wanted} in Append result ${shorten(v)}`);
    const off1 = v.lastIndexOf(wanted);
    if (off1 !== off) cfg.fail(`duplicate element ${wanted} in Append result`);
    if (off <= lastoff) cfg.fail(`wrong order for element ${wanted} in Append result`);
    lastoff = off;
  }
}

/** checkClntAppends for every client i with counts[i] appends (6.824 checkConcurrentAppends). */
export function checkConcurrentAppends(cfg: KvCluster, v: string, counts: readonly number[]): void {
  for (let i = 0; i < counts.length; i++) checkClntAppends(cfg, i, v, counts[i]!);
}

/**
 * Spawns `ncli` clients, each with a fresh clerk connected to every server, running `fn`; the
 * returned promises settle when each is done (6.824 spawn_clients_and_wait without the wait).
 */
export function spawnClients(cfg: KvCluster, ncli: number, fn: (cli: number, ck: Clerk) => Promise<void>): Promise<void>[] {
  const done: Promise<void>[] = [];
  for (let cli = 0; cli < ncli; cli++) {
    done.push(
      cfg.go(async () => {
        const ck = cfg.makeClient(cfg.all());
        await fn(cli, ck);
        cfg.deleteClient(ck);
      }),
    );
  }
  return done;
}

/** Repartitions the servers at random until told to stop (6.824 partitioner). */
async function partitioner(cfg: KvCluster, done: () => boolean): Promise<void> {
  while (!done()) {
    const a = cfg.all().map(() => cfg.rand(2));
    const pa: number[][] = [[], []];
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < cfg.n; j++) if (a[j] === i) pa[i]!.push(j);
    }
    cfg.partition(pa[0]!, pa[1]!);
    await cfg.sleep(ET + cfg.rand(200));
  }
}

/**
 * 6.824 GenericTest (2021–2024): `nclients` clients append to and read their own key (or random
 * keys) for three rounds of 5 s, with an unreliable network, crashes of every server after each
 * round, and/or a partitioner; then every append must be present once and in order, the logs must
 * be trimmed (maxraftstate > 0) or no snapshot taken (maxraftstate < 0), and the history must be
 * linearizable.
 */
export async function genericTest(
  context: SuiteContext,
  part: string,
  nclients: number,
  nservers: number,
  unreliable: boolean,
  crash: boolean,
  partitions: boolean,
  maxraftstate: number,
  randomkeys: boolean,
): Promise<void> {
  let title = 'Test: ';
  if (unreliable) title += 'unreliable net, '; // the network drops RPC requests and replies
  if (crash) title += 'restarts, '; // peers re-start, and thus persistence must work
  if (partitions) title += 'partitions, '; // the network may partition
  if (maxraftstate !== -1) title += 'snapshots, ';
  if (randomkeys) title += 'random keys, ';
  title += nclients > 1 ? 'many clients' : 'one client';
  title += ` (${part})`;

  const cfg = new KvCluster(context, { n: nservers, unreliable, maxraftstate });
  cfg.begin(title);
  const ck = cfg.makeClient(cfg.all());

  for (let round = 0; round < 3; round++) {
    let doneClients = false;
    let donePartitioner = false;
    const counts = new Array<number>(nclients).fill(0);
    const clients = spawnClients(cfg, nclients, async (cli, myck) => {
      let j = 0;
      let last = ''; // only used when not randomkeys
      if (!randomkeys) await cfg.put(myck, String(cli), last);
      while (!doneClients) {
        const key = randomkeys ? String(cfg.rand(nclients)) : String(cli);
        const nv = `x ${cli} ${j} y`;
        if (cfg.rand(1000) < 500) {
          await cfg.append(myck, key, nv);
          if (!randomkeys) last += nv;
          j++;
          counts[cli] = j;
        } else if (randomkeys && cfg.rand(1000) < 100) {
          // only with random keys: it would break the check done after Get() operations
          await cfg.put(myck, key, nv);
          j++;
          counts[cli] = j;
        } else {
          const v = await cfg.get(myck, key);
          // the following check only makes sense when we're not using random keys
          if (!randomkeys && v !== last) cfg.fail(`get wrong value, key ${key}, wanted:\n${shorten(last)}\n, got\n${shorten(v)}\n`);
        }
      }
    });

    let partitionerDone: Promise<void> | null = null;
    if (partitions) {
      // Allow the clients to perform some operations without interruption
      await cfg.sleep(1000);
      partitionerDone = cfg.go(() => partitioner(cfg, () => donePartitioner));
    }
    await cfg.sleep(5000);

    doneClients = true; // tell clients to quit
    donePartitioner = true; // tell partitioner to quit

    if (partitionerDone !== null) {
      await partitionerDone;
      // Reconnect the network and submit a request. A client may have submitted a request in a
      // minority: it won't return until that server discovers a new term has started.
      cfg.connectAll();
      // wait for a while so that we have a new term
      await cfg.sleep(ET);
    }

    if (crash) {
      for (let i = 0; i < nservers; i++) cfg.shutdownServer(i);
      // Wait for a while for servers to shutdown, since shutdown isn't a real crash and isn't instantaneous
      await cfg.sleep(ET);
      // crash and re-start all
      for (let i = 0; i < nservers; i++) cfg.startServer(i);
      cfg.connectAll();
    }

    for (let i = 0; i < nclients; i++) {
      await clients[i];
      cfg.checkBackground();
      const key = String(i);
      const v = await cfg.get(ck, key);
      if (!randomkeys) checkClntAppends(cfg, i, v, counts[i]!);
    }

    if (maxraftstate > 0) {
      // Check maximum after the servers have processed all client requests and had time to checkpoint.
      const sz = cfg.logSize();
      if (sz > 8 * maxraftstate) cfg.fail(`logs were not trimmed (${sz} > 8*${maxraftstate}; ${BYTES_NOTE})`);
    }
    if (maxraftstate < 0) {
      // Check that snapshots are not used
      const ssz = cfg.snapshotSize();
      if (ssz > 0) cfg.fail(`snapshot too large (${ssz}), should not be used when maxraftstate = ${maxraftstate}`);
    }
  }

  cfg.end(); // checks the history for linearizability first
}

/**
 * 6.824 GenericTestSpeed: 1000 sequential appends must take at most 100 ms / 3 each on average
 * (a heartbeat of ~100 ms, at least 3 operations per heartbeat: commit cannot wait for one). The
 * operations go straight to the clerk, not through the counting wrappers, so ops is 0 as in Go.
 */
export async function genericTestSpeed(context: SuiteContext, part: string, maxraftstate: number): Promise<void> {
  const nservers = 3;
  const numOps = 1000;
  const cfg = new KvCluster(context, { n: nservers, unreliable: false, maxraftstate });
  const ck = cfg.makeClient(cfg.all());
  cfg.begin(`Test: ops complete fast enough (${part})`);

  // wait until first op completes, so we know a leader is elected and KV servers are ready
  await ck.get('x');

  const start = cfg.scheduler.now();
  for (let i = 0; i < numOps; i++) await ck.append('x', `x 0 ${i} y`);
  const dur = cfg.scheduler.now() - start;

  const v = await ck.get('x');
  checkClntAppends(cfg, 0, v, numOps);

  const heartbeatIntervalMs = 100;
  const opsPerInterval = 3;
  const timePerOpMs = heartbeatIntervalMs / opsPerInterval;
  if (dur > numOps * timePerOpMs) {
    cfg.fail(`Operations completed too slowly ${(dur / numOps).toFixed(6)}ms/op > ${timePerOpMs.toFixed(6)}ms/op`);
  }
  cfg.end();
}

const generic =
  (nclients: number, nservers: number, unreliable: boolean, crash: boolean, partitions: boolean, randomkeys: boolean) =>
  (context: SuiteContext): Promise<void> =>
    genericTest(context, '3A', nclients, nservers, unreliable, crash, partitions, -1, randomkeys);

export const testsKV3A: SuiteTest[] = [
  { part: '3A', name: 'Basic', run: generic(1, 5, false, false, false, false) },
  { part: '3A', name: 'Speed', run: (context) => genericTestSpeed(context, '3A', -1) },
  { part: '3A', name: 'Concurrent', run: generic(5, 5, false, false, false, false) },
  { part: '3A', name: 'Unreliable', run: generic(5, 5, true, false, false, false) },
  {
    part: '3A',
    name: 'UnreliableOneKey',
    async run(context) {
      const nservers = 3;
      const cfg = new KvCluster(context, { n: nservers, unreliable: true, maxraftstate: -1 });
      const ck = cfg.makeClient(cfg.all());
      cfg.begin('Test: concurrent append to same key, unreliable (3A)');
      await cfg.put(ck, 'k', '');
      const nclient = 5;
      const upto = 10;
      const clients = spawnClients(cfg, nclient, async (me, myck) => {
        for (let n = 0; n < upto; n++) await cfg.append(myck, 'k', `x ${me} ${n} y`);
      });
      await Promise.all(clients);
      cfg.checkBackground();
      const counts = new Array<number>(nclient).fill(upto);
      const vx = await cfg.get(ck, 'k');
      checkConcurrentAppends(cfg, vx, counts);
      // Go logs nothing here, so it does not check this history for linearizability; end() does
      // (50 concurrent appends to one key, constrained by the final Get: the checker's pruning of
      // chains of appends settles it well within the 1 s budget).
      cfg.end();
    },
  },
  {
    // Submit a request in the minority partition and check that the request doesn't go through
    // until the partition heals. The leader in the original network ends up in the minority.
    part: '3A',
    name: 'OnePartition',
    async run(context) {
      const nservers = 5;
      const cfg = new KvCluster(context, { n: nservers, unreliable: false, maxraftstate: -1 });
      const ck = cfg.makeClient(cfg.all());
      await cfg.put(ck, '1', '13');

      cfg.begin('Test: progress in majority (3A)');
      const [p1, p2] = cfg.makePartition();
      cfg.partition(p1, p2);
      const ckp1 = cfg.makeClient(p1); // connect ckp1 to p1
      const ckp2a = cfg.makeClient(p2); // connect ckp2a to p2
      const ckp2b = cfg.makeClient(p2); // connect ckp2b to p2
      await cfg.put(ckp1, '1', '14');
      await cfg.check(ckp1, '1', '14');
      cfg.end();

      cfg.begin('Test: no progress in minority (3A)');
      const done0 = cfg.put(ckp2a, '1', '15');
      const done1 = cfg.get(ckp2b, '1'); // different clerk in p2
      const first = await Promise.race([
        done0.then(() => 'put' as const),
        done1.then(() => 'get' as const),
        cfg.sleep(1000).then(() => 'timeout' as const),
      ]);
      if (first === 'put') cfg.fail('Put in minority completed');
      if (first === 'get') cfg.fail('Get in minority completed');
      await cfg.check(ckp1, '1', '14');
      await cfg.put(ckp1, '1', '16');
      await cfg.check(ckp1, '1', '16');
      cfg.end();

      cfg.begin('Test: completion after heal (3A)');
      cfg.connectAll();
      cfg.connectClient(ckp2a, cfg.all());
      cfg.connectClient(ckp2b, cfg.all());
      await cfg.sleep(ET);
      const healed = await Promise.race([done0.then(() => true), cfg.sleep(30 * 100).then(() => false)]);
      if (!healed) cfg.fail('Put did not complete');
      // The Get may still be pending: Go checks it without waiting (select with default).
      await cfg.check(ck, '1', '15');
      cfg.end();
    },
  },
  { part: '3A', name: 'ManyPartitionsOneClient', run: generic(1, 5, false, false, true, false) },
  { part: '3A', name: 'ManyPartitionsManyClients', run: generic(5, 5, false, false, true, false) },
  { part: '3A', name: 'PersistOneClient', run: generic(1, 5, false, true, false, false) },
  { part: '3A', name: 'PersistConcurrent', run: generic(5, 5, false, true, false, false) },
  { part: '3A', name: 'PersistConcurrentUnreliable', run: generic(5, 5, true, true, false, false) },
  { part: '3A', name: 'PersistPartition', run: generic(5, 5, false, true, true, false) },
  { part: '3A', name: 'PersistPartitionUnreliable', run: generic(5, 5, true, true, true, false) },
  { part: '3A', name: 'PersistPartitionUnreliableLinearizable', run: generic(15, 7, true, true, true, true) },
];
