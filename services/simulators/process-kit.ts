// What a simulator run as its own process needs around its work, built on the npm packages alone
// (a simulator stands where a partner's program does, and uses nothing of the hub): configuration
// read from the environment and validated with zod, a JSON logger with secrets redacted, a RabbitMQ
// connection that logs its changes of state, and a life cycle where SIGTERM or SIGINT stops the
// work and exits 0.
import amqp, { type AmqpConnectionManager } from 'amqp-connection-manager';
import { destination, pino, stdSerializers, type Logger } from 'pino';
import { z } from 'zod';

export type { Logger };

export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : `Non-error thrown: ${String(thrown)}`);
}

/** Bad or missing variables: start-up ends with one line per problem, each naming its variable. */
export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n  - ${issues.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** A URL whose scheme is one of `protocols`. */
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

/**
 * Parses the environment with `schema`; on failure throws a ConfigError naming each variable.
 * Empty or blank values count as unset, so that `FOO=` behaves like a missing variable.
 */
export function loadConfig<S extends z.ZodObject<z.ZodRawShape>>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.infer<S> {
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

/** Paths whose values never reach a log line. */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.apiToken',
  '*.api_token',
  '*.password',
  '*.token',
  '*.secret',
  'apiToken',
  'api_token',
  'password',
  'token',
];

/**
 * The process logger: JSON lines on stdout, written synchronously, so the last lines before an
 * exit ("stopped", or why not) are never lost or reordered; a simulator logs little.
 */
export function createLogger(options: { level: string; name: string }): Logger {
  return pino(
    {
      level: options.level,
      name: options.name,
      base: { service: options.name },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: stdSerializers.err },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination({ dest: 1, sync: true }),
  );
}

/** The URL without its password, for logs. */
function redactPassword(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable AMQP URL)';
  }
}

/** The reconnect delay, also said in the log lines. */
const RECONNECT_S = 2;
/** While the broker stays away, how often that is logged again. */
const OUTAGE_REMINDER_MS = 60_000;

/**
 * A reconnecting RabbitMQ connection that logs one line per change of state (connected, lost, back,
 * a reminder while down) with the reason and no stack: a broker that is away is not a bug here.
 */
export function connectAmqp(
  amqpUrl: string,
  logger: Logger,
  o: { name: string },
): AmqpConnectionManager {
  const conn = amqp.connect([amqpUrl], {
    heartbeatIntervalInSeconds: 10,
    reconnectTimeInSeconds: RECONNECT_S,
    // Without Nagle's algorithm small frames go at once instead of waiting for an ACK.
    connectionOptions: { noDelay: true, clientProperties: { connection_name: o.name } },
  });
  const broker = redactPassword(amqpUrl);
  let connectedOnce = false;
  let down: { since: number; loggedAt: number; failures: number } | undefined;
  const lost = (reason: string, event: string) => {
    const now = Date.now();
    if (!down) {
      down = { since: now, loggedAt: now, failures: 1 };
      logger.warn(
        { broker, event, reason },
        `rabbitmq unavailable; reconnecting every ${RECONNECT_S} s (check the broker and AMQP_URL)`,
      );
      return;
    }
    down.failures++;
    if (now - down.loggedAt < OUTAGE_REMINDER_MS) return;
    down.loggedAt = now;
    logger.warn(
      {
        broker,
        event,
        reason,
        downForS: Math.round((now - down.since) / 1000),
        failures: down.failures,
      },
      'rabbitmq still unavailable',
    );
  };
  conn.on('connect', () => {
    if (!connectedOnce) logger.info({ broker }, 'rabbitmq connected');
    connectedOnce = true;
    if (down) {
      logger.info(
        { broker, downForS: Math.round((Date.now() - down.since) / 1000), failures: down.failures },
        'rabbitmq available again',
      );
    }
    down = undefined;
  });
  conn.on('disconnect', ({ err }) => lost(toError(err).message, 'disconnected'));
  conn.on('connectFailed', ({ err }) => lost(toError(err).message, 'connect_failed'));
  conn.on('blocked', ({ reason }) =>
    logger.warn({ reason }, 'rabbitmq blocked publishing (resource alarm)'),
  );
  conn.on('unblocked', () => logger.info('rabbitmq unblocked publishing'));
  return conn;
}

/** How long a signal during start-up waits for start-up to finish before the process just exits. */
const STARTUP_SIGNAL_GRACE_MS = 10_000;

/**
 * Runs `start`, which returns how to stop. A configuration problem ends start-up with exit 1 and
 * its message; any other start-up failure with exit 1 and its stack. SIGTERM or SIGINT runs the
 * shutdown and exits 0 (1 if it fails or outlasts its budget); a second signal exits 1 at once. A
 * signal during start-up is acted on once start-up is over.
 */
export async function runProcess(
  name: string,
  start: () => Promise<{
    logger: Logger;
    shutdown: () => Promise<void>;
    shutdownTimeoutMs: number;
  }>,
): Promise<void> {
  let early: NodeJS.Signals | undefined;
  let startupGrace: NodeJS.Timeout | undefined;
  const holdSignal = (signal: NodeJS.Signals) => {
    if (early) {
      process.stderr.write(`${name}: second ${signal} during start-up: exiting now\n`);
      process.exit(1);
    }
    early = signal;
    process.stderr.write(`${name}: ${signal} during start-up: stopping once start-up is over\n`);
    startupGrace = setTimeout(() => {
      process.stderr.write(
        `${name}: start-up did not finish within ${STARTUP_SIGNAL_GRACE_MS / 1000} s of ${signal}: exiting\n`,
      );
      process.exit(0);
    }, STARTUP_SIGNAL_GRACE_MS);
  };
  // One listener for the life of the process, handing the signal to the handler of the moment:
  // swapping listeners could drop a signal caught but not yet dispatched.
  let handle: (signal: NodeJS.Signals) => void = holdSignal;
  const listener = (signal: NodeJS.Signals) => handle(signal);
  process.on('SIGTERM', listener);
  process.on('SIGINT', listener);
  let started: Awaited<ReturnType<typeof start>>;
  try {
    started = await start();
  } catch (thrown) {
    const err = toError(thrown);
    if (err instanceof ConfigError) process.stderr.write(`${name}: ${err.message}\n`);
    else process.stderr.write(`${name}: start-up failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  }
  const { logger, shutdown, shutdownTimeoutMs } = started;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, shutdownTimeoutMs + 10_000);
    force.unref();
    shutdown().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (e: unknown) => {
        logger.error({ err: toError(e) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  clearTimeout(startupGrace);
  handle = onSignal;
  if (early) onSignal(early);
}
