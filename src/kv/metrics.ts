/**
 * The KV server's Prometheus metrics: the histograms and counters a KvServer records while it
 * runs, the Storage and Transport wrappers that feed them, and the text served at GET /metrics.
 *
 * The wrappers sit between the RaftNode and the real FileStorage / TcpTransport, so timing and byte
 * counting need no hooks inside either; everything else is read from the components' own stats at
 * scrape time, so keeping the metrics costs next to nothing between scrapes.
 */
import { messageSize } from '../codec/codec.js';
import type { HardState, LogIndex, Message, PersistentState, Snapshot } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import type { NodeStatus } from '../runtime/node.js';
import type { FileStorage } from '../storage/file-storage.js';
import type { Storage } from '../storage/storage.js';
import { FRAME_HEADER_BYTES, type TcpTransport } from '../transport/tcp.js';
import type { PeerAddress, Transport } from '../transport/transport.js';
import type { KvStats } from './state-machine.js';

/** Upper bounds (seconds) of the proposal latency buckets: commit plus apply, 0.5 ms to 10 s. */
const PROPOSAL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upper bounds (seconds) of the durable-save buckets: finer at the low end, where a fast disk's fdatasync lands. */
const FSYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** Every Raft role, so /metrics reports a 0 for the roles a node does not have (Prometheus needs the series to exist). */
const ROLES: readonly NodeStatus['role'][] = ['follower', 'precandidate', 'candidate', 'leader'];

/** A Prometheus histogram of durations in seconds, with fixed bucket bounds. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  /** Records one duration, in seconds. */
  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (seconds <= this.buckets[i]!) {
        this.counts[i]!++;
        break;
      }
    }
  }

  /** How many durations were recorded and their sum in seconds (the dashboard's throughput and mean latency). */
  totals(): { count: number; sum: number } {
    return { count: this.count, sum: this.sum };
  }

  /** The histogram in Prometheus text format (cumulative buckets, +Inf, sum and count). */
  render(name: string, help: string): string {
    let out = `# HELP ${name} ${help}\n# TYPE ${name} histogram\n`;
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += this.counts[i]!;
      out += `${name}_bucket{le="${this.buckets[i]}"} ${cumulative}\n`;
    }
    out += `${name}_bucket{le="+Inf"} ${this.count}\n${name}_sum ${this.sum}\n${name}_count ${this.count}\n`;
    return out;
  }
}

