/**
 * One tsraft node as an OS process, the child-process entry script of RaftProcessCluster
 * (process-cluster.ts; not a module to import): a RaftNode with FileStorage and TcpTransport whose
 * state machine is the list of applied commands. The parent talks to it over the IPC channel of
 * child_process.fork:
 *   { op: 'propose', id, command }  → { op: 'proposed', id, index?, error?, leaderId? }
 *   { op: 'status' }                → { op: 'status', status }
 *   { op: 'log', from }             → { op: 'log', entries: [index, command][] }  (applied, in order)
 * argv: <id> <comma-separated ports> <data dir>
 */
import type { Entry } from '../core/messages.js';
import { NotLeaderError, OutcomeUnknownError } from '../runtime/errors.js';
import { RaftNode } from '../runtime/node.js';
import { FileStorage } from '../storage/file-storage.js';
import { TcpTransport } from '../transport/tcp.js';

type Request =
  | { op: 'propose'; id: number; command: string }
  | { op: 'status' }
  | { op: 'log'; from: number };

const [idText, portsText, dir] = process.argv.slice(2);
if (idText === undefined || portsText === undefined || dir === undefined) {
  console.error('usage: raft-process <id> <port,port,...> <data dir>');
  process.exit(2);
}
const id = Number(idText);
const ports = portsText.split(',').map(Number);
const applied: [number, string][] = [];
const decoder = new TextDecoder();

const node = await RaftNode.start({
  id,
  peers: ports.map((_, i) => i),
  storage: new FileStorage({ dir }),
  transport: new TcpTransport({
    clusterId: 'process-test',
    nodeId: id,
    listen: { host: '127.0.0.1', port: ports[id]! },
    peers: ports.map((port, i) => ({ id: i, host: '127.0.0.1', port })).filter((p) => p.id !== id),
  }),
  stateMachine: {
    apply: (entry: Entry) => applied.push([entry.index, decoder.decode(entry.command)]),
    restore: () => {
      throw new Error('the process test never snapshots');
    },
  },
  timing: { heartbeatMs: 50, electionTimeoutMinMs: 300, electionTimeoutMaxMs: 600 },
  onFatal: (error) => {
    console.error(`node ${id} stopped: ${error.message}`);
    process.exit(1);
  },
});

process.on('message', (request: Request) => {
  switch (request.op) {
    case 'propose':
      node.propose(new TextEncoder().encode(request.command), { timeoutMs: 5000 }).then(
        ({ index }) => process.send!({ op: 'proposed', id: request.id, index }),
        (error: Error) =>
          process.send!({
            op: 'proposed',
            id: request.id,
            error: error.name,
            leaderId: error instanceof NotLeaderError || error instanceof OutcomeUnknownError ? error.leaderId : undefined,
          }),
      );
      return;
    case 'status':
      process.send!({ op: 'status', status: node.status() });
      return;
    case 'log':
      process.send!({ op: 'log', entries: applied.filter(([index]) => index >= request.from) });
      return;
  }
});

process.on('SIGTERM', () => {
  void node.stop().then(() => process.exit(0));
});
process.send!({ op: 'ready' });
