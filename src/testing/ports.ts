/** Free TCP ports on 127.0.0.1, for tests, benchmarks and the process clusters. */
import { createServer, type Server } from 'node:net';

/**
 * `count` distinct ports that were free a moment ago on 127.0.0.1: each is bound to port 0, read
 * and released. Another process may take one before the caller binds it; rejects if binding fails.
 */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

function listenExclusive(port: number): Promise<Server | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server));
  });
}

/**
 * A base port such that base..base+count-1 were all free on 127.0.0.1 a moment ago (for commands
 * that take consecutive ports, like `tsraft start --base-port`), avoiding the ports in `avoid`.
 */
export async function freeLoopbackPortRange(count: number, avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    if ([...Array(count).keys()].some((i) => avoid.has(base + i))) continue;
    const servers: Server[] = [];
    let ok = true;
    for (let i = 0; i < count && ok; i++) {
      const server = await listenExclusive(base + i);
      if (server === null) ok = false;
      else servers.push(server);
    }
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    if (ok) return base;
  }
  throw new Error(`no range of ${count} free ports found on 127.0.0.1`);
}
