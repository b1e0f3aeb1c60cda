/**
 * Part 2C of the 6.824 Raft tests: persistence. Each test follows the 2022–2024 Go test step by
 * step (spec §3.3): the same cluster sizes, crash/restart sequences, sleeps, iteration counts,
 * probabilities and failure messages.
 *
 * Porting conventions: a goroutine is `cfg.go(async () => ...)`, whose promise stands in for the
 * WaitGroup or channel the Go test waits on; Go's `rand.Int()` command is `cfg.randCommand()` and
 * `rand.Int() % N` is `cfg.rand(N)`, drawn in the same order as the Go test draws them, so a seed
 * replays exactly in virtual time.
 */
import { ELECTION_TIMEOUT_MS as ET, type Cluster } from '../../src/harness/cluster.js';
import type { SuiteContext, SuiteTest } from '../../src/harness/suite.js';

export const tests2C: SuiteTest[] = [
  {
    part: '2C',
    name: 'Persist1',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2C): basic persistence');
      await cfg.one(11, servers, true);
      // crash and re-start all
      for (let i = 0; i < servers; i++) cfg.start1(i);
      for (let i = 0; i < servers; i++) {
        cfg.disconnect(i);
        cfg.connect(i);
      }
      await cfg.one(12, servers, true);
      const leader1 = await cfg.checkOneLeader();
      cfg.disconnect(leader1);
      cfg.start1(leader1);
      cfg.connect(leader1);
      await cfg.one(13, servers, true);
      const leader2 = await cfg.checkOneLeader();
      cfg.disconnect(leader2);
      await cfg.one(14, servers - 1, true);
      cfg.start1(leader2);
      cfg.connect(leader2);
      await cfg.wait(4, servers, -1); // wait for leader2 to join before killing i3
      const i3 = ((await cfg.checkOneLeader()) + 1) % servers;
      cfg.disconnect(i3);
      await cfg.one(15, servers - 1, true);
      cfg.start1(i3);
      cfg.connect(i3);
      await cfg.one(16, servers, true);
      cfg.end();
    },
  },
  {
    part: '2C',
    name: 'Persist2',
    async run({ makeCluster }) {
      const servers = 5;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2C): more persistence');
      let index = 1;
      for (let iters = 0; iters < 5; iters++) {
        await cfg.one(10 + index, servers, true);
        index++;
        const leader1 = await cfg.checkOneLeader();
        cfg.disconnect((leader1 + 1) % servers);
        cfg.disconnect((leader1 + 2) % servers);
        await cfg.one(10 + index, servers - 2, true);
        index++;
        cfg.disconnect((leader1 + 0) % servers);
        cfg.disconnect((leader1 + 3) % servers);
        cfg.disconnect((leader1 + 4) % servers);
        cfg.start1((leader1 + 1) % servers);
        cfg.start1((leader1 + 2) % servers);
        cfg.connect((leader1 + 1) % servers);
        cfg.connect((leader1 + 2) % servers);
        await cfg.sleep(ET);
        cfg.start1((leader1 + 3) % servers);
        cfg.connect((leader1 + 3) % servers);
        await cfg.one(10 + index, servers - 2, true);
        index++;
        cfg.connect((leader1 + 4) % servers);
        cfg.connect((leader1 + 0) % servers);
      }
      await cfg.one(1000, servers, true);
      cfg.end();
    },
  },
  {
    part: '2C',
    name: 'Persist3',
    async run({ makeCluster }) {
      const servers = 3;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2C): partitioned leader and one follower crash, leader restarts');
      await cfg.one(101, 3, true);
      const leader = await cfg.checkOneLeader();
      cfg.disconnect((leader + 2) % servers);
      await cfg.one(102, 2, true);
      cfg.crash1((leader + 0) % servers);
      cfg.crash1((leader + 1) % servers);
      cfg.connect((leader + 2) % servers);
      cfg.start1((leader + 0) % servers);
      cfg.connect((leader + 0) % servers);
      await cfg.one(103, 2, true);
      cfg.start1((leader + 1) % servers);
      cfg.connect((leader + 1) % servers);
      await cfg.one(104, servers, true);
      cfg.end();
    },
  },
  {
    // The scenarios of Figure 8 of the extended Raft paper. Each iteration asks a leader, if there
    // is one, to insert a command in the log. That leader then fails quickly with high probability
    // (perhaps before committing the command), or after a while with low probability (most likely
    // after committing it). If too few servers are alive to form a majority, perhaps start one. The
    // leader of a new term may try to finish replicating entries that haven't been committed yet.
    part: '2C',
    name: 'Figure8',
    async run({ makeCluster }) {
      const servers = 5;
      const cfg = makeCluster(servers, false);
      cfg.begin('Test (2C): Figure 8');
      await cfg.one(cfg.randCommand(), 1, true);
      let nup = servers;
      for (let iters = 0; iters < 1000; iters++) {
        let leader = -1;
        for (let i = 0; i < servers; i++) {
          if (cfg.rafts[i] !== null) {
            const { isLeader } = cfg.start(i, cfg.randCommand());
            if (isLeader) leader = i;
          }
        }
        await figure8Sleep(cfg);
        if (leader !== -1) {
          cfg.crash1(leader);
          nup -= 1;
        }
        if (nup < 3) {
          const s = cfg.rand(servers);
          if (cfg.rafts[s] === null) {
            cfg.start1(s);
            cfg.connect(s);
            nup += 1;
          }
        }
      }
      for (let i = 0; i < servers; i++) {
        if (cfg.rafts[i] === null) {
          cfg.start1(i);
          cfg.connect(i);
        }
      }
      await cfg.one(cfg.randCommand(), servers, true);
      cfg.end();
    },
  },
  {
    part: '2C',
    name: 'UnreliableAgree',
    async run({ makeCluster }) {
      const servers = 5;
      const cfg = makeCluster(servers, true);
      cfg.begin('Test (2C): unreliable agreement');
      const waitGroup: Promise<void>[] = [];
      for (let iters = 1; iters < 50; iters++) {
        for (let j = 0; j < 4; j++) {
          waitGroup.push(
            cfg.go(async () => {
              await cfg.one(100 * iters + j, 1, true);
            }),
          );
        }
        await cfg.one(iters, 1, true);
      }
      cfg.setUnreliable(false);
      await Promise.all(waitGroup);
      await cfg.one(100, servers, true);
      cfg.end();
    },
  },
  {
    part: '2C',
    name: 'Figure8Unreliable',
    async run({ makeCluster }) {
      const servers = 5;
      const cfg = makeCluster(servers, true);
      cfg.begin('Test (2C): Figure 8 (unreliable)');
      await cfg.one(cfg.rand(10000), 1, true);
      let nup = servers;
      for (let iters = 0; iters < 1000; iters++) {
        if (iters === 200) cfg.setLongReordering(true);
        let leader = -1;
        for (let i = 0; i < servers; i++) {
          const { isLeader } = cfg.start(i, cfg.rand(10000));
          if (isLeader && cfg.connected[i]) leader = i;
        }
        await figure8Sleep(cfg);
        // Go draws this random number only when there is a leader (&& short-circuits).
        if (leader !== -1 && cfg.rand(1000) < ET / 2) {
          cfg.disconnect(leader);
          nup -= 1;
        }
        if (nup < 3) {
          const s = cfg.rand(servers);
          if (!cfg.connected[s]) {
            cfg.connect(s);
            nup += 1;
          }
        }
      }
      for (let i = 0; i < servers; i++) {
        if (!cfg.connected[i]) cfg.connect(i);
      }
      await cfg.one(cfg.rand(10000), servers, true);
      cfg.end();
    },
  },
  {
    part: '2C',
    name: 'ReliableChurn',
    async run({ makeCluster }) {
      await internalChurn(makeCluster, false);
    },
  },
  {
    part: '2C',
    name: 'UnreliableChurn',
    async run({ makeCluster }) {
      await internalChurn(makeCluster, true);
    },
  },
];

