/**
 * A write whose outcome is unknown is never redirected: the HTTP API says so (503 or 504 with
 * `outcome-unknown`) and tells the client how to retry safely, because re-sending it elsewhere
 * without a session could apply it twice. A write that never reached the log (not the leader)
 * is still redirected.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { KvServerStatus } from '../../src/kv/api-types.js';
import { startHttpApi, type KvApiBackend } from '../../src/kv/http-api.js';
import { NotLeaderError, OutcomeUnknownError, ProposalTimeoutError } from '../../src/runtime/errors.js';

describe('HTTP API: writes with an unknown outcome', () => {
  let failWith: Error = new Error('unset');
  let server: Awaited<ReturnType<typeof startHttpApi>>;
  let base: string;

  before(async () => {
    const backend: KvApiBackend = {
      readMode: 'read-index',
      readLocal: () => ({ value: null, index: 0 }),
      confirmRead: () => Promise.resolve(0),
      commit: () => Promise.reject(failWith),
      leaderUrl: (id) => `http://127.0.0.1:1/${id}`,
      isStopping: () => false,
      isNodeStopped: () => false,
      status: () => ({}) as KvServerStatus,
      metricsText: () => '',
      countResponse: () => undefined,
      log: () => undefined,
    };
    server = await startHttpApi(backend, { host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const put = async (): Promise<{ status: number; location: string | null; body: { error: { code: string; message: string } } }> => {
    const response = await fetch(`${base}/v1/kv/k`, { method: 'PUT', body: 'v', redirect: 'manual' });
    return { status: response.status, location: response.headers.get('location'), body: (await response.json()) as { error: { code: string; message: string } } };
  };

  it('leadership lost after the proposal: 503 outcome-unknown, no Location, advice to retry with the same session', async () => {
    failWith = new OutcomeUnknownError(7, 2);
    const r = await put();
    assert.equal(r.status, 503);
    assert.equal(r.location, null);
    assert.equal(r.body.error.code, 'outcome-unknown');
    assert.match(r.body.error.message, /may still take effect.*same X-Client-Id and X-Request-Seq/);
  });

  it('a timeout: 504 outcome-unknown', async () => {
    failWith = new ProposalTimeoutError(5000);
    const r = await put();
    assert.equal(r.status, 504);
    assert.equal(r.body.error.code, 'outcome-unknown');
  });

  it('not the leader (nothing was proposed): still a 307 to the leader', async () => {
    failWith = new NotLeaderError(2, 'http://127.0.0.1:1');
    const r = await put();
    assert.equal(r.status, 307);
    assert.equal(r.location, 'http://127.0.0.1:1/v1/kv/k');
  });
});
