// A free TCP port on loopback, for a server whose own URL must be known before it listens (an
// OAuth issuer names its port). Another process could take it in between; callers that start
// from 0 accept that for local runs and tests.
import { createServer } from 'node:net';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no TCP port was assigned');
  return address.port;
}
