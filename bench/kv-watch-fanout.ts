/**
 * `npm run bench:kv -- --watch-only`: watch fan-out on a 3-node cluster of `tsraft node` processes.
 *
 * `--watchers` (default 1,000) Server-Sent-Event streams `GET /v1/watch?prefix=fan/`, spread
 * round-robin over the three nodes (one connection each, node:http without an agent: a raw SSE
 * reader that only looks for the `id:` line of each message, so that the reader takes as little CPU
 * as it can), all open and past their `ready` message before the first write. Then a paced writer
 * commits `--rate` writes/s (default 1,000) to keys under `fan/` on the leader for `--seconds`
 * (default 10): write i is due at start + i/rate, and WRITERS keep-alive connections take the due
 * writes (so a slow answer does not hold the next ones back until all of them are busy). For every
 * write its send time, acknowledgement time and revision (from the answer) are kept; for every
 * watcher, the revision and arrival time of every event (the time of the socket chunk it came in).
 *
 * Reported over all watcher × acknowledged-write pairs: delivery latency (arrival − the write's
 * acknowledgement, and arrival − its send), p50/p99/max; and the check that every watcher saw every
 * acknowledged write's revision exactly once and in order: "lost: 0, duplicated: 0, out of order:
 * 0". Anything else (or a watcher cut off) is printed loudly and the bench exits 1. Also reported:
 * the CPU and memory of this process (the 1,000 readers share the machine with the nodes) and the
 * CPU of each node process during the writes.
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { sleep } from '../src/cli/common.js';
import { KvProcessCluster } from '../src/testing/process-cluster.js';
import { percentile, RawConnection, rawRequest, withTimeout } from './raw-http.js';

export interface WatchBenchOptions {
  readonly watchers: number;
  readonly rate: number;
  readonly seconds: number;
  readonly fsync: boolean;
}

/** Concurrent write connections of the paced writer. */
const WRITERS = 64;
/** A write not answered within this is an error (its connection is closed). */
const WRITE_TIMEOUT_MS = 10_000;
/** How often progress is printed during the writes. */
const PROGRESS_EVERY_MS = 2_000;
const PREFIX = 'fan/';
const VALUE = Buffer.alloc(32, 'v');

class GrowingArrays {
  revisions: Uint32Array;
  times: Float64Array;
  length = 0;
  constructor(capacity: number) {
    this.revisions = new Uint32Array(capacity);
    this.times = new Float64Array(capacity);
  }
  push(revision: number, time: number): void {
    if (this.length === this.revisions.length) {
      const r = new Uint32Array(this.length * 2);
      r.set(this.revisions);
      this.revisions = r;
      const t = new Float64Array(this.length * 2);
      t.set(this.times);
      this.times = t;
    }
    this.revisions[this.length] = revision;
    this.times[this.length] = time;
    this.length++;
  }
}

/** One SSE stream. */
class WatchStream {
  readonly events: GrowingArrays;
  ready = false;
  /** Set when the stream ended or failed (an `error` message, a closed connection, an HTTP error). */
  ended: string | undefined;
  private partial = '';
  private req: ClientRequest | undefined;
  private onReady: (() => void) | undefined;

  constructor(
    readonly node: number,
    private readonly url: URL,
    capacity: number,
  ) {
    this.events = new GrowingArrays(capacity);
  }

