// The kitchen service's configuration, read once: partner endpoints and credentials, timeouts,
// retry budgets and the 1C export window.
import { z } from 'zod';
import {
  amqpEnv,
  baseEnv,
  databaseEnv,
  deadLetterEnv,
  installationEnv,
  outboundEnv,
  retentionEnv,
} from '../core/config.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const httpUrl = (schemes: string[]) =>
  z
    .string({ required_error: 'is required' })
    .url()
    .refine((v) => schemes.includes(new URL(v).protocol), `must use ${schemes.join(' or ')}`);

export const kitchenEnv = baseEnv
  .merge(databaseEnv)
  .merge(amqpEnv)
  .merge(outboundEnv)
  .merge(retentionEnv)
  .merge(deadLetterEnv)
  .merge(installationEnv)
  .extend({
    /** Payment gateway base URL; HTTPS only, TLS 1.3 at least. */
    KITCHEN_PAYMENT_URL: httpUrl(['https:']),
    KITCHEN_PAYMENT_API_KEY: z
      .string({ required_error: 'is required (the merchant key of the gateway)' })
      .min(8),
    /** PEM bundle the gateway's certificate must chain to; the system store when unset. */
    KITCHEN_PAYMENT_CA_FILE: z.string().min(1).optional(),
    KITCHEN_PAYMENT_TIMEOUT_MS: int(100, 120_000).default(10_000),
    KITCHEN_PAYMENT_MAX_ATTEMPTS: int(1, 50).default(8),
    /** Tries of a refund before it is left failed; 20 with the default backoff span about an hour. */
    KITCHEN_REFUND_MAX_ATTEMPTS: int(1, 100).default(20),
    /** https; http only with OUTBOUND_ALLOW_HTTP=true (development). */
    KITCHEN_ROBOTS_URL: httpUrl(['http:', 'https:']),
    KITCHEN_ROBOTS_API_KEY: z.string({ required_error: 'is required (the robots API key)' }).min(8),
    /** A robots call gets 5 s, and is retried 3 times with exponential backoff. */
    KITCHEN_ROBOTS_TIMEOUT_MS: int(100, 60_000).default(5_000),
    KITCHEN_ROBOTS_RETRIES: int(0, 20).default(3),
    KITCHEN_ROBOTS_BACKOFF_MS: int(10, 60_000).default(1_000),
    /** How often a cooking order's status is asked for, and how long cooking may take at most. */
    KITCHEN_PRODUCTION_POLL_MS: int(50, 600_000).default(5_000),
    KITCHEN_PRODUCTION_DEADLINE_MS: int(1_000, 86_400_000).default(2 * 3_600_000),
    KITCHEN_LEASE_MS: int(1_000, 3_600_000).default(60_000),
    /** 1C:Accounting OData base, e.g. https://1c.example/buh/odata/standard.odata */
    ONEC_ODATA_URL: httpUrl(['http:', 'https:']),
    ONEC_USER: z.string({ required_error: 'is required (1C OData user)' }).min(1),
    ONEC_PASSWORD: z.string({ required_error: 'is required (1C OData password)' }).min(1),
    ONEC_TIMEOUT_MS: int(100, 120_000).default(15_000),
    /** Hours looked back for exports missed while no replica ran (3 days covers a long weekend). */
    KITCHEN_ONEC_CATCHUP_HOURS: int(1, 24 * 31).default(72),
  });
export type KitchenConfig = z.infer<typeof kitchenEnv>;
