// Typed configuration read once from the environment and validated with zod; a missing or bad
// variable stops start-up with a message that names it.
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n  - ${issues.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export const url = (protocols: string[]) =>
  z
    .string({ required_error: 'is required' })
    .min(1, 'is required')
    .refine((v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    }, `must be a URL with scheme ${protocols.join(' or ')}`);

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** Variables every service reads. */
export const baseEnv = z.object({
  PORT: int(0, 65535).default(8080),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Identifies this replica in leases (the pod name in Kubernetes). */
  INSTANCE_ID: z.string().min(1).optional(),
  /** Graceful-shutdown budget after SIGTERM before in-flight work is released. */
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(20_000),
});

export const databaseEnv = z.object({
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  /** Schema that holds the hub's tables; a separate schema per test run keeps runs apart. */
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier')
    .default('public'),
  DATABASE_POOL_MAX: int(1, 200).default(10),
});

export const redisEnv = z.object({
  REDIS_URL: url(['redis:', 'rediss:']),
  /** Prefix of every Redis key the hub writes. */
  REDIS_KEY_PREFIX: z.string().max(64).default('hub:'),
});

export const amqpEnv = z.object({
  AMQP_URL: url(['amqp:', 'amqps:']),
});

export const allioEnv = z.object({
  /** ALLIO's quota is per source IP; replicas behind one NAT share this key. */
  EGRESS_IP: z.string().min(1).default('default'),
  ALLIO_RATE_PER_SECOND: z.coerce.number().positive().max(1000).default(2),
  /**
   * Extra spacing added to every ALLIO request slot so that scheduling jitter between the limiter's
   * grant and the request reaching ALLIO never packs three requests into one second. At 15 ms the
   * quota is used at 1000/(500+15) = 97 %.
   */
  ALLIO_RATE_SAFETY_MS: int(0, 1000).default(15),
  ALLIO_HTTP_TIMEOUT_MS: int(100, 120_000).default(10_000),
  /** With backoff doubling from 1 s to a 5 min cap, 15 tries span about 25 minutes of partner outage. */
  ALLIO_MAX_ATTEMPTS: int(1, 100).default(15),
  ALLIO_WORKER_CONCURRENCY: int(1, 64).default(2),
  /**
   * How long a claimed task stays with its worker before another may take it over; it must exceed
   * the slowest batch (limiter wait + HTTP timeout + write).
   */
  ALLIO_TASK_LEASE_MS: int(1_000, 3_600_000).default(60_000),
  /** UTC time of day (HH:MM) after which the daily deletion sweep runs. */
  ALLIO_DELETION_TIME: z
    .string()
    .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (UTC)')
    .default('03:00'),
  /** Directory where Kubernetes mounts Secrets referenced by integrations (<dir>/<name>/<key>). */
  SECRETS_DIR: z.string().min(1).default('/var/run/secrets/integration-hub'),
});

export const httpEnv = z.object({
  /** Largest accepted request body; larger webhook bodies get 413. */
  HTTP_BODY_LIMIT_BYTES: int(1024, 50 * 1024 * 1024).default(256 * 1024),
});

/**
 * Parses `env` with `schema` (an object schema, or one refined for variables that go together); on
 * failure throws a ConfigError whose lines name each variable.
 * Empty or blank values count as unset so that `FOO=` behaves like a missing variable.
 */
export function loadConfig<S extends z.ZodObject<z.ZodRawShape> | z.ZodEffects<z.ZodObject<z.ZodRawShape>>>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.infer<S> {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v.trim() !== '') cleaned[k] = v.trim();
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`),
  );
}

export const serviceEnv = baseEnv.merge(databaseEnv).merge(redisEnv);
export type BaseConfig = z.infer<typeof baseEnv>;
export type DatabaseConfig = z.infer<typeof databaseEnv>;
export type RedisConfig = z.infer<typeof redisEnv>;
export type AllioConfig = z.infer<typeof allioEnv>;
export type HttpConfig = z.infer<typeof httpEnv>;