/** Figure 8's pause: with probability 10 % up to ET/2 (long enough to commit), else under 13 ms. */
async function figure8Sleep(cfg: Cluster): Promise<void> {
  if (cfg.rand(1000) < 100) {
    const ms = cfg.rand(ET / 2);
    await cfg.sleep(ms);
  } else {
    const ms = cfg.rand(13);
    await cfg.sleep(ms);
  }
}

/**
 * ReliableChurn and UnreliableChurn: three clients submit commands to whoever accepts them while
 * the main thread disconnects, crashes and restarts random servers; every value a client saw
 * committed must still be in the log at the end.
 */
async function internalChurn(makeCluster: SuiteContext['makeCluster'], unreliable: boolean): Promise<void> {
  const servers = 5;
  const cfg: Cluster = makeCluster(servers, unreliable);
  if (unreliable) cfg.begin('Test (2C): unreliable churn');
  else cfg.begin('Test (2C): churn');

  let stop = false;

  // A client "goroutine": its observed-committed list comes back through the promise, and null
  // (Go's nil) when the client died on a failure before it could set the list.
  const cfn = (me: number): Promise<number[] | null> => {
    let ret: number[] | null = null;
    return cfg
      .go(async () => {
        const values: number[] = [];
        while (!stop) {
          const x = cfg.randCommand();
          let index = -1;
          let ok = false;
          for (let i = 0; i < servers; i++) {
            // try them all, maybe one of them is a leader
            if (cfg.rafts[i] !== null) {
              const result = cfg.start(i, x);
              if (result.isLeader) {
                ok = result.isLeader;
                index = result.index;
              }
            }
          }
          if (ok) {
            // maybe leader will commit our value, maybe not. but don't wait forever.
            for (const to of [10, 20, 50, 100, 200]) {
              const { count: nd, command: cmd } = cfg.nCommitted(index);
              if (nd > 0) {
                if (typeof cmd === 'number') {
                  if (cmd === x) values.push(x);
                } else {
                  cfg.fail('wrong command type');
                }
                break;
              }
              await cfg.sleep(to);
            }
          } else {
            await cfg.sleep(79 + me * 17);
          }
        }
        ret = values;
      })
      .then(() => ret);
  };

  const ncli = 3;
  const cha: Promise<number[] | null>[] = [];
  for (let i = 0; i < ncli; i++) cha.push(cfn(i));

  for (let iters = 0; iters < 20; iters++) {
    if (cfg.rand(1000) < 200) {
      const i = cfg.rand(servers);
      cfg.disconnect(i);
    }
    if (cfg.rand(1000) < 500) {
      const i = cfg.rand(servers);
      if (cfg.rafts[i] === null) cfg.start1(i);
      cfg.connect(i);
    }
    if (cfg.rand(1000) < 200) {
      const i = cfg.rand(servers);
      if (cfg.rafts[i] !== null) cfg.crash1(i);
    }
    // Make crash/restart infrequent enough that the peers can often keep up, but not so
    // infrequent that everything has settled down from one change to the next. Pick a value
    // smaller than the election timeout, but not hugely smaller.
    await cfg.sleep((ET * 7) / 10);
  }

  await cfg.sleep(ET);
  cfg.setUnreliable(false);
  for (let i = 0; i < servers; i++) {
    if (cfg.rafts[i] === null) cfg.start1(i);
    cfg.connect(i);
  }

  stop = true;

  const values: number[] = [];
  for (let i = 0; i < ncli; i++) {
    const vv = await cha[i]!;
    if (vv === null) {
      // Go logs the client's own t.Fatalf first, then "client failed"; surface the first one.
      cfg.checkBackground();
      cfg.fail('client failed');
    }
    values.push(...vv);
  }

  await cfg.sleep(ET);

  const lastIndex = await cfg.one(cfg.randCommand(), servers, true);

  // As in Go, `really` starts with lastIndex+1 zeros (make([]int, lastIndex+1)) and grows by append.
  const really: number[] = new Array<number>(lastIndex + 1).fill(0);
  for (let index = 1; index <= lastIndex; index++) {
    const v = await cfg.wait(index, servers, -1);
    if (typeof v === 'number') really.push(v);
    else cfg.fail('not an int');
  }

  for (const v1 of values) {
    if (!really.includes(v1)) cfg.fail("didn't find a value");
  }

  cfg.end();
}
