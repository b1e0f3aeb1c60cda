/**
 * GET /v1/snapshot: a backup of the whole store (backup.ts), served by the leader (a follower
 * redirects there, 307, like a write). The leader confirms its leadership (ReadIndex) and waits
 * until it has applied that far, so the backup holds every write acknowledged before the request;
 * then it streams the header line and the state machine's snapshot bytes, respecting the socket's
 * backpressure. Needs the admin role when authorization is on (the whole store leaves the node).
 *
 *     200  application/octet-stream   the backup file; X-Tsraft-Snapshot-Index names its index
 *     307  not-leader                 ask the leader (Location)
 *     503  no-leader / busy / ...     as for writes (http-raft-errors.ts)
 *     501  not-supported              a server without backups
 */
import type { ServerResponse } from 'node:http';
import { backupHeaderLine, type BackupSource } from './backup-format.js';
import { HttpError } from './http-io.js';
import { answeredNotLeader, answerRaftError } from './http-raft-errors.js';
import type { KvApiBackend } from './http-api.js';

export const SNAPSHOT_PATH = '/v1/snapshot';

/** Bytes written to the socket per write while streaming the data. */
const CHUNK_BYTES = 1024 * 1024;

export async function serveBackup(backend: KvApiBackend, res: ServerResponse, method: string, rawPath: string, rawQuery: string): Promise<void> {
  if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rawPath}; use GET`, { Allow: 'GET' });
  if (rawQuery !== '') throw new HttpError(400, 'unknown-parameter', `GET ${SNAPSHOT_PATH} takes no query parameters`);
  if (backend.backup === undefined) throw new HttpError(501, 'not-supported', 'this server cannot take backups');
  if (backend.isNodeStopped()) {
    throw new HttpError(503, 'node-stopped', 'this node stopped on a fatal error and is exiting; ask another member', { 'Retry-After': '1' });
  }
  const request = { rawPath, rawQuery };
  if (answeredNotLeader(backend, res, request)) return;
  let source: BackupSource;
  try {
    source = await backend.backup();
  } catch (error) {
    answerRaftError(backend, res, request, error);
    return;
  }
  const head = backupHeaderLine(source);
  res.writeHead(200, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(head.length + source.data.length),
    'Content-Disposition': `attachment; filename="tsraft-${source.clusterId.replace(/[^A-Za-z0-9._-]/g, '_')}-${source.index}.backup"`,
    'X-Tsraft-Snapshot-Index': String(source.index),
    'Cache-Control': 'no-store',
  });
  await write(res, head);
  for (let at = 0; at < source.data.length && !res.destroyed; at += CHUNK_BYTES) {
    await write(res, source.data.subarray(at, at + CHUNK_BYTES));
  }
  res.end();
}

/** Writes a chunk; resolves once the socket wants more (or is gone). */
function write(res: ServerResponse, chunk: Uint8Array): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
