/**
 * What the live dashboard (/ui, ui/dashboard/) shows, gathered by the node it is served from and
 * pushed over Server-Sent Events (GET /v1/events): a `snapshot` event every SNAPSHOT_INTERVAL_MS
 * and a `leader` event as soon as this node sees the leader change.
 *
 * A snapshot holds this node's status, every other member's /v1/status (polled server-side, so the
 * page needs one connection to one node and a follower's page shows the whole cluster; a member
 * that does not answer within PEER_POLL_TIMEOUT_MS is shown as unreachable), the leader history
 * this node saw (with how long it went without a leader), write and read throughput and latency
 * per second over the last HISTORY_SECONDS, the tail of applied log entries and the snapshot state.
 *
 * Peers are polled only while a stream is open, with the viewer's own Authorization header (the
 * members share one auth file under `tsraft start --auth`): a viewer learns nothing through the
 * feed that it could not ask the peers itself. The header is held only while its stream is open and
 * never logged. The cheap bookkeeping (leader changes, per-second traffic) runs always, on an
 * unref'd timer, so a page opened late still shows the minutes before.
 *
 * Bounds: at most STREAMS_MAX streams at once (then 503 too-many-streams), on top of the HTTP
 * server's connection limit which they count against like any request; a stream whose client does
 * not read (more than STREAM_BUFFER_BYTES_MAX unsent) is ended. close() ends every stream, so that
 * KvServer.stop()'s HTTP drain is not held by them.
 */
import type { ServerResponse } from 'node:http';
import type { KvServerStatus } from './api-types.js';

export const SNAPSHOT_INTERVAL_MS = 500;
export const STREAMS_MAX = 8;
const STREAM_BUFFER_BYTES_MAX = 1024 * 1024;
const PEER_POLL_TIMEOUT_MS = 400;
const LEADER_SAMPLE_MS = 100;
const HISTORY_SECONDS = 180;
const LEADER_HISTORY_MAX = 50;
export const LOG_TAIL_MAX = 30;

/** Counters that only grow, read once a second to make per-second samples. */
export interface TrafficCounters {
  readonly writes: number;
  readonly writeSeconds: number;
  readonly reads: number;
  readonly readSeconds: number;
}

/** One applied log entry, as the dashboard lists it (never the value: it may be large or secret). */
export interface LogEntryView {
  readonly index: number;
  readonly term: number;
  /** put, append, cas, delete, get, config, noop, or undecodable. */
  readonly op: string;
  /** The key, as UTF-8 text with replacement characters, at most 64 characters. */
  readonly key: string | null;
  readonly bytes: number;
}

export interface DashboardSources {
  readonly nodeId: number;
  /** Where `tsraft start`'s controls are served (--dev-controls-url); null outside `tsraft start`. */
  readonly devControlsUrl: string | null;
  status(): KvServerStatus;
  /** Member id → HTTP base URL, for every member a known configuration names. */
  memberUrls(): ReadonlyMap<number, string>;
  traffic(): TrafficCounters;
  recentEntries(): readonly LogEntryView[];
  /** How peers' /v1/status is fetched (over HTTPS: trusting the CA the node knows). Default: the global fetch. */
  readonly fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

export interface TrafficSample {
  /** Epoch ms at the end of the second. */
  readonly at: number;
  readonly writesPerSecond: number;
  /** Mean write latency in that second, ms (null: no writes). */
  readonly writeMs: number | null;
  readonly readsPerSecond: number;
  readonly readMs: number | null;
}

export interface LeaderChange {
  readonly at: number;
  /** null: this node lost its leader (an election began, or it is cut off). */
  readonly leaderId: number | null;
  readonly term: number;
  /** How long this node went without a leader before this one, ms (null when it did not). */
  readonly electionMs: number | null;
}

export interface MemberSnapshot {
  readonly id: number;
  readonly url: string | null;
  /** Its /v1/status, or null when it did not answer. */
  readonly status: KvServerStatus | null;
  readonly error: string | null;
}

export interface DashboardSnapshot {
  readonly at: number;
  readonly node: number;
  readonly devControlsUrl: string | null;
  readonly members: readonly MemberSnapshot[];
  readonly leaderHistory: readonly LeaderChange[];
  readonly traffic: readonly TrafficSample[];
  readonly entries: readonly LogEntryView[];
}

interface Stream {
  readonly res: ServerResponse;
  readonly authorization: string | undefined;
}

export class DashboardFeed {
  private readonly streams = new Set<Stream>();
  private readonly leaderHistory: LeaderChange[] = [];
  private readonly traffic: TrafficSample[] = [];
  private lastLeader: number | null | undefined = undefined;
  private leaderlessSince: number | null = null;
  private lastCounters: TrafficCounters | null = null;
  private readonly leaderTimer: ReturnType<typeof setInterval>;
  private readonly trafficTimer: ReturnType<typeof setInterval>;
  private snapshotTimer: ReturnType<typeof setInterval> | null = null;
  private gathering = false;
  private closed = false;

  constructor(private readonly sources: DashboardSources) {
    this.leaderTimer = setInterval(() => this.sampleLeader(), LEADER_SAMPLE_MS);
    this.leaderTimer.unref();
    this.trafficTimer = setInterval(() => this.sampleTraffic(), 1000);
    this.trafficTimer.unref();
  }