  /** Opens the stream; resolves on its `ready` message, rejects on an error or after `timeoutMs`. */
  open(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.req?.destroy();
        reject(new Error(`watcher on node ${this.node}: no ready message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      const req = request({ host: this.url.hostname, port: this.url.port, path: `/v1/watch?prefix=${encodeURIComponent(PREFIX)}`, agent: false, headers: { Accept: 'text/event-stream' } }, (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => {
            clearTimeout(timer);
            this.ended = `HTTP ${res.statusCode}: ${body.slice(0, 200)}`;
            reject(new Error(`watcher on node ${this.node}: ${this.ended}`));
          });
          return;
        }
        res.setEncoding('latin1');
        res.on('data', (chunk: string) => this.onChunk(chunk, performance.now()));
        res.on('end', () => (this.ended ??= 'the stream ended'));
        res.on('error', (error) => (this.ended ??= `stream error: ${error.message}`));
      });
      req.on('error', (error) => {
        this.ended ??= `request error: ${error.message}`;
        clearTimeout(timer);
        reject(error);
      });
      req.end();
      this.req = req;
    });
  }

  private onChunk(chunk: string, now: number): void {
    const text = this.partial.length === 0 ? chunk : this.partial + chunk;
    const last = text.lastIndexOf('\n\n');
    if (last < 0) {
      this.partial = text;
      return;
    }
    this.partial = text.slice(last + 2);
    // Complete messages in text[0, last]: each `events` message has an `id: <revision>` line first.
    let at = 0;
    for (;;) {
      const i = text.indexOf('id: ', at);
      if (i < 0 || i >= last) break;
      const eol = text.indexOf('\n', i);
      if (i === 0 || text.charCodeAt(i - 1) === 10) this.events.push(Number(text.slice(i + 4, eol)), now);
      at = eol;
    }
    if (!this.ready && text.lastIndexOf('event: ready', last) >= 0) {
      this.ready = true;
      this.onReady?.();
    }
    const error = text.lastIndexOf('event: error', last);
    if (error >= 0) this.ended ??= `error message: ${text.slice(error, last).replace(/\n/g, ' ').slice(0, 300)}`;
  }

  close(): void {
    this.req?.destroy();
  }
}

/** utime + stime of a process, in ms (Linux /proc), or NaN. */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');

export async function runWatchFanout(options: WatchBenchOptions): Promise<boolean> {
  const { watchers: watcherCount, rate, seconds } = options;
  const started = performance.now();
  const perNode = Math.ceil(watcherCount / 3);
  const maxConnections = Math.max(1024, perNode + 128);
  console.log('');
  console.log(
    `watch fan-out — 3 tsraft node processes on 127.0.0.1 (fsync ${options.fsync ? 'on' : 'off'}), ${watcherCount} watchers on prefix ${PREFIX} ` +
      `(round-robin over the nodes, one connection each), ${rate} writes/s for ${seconds} s (${WRITERS} write connections to the leader, ${VALUE.length}-byte values)`,
  );
  const cluster = await KvProcessCluster.start({
    size: 3,
    fsync: options.fsync,
    tmpPrefix: 'tsraft-bench-watch-',
    nodeArgs: ['--quiet', ...(maxConnections > 1024 ? ['--http-max-connections', String(maxConnections)] : [])],
  });
  const streams: WatchStream[] = [];
  try {
    const leader = await cluster.waitForLeader(20_000);
    console.log(`leader: node ${leader.id} (${leader.url})`);
    const totalWrites = Math.round(rate * seconds);

    // 1. The watchers, opened 50 at a time, each past its `ready` before the writes begin.
    let t = performance.now();
    for (let w = 0; w < watcherCount; w++) streams.push(new WatchStream(w % 3, new URL(cluster.nodes[w % 3]!.url), totalWrites + 64));
    for (let w = 0; w < watcherCount; w += 50) await Promise.all(streams.slice(w, w + 50).map((s) => s.open(30_000)));
    const memBefore = process.memoryUsage();
    console.log(`${watcherCount} watchers ready in ${((performance.now() - t) / 1000).toFixed(1)} s (${[0, 1, 2].map((n) => streams.filter((s) => s.node === n).length).join('/')} on nodes 0/1/2); this process: rss ${(memBefore.rss / 1048576).toFixed(0)} MiB`);

    // 2. The paced writer.
    const sendAt = new Float64Array(totalWrites);
    const ackAt = new Float64Array(totalWrites).fill(NaN);
    const revisionOf = new Float64Array(totalWrites).fill(NaN);
    let writeErrors = 0;
    let firstWriteError: string | undefined;
    let next = 0;
    const base = new URL(leader.url);
    const cpuBefore = process.cpuUsage();
    const nodeCpuBefore = cluster.nodes.map((n) => processCpuMs(n.pid));
    let rssPeak = memBefore.rss;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 250);
    const t0 = performance.now() + 20;
    // Writes not sent by then are given up (counted as not sent): the machine could not hold the rate.
    const stopAt = t0 + seconds * 1000 + 30_000;
    let notSent = 0;
    let sent = 0;
    const writer = async (): Promise<void> => {
      let conn: RawConnection | null = null;
      for (;;) {
        const i = next++;
        if (i >= totalWrites) break;
        if (performance.now() > stopAt) {
          notSent += totalWrites - i;
          next = totalWrites;
          break;
        }
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        sent++;
        const req = rawRequest(base.host, 'PUT', `/v1/kv/${PREFIX}k${i % 1000}`, '', VALUE);
        sendAt[i] = performance.now();
        try {
          conn ??= new RawConnection(base.hostname, Number(base.port));
          const answer = await withTimeout(conn.exchange(req), WRITE_TIMEOUT_MS, `write ${i}`);
          const now = performance.now();
          const m = answer.status === 200 ? /"revision":(\d+)/.exec(answer.body!.toString('latin1')) : null;
          if (m === null) {
            writeErrors++;
            firstWriteError ??= `HTTP ${answer.status}: ${answer.body?.toString().slice(0, 200)}`;
            continue;
          }
          ackAt[i] = now;
          revisionOf[i] = Number(m[1]);
        } catch (error) {
          writeErrors++;
          firstWriteError ??= (error as Error).message;
          (conn as RawConnection | null)?.close();
          conn = null;
        }
      }
      (conn as RawConnection | null)?.close();
    };
    let lastProgress = { at: performance.now(), events: 0, cpu: process.cpuUsage() };
    const progress = setInterval(() => {
      const now = performance.now();
      const events = streams.reduce((sum, s) => sum + s.events.length, 0);
      const cpu = process.cpuUsage(lastProgress.cpu);
      const acks = ackAt.reduce((c, a) => (Number.isNaN(a) ? c : c + 1), 0);
      console.log(
        `  t=${((now - t0) / 1000).toFixed(0)} s: ${sent} writes sent, ${acks} acknowledged, ${writeErrors} errors; ${events} events received (${Math.round(((events - lastProgress.events) * 1000) / (now - lastProgress.at))}/s); ` +
          `this process CPU ${(((cpu.user + cpu.system) / 1000 / (now - lastProgress.at)) * 100).toFixed(0)}%, rss ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB`,
      );
      lastProgress = { at: now, events, cpu: process.cpuUsage() };
    }, PROGRESS_EVERY_MS);
    try {
      await withTimeout(Promise.all(Array.from({ length: WRITERS }, () => writer())), seconds * 1000 + 30_000 + WRITE_TIMEOUT_MS + 5_000, `the ${totalWrites} writes`);
    } finally {
      clearInterval(progress);
    }
    const writeEnd = performance.now();
    const cpuWrites = process.cpuUsage(cpuBefore);
    const nodeCpuWrites = cluster.nodes.map((n, i) => processCpuMs(n.pid) - nodeCpuBefore[i]!);
    const acked: number[] = [];
    for (let i = 0; i < totalWrites; i++) if (!Number.isNaN(ackAt[i]!)) acked.push(i);
    const writeSeconds = (writeEnd - t0) / 1000;
    const writeLatency = Float64Array.from(acked, (i) => ackAt[i]! - sendAt[i]!).sort();
    const lastRevision = acked.reduce((m, i) => Math.max(m, revisionOf[i]!), 0);

    // 3. Every watcher gets to the last acknowledged revision (or ended), within 60 s.
    t = performance.now();
    const drainDeadline = performance.now() + 60_000;
    const caughtUp = (s: WatchStream): boolean => s.ended !== undefined || (s.events.length > 0 && s.events.revisions[s.events.length - 1]! >= lastRevision);
    while (performance.now() < drainDeadline && !streams.every(caughtUp)) await sleep(50);
    const drainMs = performance.now() - t;
    clearInterval(sampler);
    const cpuAll = process.cpuUsage(cpuBefore);
    const memAfter = process.memoryUsage();
    rssPeak = Math.max(rssPeak, memAfter.rss);
    const notCaughtUp = streams.filter((s) => !caughtUp(s)).length;

    // 4. The check and the latencies, over every watcher × acknowledged write.
    const indexOfRevision = new Map<number, number>();
    let duplicateRevisions = 0;
    for (const i of acked) {
      if (indexOfRevision.has(revisionOf[i]!)) duplicateRevisions++;
      indexOfRevision.set(revisionOf[i]!, i);
    }
    const pairs = acked.length * streams.length;
    const afterAck = new Float64Array(pairs);
    const afterSend = new Float64Array(pairs);
    let n = 0;
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    let unacknowledgedSeen = 0;
    let watchersLosing = 0;
    const ends = new Map<string, number>();
    const seen = new Uint8Array(totalWrites);
    for (const s of streams) {
      seen.fill(0);
      let previous = 0;
      let got = 0;
      const { revisions, times, length } = s.events;
      for (let k = 0; k < length; k++) {
        const r = revisions[k]!;
        if (r === previous) {
          duplicated++;
          continue;
        }
        const i = indexOfRevision.get(r);
        if (r < previous) {
          if (i !== undefined && seen[i] === 1) {
            duplicated++;
            continue;
          }
          outOfOrder++;
        }
        previous = Math.max(previous, r);
        if (i === undefined) {
          unacknowledgedSeen++;
          continue;
        }
        if (seen[i] === 1) {
          duplicated++;
          continue;
        }
        seen[i] = 1;
        got++;
        afterAck[n] = times[k]! - ackAt[i]!;
        afterSend[n] = times[k]! - sendAt[i]!;
        n++;
      }
      if (got < acked.length) {
        lost += acked.length - got;
        watchersLosing++;
      }
      if (s.ended !== undefined) {
        const reason = s.ended.slice(0, 160);
        ends.set(reason, (ends.get(reason) ?? 0) + 1);
      }
    }
    const ack = afterAck.subarray(0, n).sort();
    const snd = afterSend.subarray(0, n).sort();
    const eventsSeen = streams.reduce((sum, s) => sum + s.events.length, 0);
    const coreShare = (cpu: NodeJS.CpuUsage, spanMs: number): string => `${(((cpu.user + cpu.system) / 1000 / spanMs) * 100).toFixed(0)}%`;

    console.log('');
    console.log(
      `writes: ${acked.length} of ${totalWrites} acknowledged (${notSent} not sent: given up ${seconds + 30} s after the start) in ${writeSeconds.toFixed(2)} s: ${(acked.length / writeSeconds).toFixed(0)} writes/s reached (target ${rate}), ` +
        `${writeErrors} errors${firstWriteError === undefined ? '' : ` (first: ${firstWriteError})`}; write latency p50 ${ms(percentile(writeLatency, 0.5))} ms, p99 ${ms(percentile(writeLatency, 0.99))} ms; revisions ${acked.length > 0 ? revisionOf[acked[0]!] : '-'}..${lastRevision}`,
    );
    console.log(`events: ${eventsSeen} received by ${streams.length} watchers (${((eventsSeen / (writeSeconds + drainMs / 1000)) | 0)}/s); every watcher caught up ${(drainMs / 1000).toFixed(2)} s after the last write${notCaughtUp > 0 ? ` — ${notCaughtUp} had not after 60 s` : ''}`);
    console.log(`delivery latency over ${n} watcher×write pairs:`);
    console.log(`  arrival − write acknowledged: p50 ${ms(percentile(ack, 0.5))} ms, p99 ${ms(percentile(ack, 0.99))} ms, max ${ms(ack[ack.length - 1] ?? NaN)} ms (min ${ms(ack[0] ?? NaN)} ms: the leader's watchers may hear of a write before its writer does)`);
    console.log(`  arrival − write sent:         p50 ${ms(percentile(snd, 0.5))} ms, p99 ${ms(percentile(snd, 0.99))} ms, max ${ms(snd[snd.length - 1] ?? NaN)} ms`);
    console.log(`lost: ${lost}, duplicated: ${duplicated}, out of order: ${outOfOrder}` + (unacknowledgedSeen > 0 ? ` (${unacknowledgedSeen} events of writes that were not acknowledged, not counted)` : '') + (duplicateRevisions > 0 ? `; ${duplicateRevisions} writes answered with a revision already seen` : ''));
    console.log(
      `this process (the ${streams.length} readers + the writer): CPU ${coreShare(cpuWrites, writeEnd - t0)} of one core during the writes, ${coreShare(cpuAll, performance.now() - t0 - 0)} until caught up; ` +
        `rss ${(memBefore.rss / 1048576).toFixed(0)} MiB with the watchers open, peak ${(rssPeak / 1048576).toFixed(0)} MiB, heap ${(memAfter.heapUsed / 1048576).toFixed(0)} MiB after`,
    );
    console.log(`node processes' CPU during the writes: ${nodeCpuWrites.map((c, i) => `node ${i}${cluster.nodes[i]!.id === leader.id ? ' (leader)' : ''} ${((c / (writeEnd - t0)) * 100).toFixed(0)}%`).join(', ')} of one core`);
    console.log(`watch part: ${((performance.now() - started) / 1000).toFixed(0)} s in all`);
    const ok = lost === 0 && duplicated === 0 && outOfOrder === 0 && ends.size === 0 && acked.length > 0;
    if (!ok) {
      console.error('');
      console.error(`!!! WATCH FAN-OUT FAILED: lost ${lost} events (${watchersLosing} of ${streams.length} watchers missed some), duplicated ${duplicated}, out of order ${outOfOrder}`);
      for (const [reason, count] of ends) console.error(`!!!   ${count} watchers ended: ${reason}`);
      if (acked.length === 0) console.error('!!!   no write was acknowledged');
    }
    return ok;
  } finally {
    for (const s of streams) s.close();
    await cluster.stop();
  }
}
