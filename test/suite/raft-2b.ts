/**
 * Part 2B of the 6.824 Raft tests: log replication. Each test follows the Go test step by step
 * (spec §3.2), including the 2023+ follower- and leader-failure tests and the RPC budgets.
 */
import { ELECTION_TIMEOUT_MS as ET, type Cluster } from '../../src/harness/cluster.js';
import type { Command } from '../../src/harness/command.js';
import { BYTES_NOTE, type SuiteTest } from '../../src/harness/suite.js';

export const tests2B: SuiteTest[] = [
  {
    part: '2B',
    name: 'BasicAgree',
    async run({ makeCluster }) {
      const cfg = makeCluster(3, false);
      cfg.begin('Test (2B): basic agreement');
      for (let index = 1; index < 4; index++) {
        const { count } = cfg.nCommitted(index);
        if (count > 0) cfg.fail('some have committed before Start()');
        const xindex = await cfg.one(index * 100, 3, false);
        if (xindex !== index) cfg.fail(`got index ${xindex} but expected ${index}`);
      }
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'RPCBytes',
    async run({ makeCluster }) {
      const cfg = makeCluster(3, false);
      cfg.begin('Test (2B): RPC byte count');
      await cfg.one(99, 3, false);
      const bytes0 = cfg.bytesTotal();
      const iters = 10;
      let sent = 0;
      for (let index = 2; index < iters + 2; index++) {
        const cmd = cfg.randString(5000);
        const xindex = await cfg.one(cmd, 3, false);
        if (xindex !== index) cfg.fail(`got index ${xindex} but expected ${index}`);
        sent += cmd.length;
      }
      const got = cfg.bytesTotal() - bytes0;
      const expected = 3 * sent;
      if (got > expected + 50_000) cfg.fail(`too many RPC bytes; got ${got}, expected ${expected} (${BYTES_NOTE})`);
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'FollowerFailure',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2B): test progressive failure of followers');
      await cfg.one(101, servers, false);
      // disconnect one follower from the network.
      const leader1 = await cfg.checkOneLeader();
      cfg.disconnect((leader1 + 1) % servers);
      // the leader and remaining follower should be able to agree despite the disconnected follower.
      await cfg.one(102, servers - 1, false);
      await cfg.sleep(ET);
      await cfg.one(103, servers - 1, false);
      // disconnect the remaining follower
      const leader2 = await cfg.checkOneLeader();
      cfg.disconnect((leader2 + 1) % servers);
      cfg.disconnect((leader2 + 2) % servers);
      // submit a command.
      const { index, isLeader } = cfg.start(leader2, 104);
      if (!isLeader) cfg.fail('leader rejected Start()');
      if (index !== 4) cfg.fail(`expected index 4, got ${index}`);
      await cfg.sleep(2 * ET);
      // check that command 104 did not commit.
      const { count } = cfg.nCommitted(index);
      if (count > 0) cfg.fail(`${count} committed but no majority`);
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'LeaderFailure',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2B): test failure of leaders');
      await cfg.one(101, servers, false);
      // disconnect the first leader.
      const leader1 = await cfg.checkOneLeader();
      cfg.disconnect(leader1);
      // the remaining followers should elect a new leader.
      await cfg.one(102, servers - 1, false);
      await cfg.sleep(ET);
      await cfg.one(103, servers - 1, false);
      // disconnect the new leader.
      const leader2 = await cfg.checkOneLeader();
      cfg.disconnect(leader2);
      // submit a command to each server.
      for (let i = 0; i < servers; i++) cfg.start(i, 104);
      await cfg.sleep(2 * ET);
      // check that command 104 did not commit.
      const { count } = cfg.nCommitted(4);
      if (count > 0) cfg.fail(`${count} committed but no majority`);
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'FailAgree',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2B): agreement after follower reconnects');
      await cfg.one(101, servers, false);
      // disconnect one follower from the network.
      const leader = await cfg.checkOneLeader();
      cfg.disconnect((leader + 1) % servers);
      // the leader and remaining follower should be able to agree despite the disconnected follower.
      await cfg.one(102, servers - 1, false);
      await cfg.one(103, servers - 1, false);
      await cfg.sleep(ET);
      await cfg.one(104, servers - 1, false);
      await cfg.one(105, servers - 1, false);
      // re-connect
      cfg.connect((leader + 1) % servers);
      // the full set of servers should preserve previous agreements, and be able to agree on new commands.
      await cfg.one(106, servers, true);
      await cfg.sleep(ET);
      await cfg.one(107, servers, true);
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'FailNoAgree',
    async run({ makeCluster }) {
      const servers = 5;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2B): no agreement if too many followers disconnect');
      await cfg.one(10, servers, false);
      // 3 of 5 followers disconnect
      const leader = await cfg.checkOneLeader();
      cfg.disconnect((leader + 1) % servers);
      cfg.disconnect((leader + 2) % servers);
      cfg.disconnect((leader + 3) % servers);
      const started = cfg.start(leader, 20);
      if (!started.isLeader) cfg.fail('leader rejected Start()');
      if (started.index !== 2) cfg.fail(`expected index 2, got ${started.index}`);
      await cfg.sleep(2 * ET);
      const { count } = cfg.nCommitted(started.index);
      if (count > 0) cfg.fail(`${count} committed but no majority`);
      // repair
      cfg.connect((leader + 1) % servers);
      cfg.connect((leader + 2) % servers);
      cfg.connect((leader + 3) % servers);
      // the disconnected majority may have chosen a leader from among their own ranks, forgetting index 2.
      const leader2 = await cfg.checkOneLeader();
      const again = cfg.start(leader2, 30);
      if (!again.isLeader) cfg.fail('leader2 rejected Start()');
      if (again.index < 2 || again.index > 3) cfg.fail(`unexpected index ${again.index}`);
      await cfg.one(1000, servers, true);
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'ConcurrentStarts',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2B): concurrent Start()s');
      let success = false;
      attempts: for (let tryNumber = 0; tryNumber < 5; tryNumber++) {
        if (tryNumber > 0) await cfg.sleep(3000); // give solution some time to settle
        const leader = await cfg.checkOneLeader();
        const first = cfg.start(leader, 1);
        if (!first.isLeader) continue; // leader moved on really quickly
        const term = first.term;
        const iters = 5;
        const indices: number[] = [];
        // the Go test starts these in concurrent goroutines; they run at one instant here too
        await Promise.all(
          Array.from({ length: iters }, (_, ii) =>
            cfg.go(async () => {
              const result = cfg.start(leader, 100 + ii);
              if (result.term !== term || !result.isLeader) return;
              indices.push(result.index);
            }),
          ),
        );
        for (let j = 0; j < servers; j++) {
          if (cfg.getState(j).term !== term) continue attempts; // term changed -- can't expect low RPC counts
        }
        let failed = false;
        const committed: Command[] = [];
        for (const index of indices) {
          const cmd = await cfg.wait(index, servers, term);
          if (cmd === -1) {
            failed = true; // peers have moved on to later terms so we can't expect all Start()s to have succeeded
            break;
          }
          if (typeof cmd !== 'number') cfg.fail(`value ${String(cmd)} is not an int`);
          committed.push(cmd);
        }
        if (failed) continue;
        for (let ii = 0; ii < iters; ii++) {
          const x = 100 + ii;
          if (!committed.includes(x)) cfg.fail(`cmd ${x} missing in [${committed.join(' ')}]`);
        }
        success = true;
        break;
      }
      if (!success) cfg.fail('term changed too often');
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'Rejoin',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2B): rejoin of partitioned leader');
      await cfg.one(101, servers, true);
      // leader network failure
      const leader1 = await cfg.checkOneLeader();
      cfg.disconnect(leader1);
      // make old leader try to agree on some entries
      cfg.start(leader1, 102);
      cfg.start(leader1, 103);
      cfg.start(leader1, 104);
      // new leader commits, also for index=2
      await cfg.one(103, 2, true);
      // new leader network failure
      const leader2 = await cfg.checkOneLeader();
      cfg.disconnect(leader2);
      // old leader connected again
      cfg.connect(leader1);
      await cfg.one(104, 2, true);
      // all together now
      cfg.connect(leader2);
      await cfg.one(105, servers, true);
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'Backup',
    async run({ makeCluster }) {
      const servers = 5;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2B): leader backs up quickly over incorrect follower logs');
      await cfg.one(cfg.randCommand(), servers, true);
      // put leader and one follower in a partition
      const leader1 = await cfg.checkOneLeader();
      cfg.disconnect((leader1 + 2) % servers);
      cfg.disconnect((leader1 + 3) % servers);
      cfg.disconnect((leader1 + 4) % servers);
      // submit lots of commands that won't commit
      for (let i = 0; i < 50; i++) cfg.start(leader1, cfg.randCommand());
      await cfg.sleep(ET / 2);
      cfg.disconnect((leader1 + 0) % servers);
      cfg.disconnect((leader1 + 1) % servers);
      // allow other partition to recover
      cfg.connect((leader1 + 2) % servers);
      cfg.connect((leader1 + 3) % servers);
      cfg.connect((leader1 + 4) % servers);
      // lots of successful commands to new group.
      for (let i = 0; i < 50; i++) await cfg.one(cfg.randCommand(), 3, true);
      // now another partitioned leader and one follower
      const leader2 = await cfg.checkOneLeader();
      let other = (leader1 + 2) % servers;
      if (leader2 === other) other = (leader2 + 1) % servers;
      cfg.disconnect(other);
      // lots more commands that won't commit
      for (let i = 0; i < 50; i++) cfg.start(leader2, cfg.randCommand());
      await cfg.sleep(ET / 2);
      // bring original leader back to life,
      for (let i = 0; i < servers; i++) cfg.disconnect(i);
      cfg.connect((leader1 + 0) % servers);
      cfg.connect((leader1 + 1) % servers);
      cfg.connect(other);
      // lots of successful commands to new group.
      for (let i = 0; i < 50; i++) await cfg.one(cfg.randCommand(), 3, true);
      // now everyone
      for (let i = 0; i < servers; i++) cfg.connect(i);
      await cfg.one(cfg.randCommand(), servers, true);
      cfg.end();
    },
  },
  {
    part: '2B',
    name: 'Count',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2B): RPC counts aren\'t too high');
      const rpcs = (): number => {
        let n = 0;
        for (let j = 0; j < servers; j++) n += cfg.rpcCount(j);
        return n;
      };
      const leader0 = await cfg.checkOneLeader();
      const total0 = rpcs();
      if (total0 > 30 || total0 < 1) cfg.fail(`too many or few RPCs (${total0}) to elect initial leader`);
      let total2 = 0;
      const success = await countAgreement(cfg, leader0, rpcs, (n) => {
        total2 = n;
      });
      if (!success) cfg.fail('term changed too often');
      await cfg.sleep(ET);
      const total3 = rpcs();
      if (total3 - total2 > 3 * 20) cfg.fail(`too many RPCs (${total3 - total2}) for 1 second of idleness`);
      cfg.end();
    },
  },
];