  /** GET /v1/events: answers 503 when STREAMS_MAX are open or the feed is closed, else streams until close(). */
  open(res: ServerResponse, authorization: string | undefined): void {
    if (this.closed || this.streams.size >= STREAMS_MAX) {
      const body = JSON.stringify({ error: { code: 'too-many-streams', message: `this node serves at most ${STREAMS_MAX} event streams at once; close a dashboard tab or use another node` } });
      res.writeHead(503, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Retry-After': '5' });
      res.end(body);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    const stream: Stream = { res, authorization };
    this.streams.add(stream);
    res.on('close', () => {
      this.streams.delete(stream);
      if (this.streams.size === 0 && this.snapshotTimer !== null) {
        clearInterval(this.snapshotTimer);
        this.snapshotTimer = null;
      }
    });
    // Tells EventSource-like readers how soon to retry, then a first snapshot at once.
    res.write('retry: 1000\n\n');
    void this.broadcastSnapshot();
    this.snapshotTimer ??= setInterval(() => void this.broadcastSnapshot(), SNAPSHOT_INTERVAL_MS);
  }

  /**
   * Ends every open stream, keeping the feed open: the authorization changed (SIGHUP), and a viewer
   * whose token is gone must not keep a stream it could not open now. Reconnects are checked anew.
   */
  endStreams(): void {
    for (const stream of this.streams) stream.res.end();
  }

  /** Ends every stream and stops the timers; later opens answer 503. */
  close(): void {
    this.closed = true;
    clearInterval(this.leaderTimer);
    clearInterval(this.trafficTimer);
    if (this.snapshotTimer !== null) clearInterval(this.snapshotTimer);
    this.snapshotTimer = null;
    for (const stream of this.streams) stream.res.end();
    this.streams.clear();
  }

  get openStreams(): number {
    return this.streams.size;
  }

  private send(event: string, data: unknown): void {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const stream of this.streams) {
      if (stream.res.writableLength > STREAM_BUFFER_BYTES_MAX) {
        stream.res.destroy(); // a reader that does not read: not worth the memory
        continue;
      }
      stream.res.write(frame);
    }
  }

  private async broadcastSnapshot(): Promise<void> {
    // One gathering at a time: a slow peer must not pile up polls.
    if (this.gathering || this.streams.size === 0) return;
    this.gathering = true;
    try {
      const snapshot = await this.gather();
      if (!this.closed) this.send('snapshot', snapshot);
    } catch {
      // a status that cannot be read right now (the node is stopping): the next tick tries again
    } finally {
      this.gathering = false;
    }
  }

  private async gather(): Promise<DashboardSnapshot> {
    const self = this.sources.status();
    const authorization = [...this.streams][0]?.authorization;
    const ids = new Set<number>([...self.membership.voters, ...self.membership.outgoing, ...self.membership.learners, self.id]);
    const urls = this.sources.memberUrls();
    const members = await Promise.all(
      [...ids].sort((a, b) => a - b).map(async (id): Promise<MemberSnapshot> => {
        const url = urls.get(id) ?? null;
        if (id === self.id) return { id, url, status: self, error: null };
        if (url === null) return { id, url, status: null, error: 'no known address' };
        return { id, url, ...(await pollStatus(this.sources.fetch ?? fetch, url, authorization)) };
      }),
    );
    return {
      at: Date.now(),
      node: this.sources.nodeId,
      devControlsUrl: this.sources.devControlsUrl,
      members,
      leaderHistory: this.leaderHistory,
      traffic: this.traffic,
      entries: this.sources.recentEntries(),
    };
  }

  private sampleLeader(): void {
    let status: KvServerStatus;
    try {
      status = this.sources.status();
    } catch {
      return;
    }
    const leader = status.role === 'leader' ? status.id : status.leaderId;
    if (leader === this.lastLeader) return;
    const now = Date.now();
    const first = this.lastLeader === undefined;
    this.lastLeader = leader;
    if (leader === null) {
      this.leaderlessSince ??= now;
      // A node that starts without a leader has lost nothing: its first election is the first entry.
      if (first) return;
    }
    const electionMs = leader !== null && this.leaderlessSince !== null ? now - this.leaderlessSince : null;
    if (leader !== null) this.leaderlessSince = null;
    const change: LeaderChange = { at: now, leaderId: leader, term: status.term, electionMs };
    this.leaderHistory.push(change);
    if (this.leaderHistory.length > LEADER_HISTORY_MAX) this.leaderHistory.shift();
    this.send('leader', change);
  }

  private sampleTraffic(): void {
    const now = this.sources.traffic();
    const before = this.lastCounters;
    this.lastCounters = now;
    if (before === null) return;
    const writes = now.writes - before.writes;
    const reads = now.reads - before.reads;
    this.traffic.push({
      at: Date.now(),
      writesPerSecond: writes,
      writeMs: writes === 0 ? null : ((now.writeSeconds - before.writeSeconds) * 1000) / writes,
      readsPerSecond: reads,
      readMs: reads === 0 ? null : ((now.readSeconds - before.readSeconds) * 1000) / reads,
    });
    if (this.traffic.length > HISTORY_SECONDS) this.traffic.shift();
  }
}

/** One member's /v1/status within PEER_POLL_TIMEOUT_MS; never throws. */
async function pollStatus(fetchStatus: (url: string, init: RequestInit) => Promise<Response>, url: string, authorization: string | undefined): Promise<{ status: KvServerStatus | null; error: string | null }> {
  try {
    const response = await fetchStatus(`${url}/v1/status`, {
      signal: AbortSignal.timeout(PEER_POLL_TIMEOUT_MS),
      ...(authorization === undefined ? {} : { headers: { authorization } }),
    });
    if (!response.ok) {
      await response.body?.cancel();
      return { status: null, error: `HTTP ${response.status}` };
    }
    const status = (await response.json()) as KvServerStatus;
    if (typeof status !== 'object' || status === null || typeof status.term !== 'number' || typeof status.role !== 'string') return { status: null, error: 'not a status' };
    return { status, error: null };
  } catch (error) {
    const name = error instanceof Error ? error.name : '';
    return { status: null, error: name === 'TimeoutError' ? 'no answer' : 'unreachable' };
  }
}