function metric(name: string, type: 'gauge' | 'counter', help: string, value: number): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`;
}

/** Times every durable save: one WAL append (and snapshot file, when there is one) plus its fdatasync. */
export class TimedStorage implements Storage {
  constructor(
    readonly inner: FileStorage,
    private readonly histogram: Histogram,
  ) {}

  open(): Promise<PersistentState> {
    return this.inner.open();
  }

  async save(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): Promise<void> {
    const started = performance.now();
    await this.inner.save(hardState, snapshot, logWrite);
    this.histogram.observe((performance.now() - started) / 1000);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  storedSnapshot(index: LogIndex): ReturnType<FileStorage['storedSnapshot']> {
    return this.inner.storedSnapshot(index);
  }

  get snapshotAssembly(): FileStorage['snapshotAssembly'] {
    return this.inner.snapshotAssembly;
  }
}

/** Counts the bytes of the Raft message frames going through the TCP transport. */
export class CountingTransport implements Transport {
  bytesSent = 0;
  bytesReceived = 0;

  constructor(readonly inner: TcpTransport) {}

  start(onMessage: (message: Message) => void): Promise<void> {
    return this.inner.start((message) => {
      this.bytesReceived += frameSize(message);
      onMessage(message);
    });
  }

  send(message: Message): void {
    this.bytesSent += frameSize(message);
    this.inner.send(message);
  }

  /** Replaces the TCP transport's peers (membership changes; see Transport.setPeers). */
  setPeers(peers: readonly PeerAddress[]): void {
    this.inner.setPeers(peers);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function frameSize(message: Message): number {
  try {
    return FRAME_HEADER_BYTES + messageSize(message);
  } catch {
    return 0; // a message the codec rejects is dropped by the transport and counted there
  }
}

/** What one /metrics scrape reads besides the recorded metrics, gathered by the KvServer at scrape time. */
export interface KvMetricsSources {
  /** The RaftNode's status. */
  readonly raft: NodeStatus;
  /** The KV state machine's applied index (see KvServer.status for why not Raft's). */
  readonly appliedIndex: number;
  readonly kv: KvStats;
  readonly snapshotsTaken: number;
  /** Revokes this node's lease keeper proposed for expired leases (while it led). */
  readonly leasesExpired: number;
  readonly transport: CountingTransport;
  readonly storage: TimedStorage;
}

/** The metrics one KvServer records, and their rendering as the /metrics page. */
export class KvMetrics {
  /** Proposal to commit and apply, for proposals that committed. */
  readonly proposalDuration = new Histogram(PROPOSAL_BUCKETS);
  /** One durable save of the Raft state (fed by TimedStorage). */
  readonly fsyncDuration = new Histogram(FSYNC_BUCKETS);
  /** HTTP status code → responses sent. */
  private readonly responses = new Map<number, number>();
  /** Leadership transfers this node started as leader (POST /v1/leader/transfer, stop()), by outcome. */
  private readonly transfers = { moved: 0, timeout: 0, failed: 0 };
  /** Times the configuration in effect on this node changed since it started. */
  private membershipChanges = 0;

  /** Counts one change of the configuration in effect on this node (RaftNode's onMembershipChange, after the first). */
  countMembershipChange(): void {
    this.membershipChanges++;
  }

  /** Counts one leadership transfer this node started: a new leader was heard of, none in time, or another failure. */
  countTransfer(outcome: 'moved' | 'timeout' | 'failed'): void {
    this.transfers[outcome]++;
  }

  /** Counts one HTTP response sent with this status code. */
  countResponse(status: number): void {
    this.responses.set(status, (this.responses.get(status) ?? 0) + 1);
  }

  /** The Prometheus text format page. */
  render(sources: KvMetricsSources): string {
    const s = sources.raft;
    const stats = sources.kv;
    const tcp = sources.transport.inner.stats;
    const wal = sources.storage.inner.stats;
    let out = '';
    out += metric('tsraft_term', 'gauge', 'Current Raft term.', s.term);
    out += '# HELP tsraft_role 1 for the role this node has now, 0 for the others.\n# TYPE tsraft_role gauge\n';
    for (const role of ROLES) out += `tsraft_role{role="${role}"} ${s.role === role ? 1 : 0}\n`;
    out += metric('tsraft_commit_index', 'gauge', 'Highest log index known to be committed.', s.commitIndex);
    out += metric(
      'tsraft_quorum_lost_total',
      'counter',
      'Times this node stepped down as leader because it had not heard from a majority within an election timeout (check-quorum).',
      s.quorumLost,
    );
    out += metric('tsraft_leader_transferring', 'gauge', '1 while this leader hands leadership over (writes answer 503 leader-transfer), else 0.', s.transferTarget === undefined ? 0 : 1);
    out +=
      '# HELP tsraft_leader_transfers_total Leadership transfers this node started as leader (POST /v1/leader/transfer, or stopping), by outcome: moved (a new leader was heard of), timeout (none in time; proposals resumed), failed.\n' +
      '# TYPE tsraft_leader_transfers_total counter\n';
    for (const [outcome, count] of Object.entries(this.transfers)) out += `tsraft_leader_transfers_total{outcome="${outcome}"} ${count}\n`;
    out += metric(
      'tsraft_membership_changes_total',
      'counter',
      'Times the configuration in effect on this node changed since it started (a change of voters passes through a joint configuration, so counts twice; an uncommitted one a new leader replaced counts too).',
      this.membershipChanges,
    );
    out += metric('tsraft_voters', 'gauge', 'Voters of the configuration in effect on this node (the incoming ones during a joint change).', s.membership.voters.length);
    out += metric('tsraft_learners', 'gauge', 'Learners of the configuration in effect on this node.', s.membership.learners.length);
    out += '# HELP tsraft_peer_messages_dropped_total Peer messages dropped because they cannot be true, by reason (docs/THREAT-MODEL.md).\n# TYPE tsraft_peer_messages_dropped_total counter\n';
    for (const [reason, count] of Object.entries(s.droppedMessages)) out += `tsraft_peer_messages_dropped_total{reason="${reason}"} ${count}\n`;
    out += metric('tsraft_applied_index', 'gauge', 'Highest log index applied to the KV state machine.', sources.appliedIndex);
    out += metric('tsraft_last_index', 'gauge', 'Index of the last entry in the log.', s.lastIndex);
    out += metric('tsraft_snapshot_index', 'gauge', 'Last log index covered by the latest snapshot.', s.snapshotIndex);
    out += metric('tsraft_snapshots_taken_total', 'counter', 'Snapshots this server handed to Raft for log compaction.', sources.snapshotsTaken);
    out += this.proposalDuration.render(
      'tsraft_proposal_duration_seconds',
      'Time from proposing a KV command to its commit and apply on this node, for proposals that committed.',
    );
    out += metric(
      'tsraft_transport_bytes_sent_total',
      'counter',
      'Bytes of Raft message frames (4-byte length header plus encoded message) handed to the TCP transport to send; frames it later drops are included, connection hellos are not.',
      sources.transport.bytesSent,
    );
    out += metric(
      'tsraft_transport_bytes_received_total',
      'counter',
      'Bytes of Raft message frames (4-byte length header plus encoded message) the TCP transport delivered; connection hellos are not counted.',
      sources.transport.bytesReceived,
    );
    out += metric('tsraft_transport_messages_sent_total', 'counter', 'Raft messages written to a socket.', tcp.sent);
    out += metric('tsraft_transport_messages_received_total', 'counter', 'Raft messages received and delivered.', tcp.received);
    out += metric(
      'tsraft_transport_messages_dropped_total',
      'counter',
      'Raft messages the transport dropped (full queue, too large, no connection, misaddressed).',
      tcp.dropped.queueFull + tcp.dropped.tooLarge + tcp.dropped.noConnection + tcp.dropped.misaddressed,
    );
    out += metric('tsraft_transport_connections', 'gauge', 'Open Raft connections (outbound connected plus accepted inbound).', tcp.connections);
    out +=
      '# HELP tsraft_transport_connections_closed_total Inbound peer connections the transport refused or closed: a hello from another cluster or for another node (handshake), beyond inboundConnectionsMax (limit), or an undecodable or oversized frame, a missing hello or a stalled frame (malformed).\n' +
      '# TYPE tsraft_transport_connections_closed_total counter\n' +
      `tsraft_transport_connections_closed_total{reason="handshake"} ${tcp.refusedHandshakes}\n` +
      `tsraft_transport_connections_closed_total{reason="limit"} ${tcp.refusedConnections}\n` +
      `tsraft_transport_connections_closed_total{reason="malformed"} ${tcp.malformedFrames}\n`;
    out +=
      '# HELP tsraft_transport_tls_refused_total Inbound peer connections refused by mutual TLS (always 0 without peer TLS), by reason: handshake (no client certificate, one not signed by the peer CA or expired, a plaintext peer, a handshake not finished in time) or identity (the certificate names no node of this cluster, or another node than the hello\'s sender).\n' +
      '# TYPE tsraft_transport_tls_refused_total counter\n' +
      `tsraft_transport_tls_refused_total{reason="handshake"} ${tcp.tls.handshakeFailures}\n` +
      `tsraft_transport_tls_refused_total{reason="identity"} ${tcp.tls.identityMismatches}\n`;
    out += metric(
      'tsraft_transport_tls_dial_failures_total',
      'counter',
      'Outbound peer dials whose TLS handshake failed (the peer\'s certificate is not signed by the peer CA, names another node, or the peer refused ours); always 0 without peer TLS.',
      tcp.tls.dialFailures,
    );
    out += metric(
      'tsraft_transport_non_member_connections',
      'gauge',
      'Open inbound connections from ids outside the peer set (a member added after the end of this node\'s log, or a stranger); they share a small budget.',
      tcp.nonMembers.open,
    );
    out += metric(
      'tsraft_transport_non_member_evictions_total',
      'counter',
      'Non-member connections closed because their shared budget was full (the oldest goes first).',
      tcp.nonMembers.evicted,
    );
    out += this.fsyncDuration.render(
      'tsraft_wal_fsync_duration_seconds',
      'Time of one durable save of the Raft state: a group-committed WAL append (plus snapshot file when one is written) and its fdatasync; write time only when fsync is off.',
    );
    out += metric('tsraft_wal_syncs_total', 'counter', 'fdatasync/fsync calls on WAL, snapshot files and the data directory.', wal.syncs);
    out += metric('tsraft_wal_writes_total', 'counter', 'Write calls to the write-ahead log.', wal.writes);
    out += metric('tsraft_wal_bytes_written_total', 'counter', 'Bytes written to the write-ahead log.', wal.bytes);
    out += metric('tsraft_kv_keys', 'gauge', 'Keys in the KV state machine.', stats.keys);
    out += metric('tsraft_kv_bytes', 'gauge', 'Sum of key and value sizes in the KV state machine, in bytes.', stats.bytes);
    out += metric('tsraft_kv_sessions', 'gauge', 'Client sessions kept for exactly-once.', stats.sessions);
    out += metric('tsraft_kv_leases', 'gauge', 'Leases in the KV state machine.', stats.leases);
    // Read at scrape time only: where a node's memory is (RSS against V8's heap and the buffers outside it).
    const memory = process.memoryUsage();
    out += metric('tsraft_process_resident_memory_bytes', 'gauge', 'Resident set size of this node process.', memory.rss);
    out += metric('tsraft_heap_used_bytes', 'gauge', "V8 heap in use (live objects and garbage not yet collected).", memory.heapUsed);
    out += metric('tsraft_heap_total_bytes', 'gauge', "V8 heap reserved by this process.", memory.heapTotal);
    out += metric('tsraft_external_memory_bytes', 'gauge', 'Memory of buffers and other objects held outside the V8 heap (ArrayBuffers included).', memory.external);
    out += metric('tsraft_lease_expiries_proposed_total', 'counter', 'Revokes of expired leases this node proposed while it led (a failed one proposed again counts again).', sources.leasesExpired);
    out += '# HELP tsraft_http_responses_total HTTP responses sent, by status code.\n# TYPE tsraft_http_responses_total counter\n';
    for (const [code, count] of [...this.responses].sort((a, b) => a[0] - b[0])) out += `tsraft_http_responses_total{code="${code}"} ${count}\n`;
    return out;
  }
}
