// Typed configuration read once from the environment and validated with zod; a missing or bad
// variable stops start-up with a message that names it.
import { z } from 'zod';
import { parseTableDays } from './retention/policies.js';

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
    .refine(
      (v) => {
        try {
          return protocols.includes(new URL(v).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL with scheme ${protocols.join(' or ')}`,
    );

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/**
 * Limits of every HTTP server the hub runs, so that a slow or hostile client holds a connection for a
 * bounded time and the process a bounded number of them.
 */
export const httpServerEnv = z.object({
  /** Time to receive a request's headers (slowloris); a real client sends them in one packet. */
  HTTP_HEADERS_TIMEOUT_MS: int(100, 120_000).default(10_000),
  /**
   * Time to receive a whole request; the largest accepted body (256 KiB by default) takes under a
   * second even on a slow mobile link. Headers get at most this long too.
   */
  HTTP_REQUEST_TIMEOUT_MS: int(100, 600_000).default(30_000),
  /**
   * How long an idle keep-alive connection stays open. Longer than the ingress' own upstream idle
   * timeout (ingress-nginx and cloud load balancers: 60 s): a server that closes first races the
   * proxy reusing the connection, which surfaces as sporadic 502s.
   */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(100, 600_000).default(65_000),
  /**
   * Open connections per process, WebSockets included; more are dropped at accept and counted in
   * hub_http_connections_refused_total. Each costs a descriptor and a few KiB; 10,000 keeps well
   * under the usual 65,536-descriptor limit alongside database and broker connections.
   */
  HTTP_MAX_CONNECTIONS: int(1, 1_000_000).default(10_000),
});

/** Variables every service reads. */
export const baseEnv = z
  .object({
    PORT: int(0, 65535).default(8080),
    LOG_LEVEL: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    /** Identifies this replica in leases (the pod name in Kubernetes). */
    INSTANCE_ID: z.string().min(1).optional(),
    /** Graceful-shutdown budget after SIGTERM before in-flight work is released. */
    SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(20_000),
  })
  .merge(httpServerEnv);

export const databaseEnv = z.object({
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  /** Schema that holds the hub's tables; a separate schema per test run keeps runs apart. */
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier')
    .default('public'),
  /**
   * Connections of the process's knex pool (each pod holds at most this many through DATABASE_URL).
   * The chart sets it per service so that pools × replicas fit the server's max_connections
   * (docs/deployment.md, "Database connections").
   */
  DATABASE_POOL_MAX: int(1, 200).default(10),
  /**
   * Where the connections that need a session of their own go: the LISTEN connection of the
   * worker services. Defaults to DATABASE_URL; set it to PostgreSQL itself when DATABASE_URL points
   * at a PgBouncer in transaction mode, where LISTEN does not work.
   */
  DATABASE_SESSION_URL: url(['postgres:', 'postgresql:']).optional(),
});

/** The URL of the connections that need a session (LISTEN): DATABASE_SESSION_URL, else DATABASE_URL. */
export function sessionDatabaseUrl(
  config: Pick<DatabaseConfig, 'DATABASE_URL' | 'DATABASE_SESSION_URL'>,
): string {
  return config.DATABASE_SESSION_URL ?? config.DATABASE_URL;
}

export const redisEnv = z.object({
  REDIS_URL: url(['redis:', 'rediss:']),
  /** Prefix of every Redis key the hub writes. */
  REDIS_KEY_PREFIX: z.string().max(64).default('hub:'),
});

export const amqpEnv = z.object({
  AMQP_URL: url(['amqp:', 'amqps:']),
});

/**
 * An installation is one hub: its database, its Redis prefix and its services. Several may share a
 * RabbitMQ vhost; the queues an installation consumes alone then carry its name.
 */
export const installationEnv = z.object({
  /**
   * This installation's name when several hubs share one RabbitMQ vhost: its smart-home reply queue
   * becomes `smart-home.replies.<name>` and its order status events travel as
   * `order.status.<name>` to `kitchen.order-status.<name>`. Every hub on a vhost needs a name of its
   * own (one of them may keep none); replicas of one hub share theirs.
   */
  HUB_INSTALLATION: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9-]{0,39}$/,
      'must be 1-40 lower-case letters, digits or "-", starting with a letter or digit',
    )
    .optional(),
});

/** A host allowed for outbound calls: a DNS name, an IP address, or `*.` and a domain (its subdomains). */
const hostPattern = z
  .string()
  .regex(
    /^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$|^\[[0-9a-f:.]+\]$/,
    'must be host names (or *.domain), separated by commas',
  );

/**
 * The policy every outbound client (ALLIO, payment gateway, robots, 1C, Keycloak) applies
 * (services/core/outbound.ts): where calls may go, how much of an answer is read, how long a
 * partner may make us wait.
 */
export const outboundEnv = z.object({
  /** Development only: allow http:// partner URLs (local simulators). Production calls are https. */
  OUTBOUND_ALLOW_HTTP: bool.default('false'),
  /** Comma list of hosts outbound calls may reach (`*.example.com` for subdomains); empty = any host. */
  OUTBOUND_ALLOWED_HOSTS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h !== ''),
    )
    .pipe(z.array(hostPattern)),
  /**
   * Largest partner answer read, in bytes; a larger one is cut off and the call fails. Partners
   * answer with one page (at most 100 ALLIO records, one payment, one production order), far below
   * 4 MiB; the limit only keeps a hostile or broken answer from filling the heap.
   */
  OUTBOUND_MAX_RESPONSE_BYTES: int(1024, 64 * 1024 * 1024).default(4 * 1024 * 1024),
  /**
   * Longest pause a partner's Retry-After may impose (on the shared ALLIO limiter and on a task's
   * next attempt); a longer ask is clamped, logged and counted. 5 minutes is the backoff cap.
   */
  RETRY_AFTER_MAX_MS: int(0, 3_600_000).default(300_000),
});

export const allioEnv = z
  .object({
    /** ALLIO's quota is per source IP; replicas behind one NAT share this key. */
    EGRESS_IP: z.string().min(1).default('default'),
    /**
     * Local address ALLIO connections leave from, on a host with one address per egress IP: each
     * replica group then has its own EGRESS_IP and its own quota. Unset: the system's choice.
     */
    ALLIO_SOURCE_ADDRESS: z.string().ip('must be an IP address of this host').optional(),
    /** Requests ALLIO accepts in any rolling second from one source IP. */
    ALLIO_RATE_PER_SECOND: int(1, 1000).default(2),
    /**
     * Added to ALLIO's one-second window, counted from each answer (architecture.md, "Rate
     * limiting"): room for ALLIO's clock running a little faster than Redis's. The window already
     * starts at the answer, after ALLIO stamped the request, so network delays need no margin.
     */
    ALLIO_RATE_SAFETY_MS: int(0, 1000).default(25),
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
  })
  .merge(outboundEnv);

/** UTC time of day, HH:MM. */
const timeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (UTC)');

/**
 * The daily purge of finished work rows (services/core/retention/): run once a day across all
 * replicas of the worker services, in small batches with a pause between them.
 */
export const retentionEnv = z.object({
  RETENTION_ENABLED: bool.default('true'),
  /** Days done rows (webhooks processed, tasks synced, events published, dead letters replayed) are kept. */
  RETENTION_DAYS: int(1, 3650).default(30),
  /** Days failed rows and dead letters nobody replayed are kept: long enough to investigate and replay. */
  RETENTION_FAILED_DAYS: int(1, 3650).default(90),
  /** Per-table days for done rows, `table=days,table=days` (e.g. `allio_webhook=7`). */
  RETENTION_TABLE_DAYS: z
    .string()
    .default('')
    .transform((v, c) => {
      const parsed = parseTableDays(v);
      if (parsed.ok) return parsed.value;
      for (const p of parsed.problems) c.addIssue({ code: z.ZodIssueCode.custom, message: p });
      return z.NEVER;
    }),
  /** UTC time of day (HH:MM) after which the day's purge runs; after the 03:00 deletion sweep. */
  RETENTION_TIME: timeOfDay.default('04:00'),
  /**
   * Rows per DELETE. A 1,000-row batch took 32 ms (median; p95 44 ms) on a 100,000-row allio_tasks
   * on a loaded 2-core machine, holding only those rows' locks, so the hot path never waits long
   * behind one; with the 200 ms pause a million old rows go in about four minutes.
   */
  RETENTION_BATCH_SIZE: int(1, 50_000).default(1_000),
  /** Pause between two batches, leaving the disk and the WAL to the hot path. */
  RETENTION_BATCH_PAUSE_MS: int(0, 60_000).default(200),
});

/** The dead-letter keeper (services/core/dead-letters/) of the services that own a dead-letter queue. */
export const deadLetterEnv = z.object({
  /**
   * Move dead-lettered messages from RabbitMQ into the dead_letters table, where `hub dead-letters`
   * lists, shows, replays and purges them. false leaves them in their queues (another tool drains them).
   */
  DEAD_LETTERS_KEEP: bool.default('true'),
  /**
   * Largest dead-letter body stored whole, in bytes. A larger one is stored with its reason,
   * headers, size and its first this-many bytes for inspection, and is never replayed. RabbitMQ
   * accepts messages of up to 128 MiB, and the hub's own consumers dead-letter whatever they refuse
   * (a partner reply over 16 KiB, a status event over 16 KiB): without a bound a broken or hostile
   * publisher fills the database. The hub's messages are a few KiB; 256 KiB keeps every one whole.
   */
  DEAD_LETTER_MAX_BODY_BYTES: int(1024, 128 * 1024 * 1024).default(256 * 1024),
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
export function loadConfig<
  S extends z.ZodObject<z.ZodRawShape> | z.ZodEffects<z.ZodObject<z.ZodRawShape>>,
>(schema: S, env: Record<string, string | undefined> = process.env): z.infer<S> {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && v.trim() !== '') cleaned[k] = v.trim();
  }
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`),
  );
}

export type BaseConfig = z.infer<typeof baseEnv>;
export type DatabaseConfig = z.infer<typeof databaseEnv>;
export type RedisConfig = z.infer<typeof redisEnv>;
export type AllioConfig = z.infer<typeof allioEnv>;
export type HttpServerConfig = z.infer<typeof httpServerEnv>;
export type OutboundConfig = z.infer<typeof outboundEnv>;
export type RetentionConfig = z.infer<typeof retentionEnv>;
