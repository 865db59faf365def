// Runnable ALLIO simulator for the local demo: `ALLIO_SIM_PORT` / `ALLIO_SIM_TOKEN` configure it,
// SIGTERM / SIGINT stop it. Only the entry points read the environment; the servers take options.
import { startAllioSimulator } from './server.js';

function parsePort(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 4010;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`ALLIO_SIM_PORT must be an integer 0..65535, got "${raw}"`);
  }
  return port;
}

async function main(): Promise<void> {
  const port = parsePort(process.env.ALLIO_SIM_PORT);
  const token = process.env.ALLIO_SIM_TOKEN || 'demo-token';
  const sim = await startAllioSimulator({ port, token });
  console.log(
    JSON.stringify({
      level: 'info',
      time: Date.now(),
      msg: 'allio simulator listening',
      url: sim.url,
    }),
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    sim.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(
          JSON.stringify({
            level: 'error',
            msg: 'allio simulator close failed',
            signal,
            err: String(err),
          }),
        );
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(
    JSON.stringify({ level: 'error', msg: 'allio simulator failed to start', err: String(err) }),
  );
  process.exit(1);
});
