/**
 * Part 2A of the 6.824 Raft tests: leader election. Each test follows the Go test step by step
 * (spec §3.1): the same cluster sizes, sleeps, checks and failure messages.
 */
import { ELECTION_TIMEOUT_MS as ET } from '../../src/harness/cluster.js';
import type { SuiteTest } from '../../src/harness/suite.js';

export const tests2A: SuiteTest[] = [
  {
    part: '2A',
    name: 'InitialElection',
    async run({ makeCluster }) {
      const cfg = makeCluster(3, false);
      cfg.begin('Test (2A): initial election');
      // is a leader elected?
      await cfg.checkOneLeader();
      // sleep a bit to avoid racing with followers learning of the election, then check all peers agree on the term.
      await cfg.sleep(50);
      const term1 = cfg.checkTerms();
      if (term1 < 1) cfg.fail(`term is ${term1}, but should be at least 1`);
      // does the leader+term stay the same if there is no network failure?
      await cfg.sleep(2 * ET);
      const term2 = cfg.checkTerms();
      if (term1 !== term2) cfg.warn('warning: term changed even though there were no failures');
      // there should still be a leader.
      await cfg.checkOneLeader();
      cfg.end();
    },
  },
  {
    part: '2A',
    name: 'ReElection',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2A): election after network failure');
      const leader1 = await cfg.checkOneLeader();
      // if the leader disconnects, a new one should be elected.
      cfg.disconnect(leader1);
      await cfg.checkOneLeader();
      // if the old leader rejoins, that shouldn't disturb the new leader.
      cfg.connect(leader1);
      const leader2 = await cfg.checkOneLeader();
      // if there's no quorum, no new leader should be elected.
      cfg.disconnect(leader2);
      cfg.disconnect((leader2 + 1) % servers);
      await cfg.sleep(2 * ET);
      // check that the one connected server does not think it is the leader.
      cfg.checkNoLeader();
      // if a quorum arises, it should elect a leader.
      cfg.connect((leader2 + 1) % servers);
      await cfg.checkOneLeader();
      // re-join of last node shouldn't prevent leader from existing.
      cfg.connect(leader2);
      await cfg.checkOneLeader();
      cfg.end();
    },
  },
  {
    part: '2A',
    name: 'ManyElections',
    async run({ makeCluster }) {
      const servers = 7;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2A): multiple elections');
      await cfg.checkOneLeader();
      const iterations = 10;
      for (let ii = 1; ii < iterations; ii++) {
        // disconnect three nodes (possibly the same one more than once)
        const i1 = cfg.rand(servers);
        const i2 = cfg.rand(servers);
        const i3 = cfg.rand(servers);
        cfg.disconnect(i1);
        cfg.disconnect(i2);
        cfg.disconnect(i3);
        // either the current leader should still be alive, or the remaining four should elect a new one.
        await cfg.checkOneLeader();
        cfg.connect(i1);
        cfg.connect(i2);
        cfg.connect(i3);
      }
      await cfg.checkOneLeader();
      cfg.end();
    },
  },
];
