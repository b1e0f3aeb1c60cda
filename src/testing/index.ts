/**
 * tsraft/testing: the simulator and the 6.824-style harness, for people who build on tsraft and
 * want to test their own code the way tsraft is tested: seeded, replayable, in virtual time.
 */
export { Cluster, DEFAULT_SIM_TIMING, ELECTION_TIMEOUT_MS, TestFailure } from '../harness/cluster.js';
export type { ClusterOptions, TestFigures } from '../harness/cluster.js';
export { decodeCommand, describeCommand, encodeCommand, type Command } from '../harness/command.js';
export { replayCommand, runSuiteTest } from '../harness/suite.js';
export type { Clock, RunOptions, RunResult, SuiteContext, SuiteTest } from '../harness/suite.js';
export { Network, type ClientEnd, type NetworkOptions, type RpcServer } from '../sim/network.js';
export { Persister } from '../sim/persister.js';
export { Prng } from '../sim/prng.js';
export { RealScheduler, VirtualScheduler, type Scheduler, type Timer } from '../sim/scheduler.js';
export { SimNode, type SimNodeOptions, type SimTiming } from '../sim/sim-node.js';
export { LocalCluster, type LocalClusterOptions } from './local-cluster.js';
export { freeLoopbackPorts } from './ports.js';
export { SimDisk, SimStorage, type SimDiskOptions, type SimDiskStats } from '../sim/sim-storage.js';
export { SimNetwork, SimTransport, type SimNetworkOptions, type SimNetworkStats } from '../sim/sim-network.js';
export { exploreSeed, exploreReplayCommand, type ExploreOptions, type ExploreResult } from '../sim/explorer/explorer.js';
/** The bug zoo: switches that make the core or the driver misbehave, to prove checkers can fail. */
export { INJECTABLE_BUGS, INJECTED_BUGS, type InjectedBug } from '../core/bugs.js';
export { DRIVER_BUGS, type DriverBug } from '../driver/ready-driver.js';
export { INJECTED_DRIVER_BUGS } from '../runtime/node.js';
