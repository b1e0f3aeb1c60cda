/**
 * The dashboard's controls under `tsraft start`: a small HTTP server on 127.0.0.1 (a free port,
 * printed at start and passed to every node as --dev-controls-url, which the dashboard reads from
 * its feed) through which the page asks the supervisor, which owns the node processes, to act:
 *
 *     GET  /v1/state                       {"nodes":[{"id","pid","state"}],"cuts":[[a,b]]}: state is
 *                                          running, paused, held (stopped or killed from here: not
 *                                          restarted until started) or down; cuts are the network
 *                                          cuts made from here
 *     POST /v1/nodes/{id}/stop             SIGTERM (a leader hands over first); kept down
 *     POST /v1/nodes/{id}/kill             SIGKILL; kept down
 *     POST /v1/nodes/{id}/pause            SIGSTOP (the watchdog leaves a paused node alone)
 *     POST /v1/nodes/{id}/resume           SIGCONT
 *     POST /v1/nodes/{id}/start            starts a node stopped or killed from here
 *     POST /v1/leader/transfer[?to=<id>]   asks the leader to hand leadership over
 *     POST /v1/network/cut?a=<id>&b=<id>   cuts the network between two nodes: each drops the
 *                                          other's messages (their --dev-faults switch)
 *     POST /v1/network/heal?a=<id>&b=<id>  heals that cut
 *     POST /v1/members/{id}/remove         removes node {id} from the configuration (through the
 *                                          leader; its process keeps running, as a non-member)
 *     POST /v1/members/{id}/add            adds node {id} of this cluster back, as a voter, with its
 *                                          addresses (new node ids are for `tsraft node --join`)
 *
 * A development aid only, and guarded as one: it listens on loopback; a request must name this
 * server by its loopback Host (no DNS-rebinding name); a POST must carry `X-Tsraft-Control: 1`, a
 * header a page of another origin can only send after a CORS preflight, which is granted only to
 * the nodes' own origins (where the dashboard is served). Any local process can signal the nodes
 * anyway; a web page elsewhere cannot.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type NodeAction = 'stop' | 'kill' | 'pause' | 'resume' | 'start';
const ACTIONS: readonly NodeAction[] = ['stop', 'kill', 'pause', 'resume', 'start'];

export interface ControlledNode {
  readonly id: number;
  readonly pid: number | null;
  readonly state: 'running' | 'paused' | 'held' | 'down';
}

/** What the supervisor offers the controls. */
export interface ControlledCluster {
  nodes(): readonly ControlledNode[];
  /** The pairs of nodes whose network is cut, each [lower id, higher id]. */
  cuts(): readonly (readonly [number, number])[];
  /** Removes node `id` from the configuration, or adds it back as a voter; resolves with a line saying what was done. */
  changeMember(id: number, change: 'add' | 'remove'): Promise<string>;
  /** Cuts (or heals) the network between nodes a and b; resolves with a line saying what was done. */
  setCut(a: number, b: number, cut: boolean): Promise<string>;
  /** Acts on node `id`; resolves with a line saying what was done; rejects with ControlError. */
  act(id: number, action: NodeAction): Promise<string>;
  /** Asks the leader to hand over (to `to` when given); resolves with a line saying who leads. */
  transferLeadership(to: number | undefined): Promise<string>;
}

/** A refusal the controls answer with `status` and a message (an unknown node, a node in the wrong state). */
export class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const HEADER = 'x-tsraft-control';

export interface DevControls {
  readonly url: string;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (a free port); `origins` are the nodes' HTTP origins, the only ones CORS admits. */
export async function startDevControls(cluster: ControlledCluster, origins: readonly string[], say: (line: string) => void): Promise<DevControls> {
  const allowed = new Set(origins);
  let port = 0;
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof ControlError) answer(res, error.status, { error: { code: 'refused', message: error.message } });
      else {
        say(`dev controls: ${error instanceof Error ? error.message : String(error)}`);
        answer(res, 500, { error: { code: 'internal', message: 'the control failed; see the start output' } });
      }
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const origin = req.headers.origin;
    if (origin !== undefined && allowed.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
    }
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) throw new ControlError(403, 'the controls answer only on 127.0.0.1');
    if (origin !== undefined && !allowed.has(origin)) throw new ControlError(403, 'the controls answer only pages served by this cluster\'s nodes');
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Methods': 'GET, POST', 'Access-Control-Allow-Headers': 'X-Tsraft-Control', 'Access-Control-Max-Age': '600' });
      res.end();
      return;
    }
    if (url.pathname === '/v1/state') {
      if (req.method !== 'GET') throw new ControlError(405, 'use GET');
      answer(res, 200, { nodes: cluster.nodes(), cuts: cluster.cuts() });
      return;
    }
    if (req.method !== 'POST') throw new ControlError(405, 'use POST');
    if (req.headers[HEADER] !== '1') throw new ControlError(403, 'a control needs the header X-Tsraft-Control: 1');
    if (url.pathname === '/v1/leader/transfer') {
      const to = url.searchParams.get('to');
      if (to !== null && !/^\d{1,6}$/.test(to)) throw new ControlError(400, 'to must be a node id');
      answer(res, 200, { message: await cluster.transferLeadership(to === null ? undefined : Number(to)) });
      return;
    }
    if (url.pathname === '/v1/network/cut' || url.pathname === '/v1/network/heal') {
      const a = url.searchParams.get('a') ?? '';
      const b = url.searchParams.get('b') ?? '';
      if (!/^\d{1,6}$/.test(a) || !/^\d{1,6}$/.test(b) || a === b) throw new ControlError(400, 'a and b must be two different node ids');
      const message = await cluster.setCut(Number(a), Number(b), url.pathname.endsWith('/cut'));
      say(`dashboard: ${message}`);
      answer(res, 200, { message });
      return;
    }
    const member = /^\/v1\/members\/(\d{1,6})\/(add|remove)$/.exec(url.pathname);
    if (member !== null) {
      const message = await cluster.changeMember(Number(member[1]), member[2] as 'add' | 'remove');
      say(`dashboard: ${message}`);
      answer(res, 200, { message });
      return;
    }
    const match = /^\/v1\/nodes\/(\d{1,6})\/([a-z]+)$/.exec(url.pathname);
    const action = match?.[2] as NodeAction | undefined;
    if (match === null || action === undefined || !ACTIONS.includes(action)) throw new ControlError(404, `no such control: ${url.pathname.slice(0, 100)}`);
    const message = await cluster.act(Number(match[1]), action);
    say(`dashboard: ${message}`);
    answer(res, 200, { message });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  server.on('error', (error) => say(`dev controls: ${error.message}`));
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}