/** The agreement phase of TestCount: up to five tries to commit 11 entries within the RPC budget. */
async function countAgreement(
  cfg: Cluster,
  _firstLeader: number,
  rpcs: () => number,
  recordTotal: (total: number) => void,
): Promise<boolean> {
  const servers = cfg.n;
  attempts: for (let tryNumber = 0; tryNumber < 5; tryNumber++) {
    if (tryNumber > 0) await cfg.sleep(3000); // give solution some time to settle
    const leader = await cfg.checkOneLeader();
    const total1 = rpcs();
    const iters = 10;
    const first = cfg.start(leader, 1);
    if (!first.isLeader) continue; // leader moved on really quickly
    const starti = first.index;
    const term = first.term;
    const cmds: number[] = [];
    for (let i = 1; i < iters + 2; i++) {
      const x = cfg.randCommand();
      cmds.push(x);
      const result = cfg.start(leader, x);
      if (result.term !== term) continue attempts; // Term changed while starting
      if (!result.isLeader) continue attempts; // No longer the leader, so term has changed
      if (starti + i !== result.index) cfg.fail('Start() failed');
    }
    for (let i = 1; i < iters + 1; i++) {
      const cmd = await cfg.wait(starti + i, servers, term);
      if (cmd === -1) continue attempts; // term changed -- try again
      if (cmd !== cmds[i - 1]) cfg.fail(`wrong value ${String(cmd)} committed for index ${starti + i}; expected [${cmds.join(' ')}]`);
    }
    for (let j = 0; j < servers; j++) {
      if (cfg.getState(j).term !== term) continue attempts; // term changed -- can't expect low RPC counts
    }
    const total2 = rpcs();
    if (total2 - total1 > (iters + 1 + 3) * 3) cfg.fail(`too many RPCs (${total2 - total1}) for ${iters} entries`);
    recordTotal(total2);
    return true;
  }
  return false;
}
