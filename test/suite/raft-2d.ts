/**
 * Part 2D of the 6.824 Raft tests: log compaction and snapshots. Each test follows the 2022–2024
 * Go test step by step (spec §3.4), with the 2022+ batch size nn = 5 + rand(10) and SnapshotInit
 * from 2023. Every cluster here is made with the snapshot applier (the third makeCluster argument),
 * which snapshots every SNAPSHOT_INTERVAL entries by itself and is kept across start1; the tests
 * only drive the usual helpers and check the persisted raft-state size.
 */
import type { Cluster } from '../../src/harness/cluster.js';
import { BYTES_NOTE, type SuiteContext, type SuiteTest } from '../../src/harness/suite.js';

/** 6.824 `SnapShotInterval`: the applier snapshots after every index i with (i+1) % 10 == 0. */
const SNAPSHOT_INTERVAL = 10;
/** 6.824 `MAXLOGSIZE`: the largest persisted raft state (snapshot excluded) a check tolerates, in bytes. */
const MAX_LOG_SIZE = 2000;

export const tests2D: SuiteTest[] = [
  {
    part: '2D',
    name: 'SnapshotBasic',
    async run({ makeCluster }) {
      await snapcommon(makeCluster, 'Test (2D): snapshots basic', false, true, false);
    },
  },
  {
    part: '2D',
    name: 'SnapshotInstall',
    async run({ makeCluster }) {
      await snapcommon(makeCluster, 'Test (2D): install snapshots (disconnect)', true, true, false);
    },
  },
  {
    part: '2D',
    name: 'SnapshotInstallUnreliable',
    async run({ makeCluster }) {
      await snapcommon(makeCluster, 'Test (2D): install snapshots (disconnect+unreliable)', true, false, false);
    },
  },
  {
    part: '2D',
    name: 'SnapshotInstallCrash',
    async run({ makeCluster }) {
      await snapcommon(makeCluster, 'Test (2D): install snapshots (crash)', false, true, true);
    },
  },
  {
    part: '2D',
    name: 'SnapshotInstallUnCrash',
    async run({ makeCluster }) {
      await snapcommon(makeCluster, 'Test (2D): install snapshots (unreliable+crash)', false, false, true);
    },
  },
  {
    // do the servers persist the snapshots, and restart using snapshot along with the tail of the log?
    part: '2D',
    name: 'SnapshotAllCrash',
    async run({ makeCluster }) {
      const servers = 3;
      const iters = 5;
      const cfg: Cluster = makeCluster(servers, false, true);
      cfg.begin('Test (2D): crash and restart all servers');
      await cfg.one(cfg.randCommand(), servers, true);
      for (let i = 0; i < iters; i++) {
        // perhaps enough to get a snapshot
        const nn = SNAPSHOT_INTERVAL / 2 + cfg.rand(SNAPSHOT_INTERVAL);
        for (let j = 0; j < nn; j++) await cfg.one(cfg.randCommand(), servers, true);
        const index1 = await cfg.one(cfg.randCommand(), servers, true);
        // crash all
        for (let k = 0; k < servers; k++) cfg.crash1(k);
        // revive all
        for (let k = 0; k < servers; k++) {
          cfg.start1(k);
          cfg.connect(k);
        }
        const index2 = await cfg.one(cfg.randCommand(), servers, true);
        if (index2 < index1 + 1) cfg.fail(`index decreased from ${index1} to ${index2}`);
      }
      cfg.end();
    },
  },
  {
    // do servers correctly initialize their in-memory copy of the snapshot, making sure that future
    // writes to persistent state don't lose state?
    part: '2D',
    name: 'SnapshotInit',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg: Cluster = makeCluster(servers, false, true);
      cfg.begin('Test (2D): snapshot initialization after crash');
      await cfg.one(cfg.randCommand(), servers, true);
      // enough ops to make a snapshot
      const nn = SNAPSHOT_INTERVAL + 1;
      for (let i = 0; i < nn; i++) await cfg.one(cfg.randCommand(), servers, true);
      crashAndReviveAll(cfg);
      // a single op, to get something to be written back to persistent storage.
      await cfg.one(cfg.randCommand(), servers, true);
      crashAndReviveAll(cfg);
      // do another op to trigger potential bug
      await cfg.one(cfg.randCommand(), servers, true);
      cfg.end();
    },
  },
];

/** Crashes every server, then restarts each (with the cluster's snapshot applier) and connects it. */
function crashAndReviveAll(cfg: Cluster): void {
  for (let i = 0; i < cfg.n; i++) cfg.crash1(i);
  for (let i = 0; i < cfg.n; i++) {
    cfg.start1(i);
    cfg.connect(i);
  }
}

/**
 * The five snapshot-install variants (Go's `snapcommon`): 30 rounds in which a victim is cut off by
 * disconnect or crash, a batch that may reach a snapshot is started on the sender, and the victim
 * comes back and must catch up, possibly through InstallSnapshot.
 */
async function snapcommon(
  makeCluster: SuiteContext['makeCluster'],
  name: string,
  disconnect: boolean,
  reliable: boolean,
  crash: boolean,
): Promise<void> {
  const iters = 30;
  const servers = 3;
  const cfg: Cluster = makeCluster(servers, !reliable, true);
  cfg.begin(name);
  await cfg.one(cfg.randCommand(), servers, true);
  let leader1 = await cfg.checkOneLeader();
  for (let i = 0; i < iters; i++) {
    let victim = (leader1 + 1) % servers;
    let sender = leader1;
    if (i % 3 === 1) {
      sender = (leader1 + 1) % servers;
      victim = leader1;
    }
    if (disconnect) {
      cfg.disconnect(victim);
      await cfg.one(cfg.randCommand(), servers - 1, true);
    }
    if (crash) {
      cfg.crash1(victim);
      await cfg.one(cfg.randCommand(), servers - 1, true);
    }
    // perhaps send enough to get a snapshot
    const nn = SNAPSHOT_INTERVAL / 2 + cfg.rand(SNAPSHOT_INTERVAL);
    for (let j = 0; j < nn; j++) cfg.start(sender, cfg.randCommand());
    // let applier threads catch up with the Start()'s
    if (!disconnect && !crash) {
      // make sure all followers have caught up, so that an InstallSnapshot RPC isn't required
      // for SnapshotBasic.
      await cfg.one(cfg.randCommand(), servers, true);
    } else {
      await cfg.one(cfg.randCommand(), servers - 1, true);
    }
    if (cfg.logSize() >= MAX_LOG_SIZE) cfg.fail(`Log size too large (${cfg.logSize()} >= ${MAX_LOG_SIZE}, ${BYTES_NOTE})`);
    if (disconnect) {
      // reconnect a follower, who maybe behind and needs to receive a snapshot to catch up.
      cfg.connect(victim);
      await cfg.one(cfg.randCommand(), servers, true);
      leader1 = await cfg.checkOneLeader();
    }
    if (crash) {
      cfg.start1(victim);
      cfg.connect(victim);
      await cfg.one(cfg.randCommand(), servers, true);
      leader1 = await cfg.checkOneLeader();
    }
  }
  cfg.end();
}
