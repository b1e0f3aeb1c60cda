/**
 * The development fault switch's route, served only by a node started with --dev-faults (which
 * `tsraft start` passes to its children); any other node answers 404 no-route, as for a path that
 * does not exist. Admin role when authorization is on (http-auth.ts).
 *
 *     GET  /v1/dev/faults              200 {"cut":[ids],"dropped":n}
 *     POST /v1/dev/faults?cut=1,2      drop every message to and from nodes 1 and 2 (the TCP
 *                                      transport's cutFrom; connections stay up); `cut=` heals
 */
import type { ServerResponse } from 'node:http';
import { HttpError, parseQuery, sendJson, textParam } from './http-io.js';

export const DEV_FAULTS_PATH = '/v1/dev/faults';
/** More ids than any local cluster has: a longer list is a mistake. */
const CUT_IDS_MAX = 64;

/** What the route needs: the transport's switch. */
export interface DevFaults {
  cutFrom(peers: readonly number[]): void;
  readonly faults: { readonly cut: readonly number[]; readonly dropped: number };
}

export function serveDevFaults(faults: DevFaults | undefined, res: ServerResponse, method: string, rawQuery: string): void {
  if (faults === undefined) throw new HttpError(404, 'no-route', `no such endpoint: ${DEV_FAULTS_PATH} (the fault switch is on only for nodes started by \`tsraft start\`)`);
  if (method === 'GET') {
    sendJson(res, 200, faults.faults);
    return;
  }
  if (method !== 'POST') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${DEV_FAULTS_PATH}; use GET or POST`, { Allow: 'GET, POST' });
  const params = parseQuery(rawQuery);
  for (const name of params.keys()) if (name !== 'cut') throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name.slice(0, 40)}"; POST ${DEV_FAULTS_PATH} takes ?cut=<ids>`);
  const text = textParam(params, 'cut');
  if (text === undefined) throw new HttpError(400, 'bad-parameter', `POST ${DEV_FAULTS_PATH} needs ?cut=<comma-separated node ids> (empty to heal)`);
  const ids = text === '' ? [] : text.split(',');
  if (ids.length > CUT_IDS_MAX || !ids.every((id) => /^\d{1,15}$/.test(id))) throw new HttpError(400, 'bad-parameter', `cut must be comma-separated node ids, got "${text.slice(0, 40)}"`);
  faults.cutFrom([...new Set(ids.map(Number))]);
  sendJson(res, 200, faults.faults);
}
