// A service whose start-up takes two seconds and that then runs until it is stopped, run as a child by test/runtime-signals.test.ts. With
// START_BUSY_MS it ends its start-up with that long a synchronous stretch (said as "busy"), during
// which a signal can only wait in the event loop's queue.
import { createLogger } from '../../services/core/logger.js';
import { runService } from '../../services/core/runtime.js';

await runService('slow-start', async () => {
  const logger = createLogger({ level: 'info', name: 'slow-start' });
  logger.info('starting');
  await new Promise((r) => setTimeout(r, 2_000));
  const busyMs = Number(process.env.START_BUSY_MS ?? 0);
  if (busyMs > 0) {
    logger.info('busy');
    const until = Date.now() + busyMs;
    while (Date.now() < until);
  }
  // What a real service holds open (a server, a pool): it keeps the process up until the shutdown.
  const serving = setInterval(() => undefined, 1_000);
  logger.info('started');
  return {
    logger,
    shutdownTimeoutMs: 5_000,
    shutdown: [
      {
        waitsFor: 'nothing much',
        run: async () => {
          clearInterval(serving);
          logger.info('shutdown step ran');
        },
      },
    ],
  };
});
