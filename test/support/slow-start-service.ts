// A service whose start-up takes two seconds, run as a child by test/runtime-signals.test.ts.
import { createLogger } from '../../services/core/logger.js';
import { runService } from '../../services/core/runtime.js';

await runService('slow-start', async () => {
  const logger = createLogger({ level: 'info', name: 'slow-start' });
  logger.info('starting');
  await new Promise((r) => setTimeout(r, 2_000));
  logger.info('started');
  return { logger, shutdownTimeoutMs: 5_000, shutdown: [{ waitsFor: 'nothing much', run: async () => logger.info('shutdown step ran') }] };
});
