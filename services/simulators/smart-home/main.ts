// A smart-home partner simulator as its own process: `node dist/services/simulators/smart-home/main.js`.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { TokenSource } from '../../../docs/examples/partner-client.js';
import { defaultCommandQueue } from '../../contracts/smart-home-partner.js';
import { ConfigError, createLogger, loadConfig, runProcess, url } from '../process-kit.js';
import { PartnerSimulator } from './partner.js';

const env = z.object({
  AMQP_URL: url(['amqp:', 'amqps:']),
  SIM_PARTNER: z.string().min(1).default('demo-partner'),
  SIM_COMMAND_QUEUE: z.string().min(1).optional(),
  SIM_DELAY_MS: z.coerce.number().int().min(0).default(200),
  SIM_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0),
  SIM_SILENT: z.enum(['true', 'false']).default('false'),
  LOG_LEVEL: z.string().default('info'),
  /** Connect as a production partner: a token from this endpoint, AMQP_URL an amqps:// URL without credentials. */
  SIM_TOKEN_URL: url(['https:', 'http:']).optional(),
  SIM_CLIENT_ID: z.string().min(1).optional(),
  SIM_CLIENT_SECRET: z.string().min(1).optional(),
  /** CA certificate (PEM) of the broker's and the authorization server's TLS certificates. */
  SIM_CA_FILE: z.string().min(1).optional(),
});

await runProcess('partner-simulator', async () => {
  const c = loadConfig(env);
  const logger = createLogger({ level: c.LOG_LEVEL, name: 'partner-simulator' });
  const ca = c.SIM_CA_FILE ? await readFile(c.SIM_CA_FILE, 'utf8') : undefined;
  let auth;
  if (c.SIM_TOKEN_URL) {
    if (!c.SIM_CLIENT_ID || !c.SIM_CLIENT_SECRET) {
      throw new ConfigError([
        'SIM_CLIENT_ID and SIM_CLIENT_SECRET are required with SIM_TOKEN_URL',
      ]);
    }
    auth = {
      ca,
      tokens: new TokenSource({
        tokenUrl: c.SIM_TOKEN_URL,
        clientId: c.SIM_CLIENT_ID,
        clientSecret: c.SIM_CLIENT_SECRET,
        ca,
      }),
    };
  }
  const sim = new PartnerSimulator({
    amqpUrl: c.AMQP_URL,
    auth,
    declareTopology: !auth,
    partner: c.SIM_PARTNER,
    commandQueue: c.SIM_COMMAND_QUEUE ?? defaultCommandQueue(c.SIM_PARTNER),
    logger,
    behaviour: {
      delayMs: c.SIM_DELAY_MS,
      failureRate: c.SIM_FAILURE_RATE,
      silent: c.SIM_SILENT === 'true',
    },
  });
  await sim.start();
  logger.info({ partner: c.SIM_PARTNER }, 'partner simulator consuming');
  return { logger, shutdownTimeoutMs: 5_000, shutdown: () => sim.stop() };
});
