/** tsraft: the Raft consensus algorithm as a pure, deterministic core, and a runtime to drive it. */
export * from './core/index.js';
export * as codec from './codec/index.js';
export { RaftNode } from './runtime/node.js';
export type { Applied, NodeStatus, PeerStatus, Proposed, RaftNodeOptions, RaftNodeTiming, StateMachine } from './runtime/node.js';
export { realClock, type Clock, type ClockTimer } from './runtime/clock.js';
export { createLogger, formatJson, formatPretty, loggerFromLines, silentLogger, type LogFields, type LogFormat, type Logger, type LoggerOptions, type LogLevel, type LogRecord } from './runtime/logger.js';
export { ReadyDriver, type DurableWrite, type ReadyHandlers } from './driver/ready-driver.js';
export {
  BusyError,
  ConfigError,
  NodeStoppedError,
  NotLeaderError,
  OutcomeUnknownError,
  ProposalDroppedError,
  ProposalTimeoutError,
  ProposalTooLargeError,
  RaftError,
} from './runtime/errors.js';
export { ensureClusterIdentity, inspectClusterIdentity, readClusterIdentity, ClusterIdentityError, CLUSTER_IDENTITY_FILE, type ClusterIdentity, type ClusterMember, type EnsuredIdentity, type StoredClusterIdentity } from './storage/cluster-identity.js';
export { FileStorage } from './storage/file-storage.js';
export type { FileStorageOptions } from './storage/file-storage.js';
export { MemoryStorage } from './storage/memory.js';
export { StorageError, type CallbackStorage, type Storage } from './storage/storage.js';
export { TcpTransport } from './transport/tcp.js';
export type { TcpTransportOptions } from './transport/tcp.js';
export { MemoryTransport, MemoryTransportHub } from './transport/memory.js';
export type { PeerAddress, Transport } from './transport/transport.js';

// The replicated KV service: the server a member runs, and the client an application uses.
export { KvServer } from './kv/server.js';
export type { HttpLimits, HttpTlsOptions, KvPeer, KvServerOptions, PeerTlsOptions } from './kv/server.js';
export { KvClient, KvClientError } from './kv/client.js';
export type {
  KvCasResult,
  KvClientErrorCode,
  KvClientOptions,
  KvClientTls,
  KvKey,
  KvMember,
  KvMemberRole,
  KvMembers,
  KvMembershipChange,
  KvNewMember,
  KvKeyRevisions,
  KvRangeKv,
  KvRangeOptions,
  KvRangePage,
  KvRangeSelector,
  KvReadResult,
  KvTxnCompare,
  KvTxnOpResult,
  KvTxnRequest,
  KvTxnRequestOp,
  KvTxnResponse,
  KvValue,
  KvWriteResult,
} from './kv/client.js';
export type { KvLeaseGrant, KvLeaseKeepAlive, KvLeaseKeeper, KvLeaseKeeperOptions, KvLeaseList, KvLeaseRevoke, KvLeaseSummary, KvLeaseTimeToLive } from './kv/client-types.js';
export type { KvWatchBatch, KvWatchEvent, KvWatchFilter, KvWatchOptions } from './kv/client-watch.js';
export type { BackupHeader } from './kv/backup-format.js';
export type { KvServerStatus, LeaderTransferResult } from './kv/api-types.js';
