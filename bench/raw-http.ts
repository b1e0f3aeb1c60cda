/**
 * Helpers shared by the KV benchmarks (bench/kv.ts and the parts it runs): a minimal HTTP/1.1
 * keep-alive client on raw sockets (one connection, one request at a time, responses parsed by
 * Content-Length), so that on a small machine the load generator takes as little CPU from the
 * nodes as possible, and percentiles.
 */
import { connect, type Socket } from 'node:net';
import { realpathSync } from 'node:fs';
import { connect as connectTls } from 'node:tls';
import { fileURLToPath } from 'node:url';

/** A response: its status and (when asked for) its body. */
export interface RawResponse {
  readonly status: number;
  readonly body: Buffer | undefined;
}

/** One keep-alive HTTP/1.1 connection; one request at a time. */
export class RawConnection {
  private readonly socket: Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (response: RawResponse) => void; reject: (error: Error) => void; keepBody: boolean } | null = null;
  private closed: Error | null = null;
  private readonly ready: Promise<void>;

  /** `ca`: speak TLS, trusting this CA. */
  constructor(host: string, port: number, ca?: Buffer) {
    this.socket = ca === undefined ? connect({ host, port, noDelay: true }) : connectTls({ host, port, ca }).setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once(ca === undefined ? 'connect' : 'secureConnect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const fail = (error: Error): void => {
      this.closed = error;
      const w = this.waiting;
      this.waiting = null;
      w?.reject(error);
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail(new Error('connection closed')));
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headerEnd = this.buffer.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const head = this.buffer.toString('latin1', 0, headerEnd);
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (m === null) {
      this.socket.destroy(new Error(`response without Content-Length: ${head.slice(0, 100)}`));
      return;
    }
    const total = headerEnd + 4 + Number(m[1]);
    if (this.buffer.length < total) return;
    const status = Number(head.slice(9, 12));
    const w = this.waiting;
    const body = w?.keepBody === true ? this.buffer.subarray(headerEnd + 4, total) : undefined;
    this.buffer = this.buffer.subarray(total);
    this.waiting = null;
    w?.resolve({ status, body });
  }

  /** Writes `request` (a whole HTTP/1.1 request) and resolves to the status once the whole response is read. */
  async send(request: Buffer): Promise<number> {
    return (await this.exchange(request, false)).status;
  }

  /** As send, with the response body. */
  async exchange(request: Buffer, keepBody = true): Promise<RawResponse> {
    await this.ready;
    if (this.closed !== null) throw this.closed;
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject, keepBody };
      this.socket.write(request);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /** Closes the connection, failing the request in flight (if any) with `error` (e.g. a per-request timeout). */
  abort(error: Error): void {
    this.socket.destroy(error);
  }
}

/** The request bytes for `method path` with `headers` (each "Name: value\r\n") and `body`. */
export function rawRequest(host: string, method: string, path: string, headers: string, body: Buffer | undefined): Buffer {
  const head = Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${headers}Content-Length: ${body?.length ?? 0}\r\n\r\n`, 'latin1');
  return body === undefined ? head : Buffer.concat([head, body]);
}

/** The p-quantile (0..1) of an ascending array; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Resolves after `ms`, or rejects with `what` timed out. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Whether the module at `moduleUrl` (its import.meta.url) is the program node runs, not an import (the tests import the benches). */
export function isMainModule(moduleUrl: string): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
