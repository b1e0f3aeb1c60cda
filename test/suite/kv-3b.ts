/**
 * Part 3B of the 6.824 kvraft tests (2021–2024 `src/kvraft/test_test.go`, spec §6.3): the KV
 * service with snapshots (maxraftstate 1000): SnapshotRPC, SnapshotSize, Speed and the snapshot
 * variants of GenericTest. See kv-3a.ts for the porting conventions.
 */
import { ELECTION_TIMEOUT_MS as ET, KvCluster } from '../../src/harness/kv-cluster.js';
import { BYTES_NOTE, type SuiteContext, type SuiteTest } from '../../src/harness/suite.js';
import { genericTest, genericTestSpeed } from './kv-3a.js';

const generic =
  (nclients: number, nservers: number, unreliable: boolean, crash: boolean, partitions: boolean, randomkeys: boolean) =>
  (context: SuiteContext): Promise<void> =>
    genericTest(context, '3B', nclients, nservers, unreliable, crash, partitions, 1000, randomkeys);

export const testsKV3B: SuiteTest[] = [
  {
    part: '3B',
    name: 'SnapshotRPC',
    async run(context) {
      const nservers = 3;
      const maxraftstate = 1000;
      const cfg = new KvCluster(context, { n: nservers, unreliable: false, maxraftstate });
      const ck = cfg.makeClient(cfg.all());
      cfg.begin('Test: InstallSnapshot RPC (3B)');

      await cfg.put(ck, 'a', 'A');
      await cfg.check(ck, 'a', 'A');

      // a bunch of puts into the majority partition.
      cfg.partition([0, 1], [2]);
      {
        const ck1 = cfg.makeClient([0, 1]);
        for (let i = 0; i < 50; i++) await cfg.put(ck1, String(i), String(i));
        await cfg.sleep(ET);
        await cfg.put(ck1, 'b', 'B');
      }

      // check that the majority partition has thrown away most of its log entries.
      const sz = cfg.logSize();
      if (sz > 8 * maxraftstate) cfg.fail(`logs were not trimmed (${sz} > 8*${maxraftstate}; ${BYTES_NOTE})`);

      // now make group that requires participation of lagging server, so that it has to catch up.
      cfg.partition([0, 2], [1]);
      {
        const ck1 = cfg.makeClient([0, 2]);
        await cfg.put(ck1, 'c', 'C');
        await cfg.put(ck1, 'd', 'D');
        await cfg.check(ck1, 'a', 'A');
        await cfg.check(ck1, 'b', 'B');
        await cfg.check(ck1, '1', '1');
        await cfg.check(ck1, '49', '49');
      }

      // now everybody
      cfg.partition([0, 1, 2], []);

      await cfg.put(ck, 'e', 'E');
      await cfg.check(ck, 'c', 'C');
      await cfg.check(ck, 'e', 'E');
      await cfg.check(ck, '1', '1');
      cfg.end();
    },
  },
  {
    // Are the snapshots not too huge? 500 bytes is a generous bound for the state of this test.
    part: '3B',
    name: 'SnapshotSize',
    async run(context) {
      const nservers = 3;
      const maxraftstate = 1000;
      const maxsnapshotstate = 500;
      const cfg = new KvCluster(context, { n: nservers, unreliable: false, maxraftstate });
      const ck = cfg.makeClient(cfg.all());
      cfg.begin('Test: snapshot size is reasonable (3B)');

      for (let i = 0; i < 200; i++) {
        await cfg.put(ck, 'x', '0');
        await cfg.check(ck, 'x', '0');
        await cfg.put(ck, 'x', '1');
        await cfg.check(ck, 'x', '1');
      }

      // check that servers have thrown away most of their log entries
      const sz = cfg.logSize();
      if (sz > 8 * maxraftstate) cfg.fail(`logs were not trimmed (${sz} > 8*${maxraftstate}; ${BYTES_NOTE})`);

      // check that the snapshots are not unreasonably large
      const ssz = cfg.snapshotSize();
      if (ssz > maxsnapshotstate) cfg.fail(`snapshot too large (${ssz} > ${maxsnapshotstate}; ${BYTES_NOTE})`);
      cfg.end();
    },
  },
  { part: '3B', name: 'Speed', run: (context) => genericTestSpeed(context, '3B', 1000) },
  { part: '3B', name: 'SnapshotRecover', run: generic(1, 5, false, true, false, false) },
  { part: '3B', name: 'SnapshotRecoverManyClients', run: generic(20, 5, false, true, false, false) },
  { part: '3B', name: 'SnapshotUnreliable', run: generic(5, 5, true, false, false, false) },
  { part: '3B', name: 'SnapshotUnreliableRecover', run: generic(5, 5, true, true, false, false) },
  { part: '3B', name: 'SnapshotUnreliableRecoverConcurrentPartition', run: generic(5, 5, true, true, true, false) },
  { part: '3B', name: 'SnapshotUnreliableRecoverConcurrentPartitionLinearizable', run: generic(15, 7, true, true, true, true) },
];
