// Free TCP ports on loopback, for a server whose own URL must be known before it listens (an
// OAuth issuer names its port; a RabbitMQ node is configured with its ports). Another process
// could take one in between; callers that start from 0 accept that for local runs and tests.
import { createServer, type AddressInfo, type Server } from 'node:net';

/**
 * `count` distinct free ports, held together while they are picked so none repeats; a port that
 * `accept` turns down (one another program reserves) is skipped.
 */
export async function freePorts(
  count: number,
  o: { host?: string; accept?: (port: number) => boolean } = {},
): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < count) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, o.host ?? '127.0.0.1', resolve);
      });
      const { port } = server.address() as AddressInfo;
      if (o.accept?.(port) ?? true) ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, { host });
  if (port === undefined) throw new Error('no TCP port was assigned');
  return port;
}
