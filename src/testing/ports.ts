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
