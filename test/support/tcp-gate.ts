// A TCP forwarder that a test can shut: while shut, every connection through it is dropped and new
// ones are closed as they arrive, while the server behind it and its other clients carry on (one
// process cut off from a server, as a network fault between the two would do). It can also hold
// each chunk, in each direction, for a delay of its own (order kept within a connection): a network
// whose delays differ from one connection and one moment to the next.
import net, { type AddressInfo } from 'node:net';
import { track } from './leaks.js';

export interface TcpGate {
  /** `host:port` of the gate, to put in a client's URL instead of the server's. */
  address: string;
  /** Drops every connection through the gate and refuses new ones until `open`. */
  shut(): void;
  open(): void;
  close(): Promise<void>;
}

export interface TcpGateOptions {
  /** How long to hold each chunk before passing it on, asked per chunk; none: passed at once. */
  chunkDelayMs?: () => number;
}

/** Passes `from`'s bytes to `to`, each chunk after its delay and never before the one ahead of it. */
function forward(from: net.Socket, to: net.Socket, chunkDelayMs: (() => number) | undefined): void {
  if (!chunkDelayMs) {
    from.pipe(to);
    return;
  }
  let last = 0;
  from.on('data', (chunk: Buffer) => {
    const at = Math.max(last, performance.now() + chunkDelayMs());
    last = at;
    setTimeout(() => to.destroyed || to.write(chunk), at - performance.now());
  });
}

export async function startTcpGate(
  target: { host: string; port: number },
  o: TcpGateOptions = {},
): Promise<TcpGate> {
  const live = new Set<net.Socket>();
  let shut = false;
  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    if (shut) return void client.destroy();
    const upstream = net.connect(target.port, target.host);
    upstream.on('error', () => undefined);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('close', drop);
    upstream.on('close', drop);
    live.add(client).add(upstream);
    forward(client, upstream, o.chunkDelayMs);
    forward(upstream, client, o.chunkDelayMs);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const untrack = track('tcp gate');
  const dropAll = () => {
    for (const s of live) s.destroy();
    live.clear();
  };
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    shut() {
      shut = true;
      dropAll();
    },
    open() {
      shut = false;
    },
    async close() {
      shut = true;
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      untrack();
    },
  };
}
