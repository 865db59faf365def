// A smart-home partner simulator as its own process: `node dist/services/simulators/smart-home/main.js`.
import { z } from 'zod';
import { amqpEnv, loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { runService } from '../../core/runtime.js';
import { defaultCommandQueue } from '../../mq-bridge/resource.js';
import { PartnerSimulator } from './partner.js';

const env = amqpEnv.extend({
  SIM_PARTNER: z.string().min(1).default('demo-partner'),
  SIM_COMMAND_QUEUE: z.string().min(1).optional(),
  SIM_DELAY_MS: z.coerce.number().int().min(0).default(200),
  SIM_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0),
  SIM_SILENT: z.enum(['true', 'false']).default('false'),
  LOG_LEVEL: z.string().default('info'),
});

await runService('partner-simulator', async () => {
  const c = loadConfig(env);
  const logger = createLogger({ level: c.LOG_LEVEL, name: 'partner-simulator' });
  const sim = new PartnerSimulator({
    amqpUrl: c.AMQP_URL, partner: c.SIM_PARTNER, commandQueue: c.SIM_COMMAND_QUEUE ?? defaultCommandQueue(c.SIM_PARTNER), logger,
    behaviour: { delayMs: c.SIM_DELAY_MS, failureRate: c.SIM_FAILURE_RATE, silent: c.SIM_SILENT === 'true' },
  });
  await sim.start();
  logger.info({ partner: c.SIM_PARTNER }, 'partner simulator consuming');
  return { logger, shutdownTimeoutMs: 5_000, shutdown: () => sim.stop() };
});
