// Process life cycle shared by every entry point: configuration errors end start-up with a clear
// message, SIGTERM/SIGINT run the shutdown steps in order, and a second signal forces the exit.
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { ConfigError, type BaseConfig, type DatabaseConfig, type RedisConfig } from './config.js';
import { describeError, toError } from './errors.js';
import { createDb, pingDb, pooledSearchPathProblem, type Db } from './db.js';
import { sleep } from './sleep.js';
import { createLogger, logsWritten, redactUrlPassword, type Logger } from './logger.js';
import { collectProcessMetrics, createMetrics, type Metrics } from './metrics.js';
import { createRedis, watchRedis } from './redis.js';

type Shutdown = () => Promise<void>;

/** One step of a shutdown, run in order; `waitsFor` names what it may wait for (said at SIGTERM). */
interface ShutdownStep {
  waitsFor?: string;
  run: () => Promise<unknown> | unknown;
}

/** A step still running after this long is named in a log line, once. */
const SLOW_STEP_MS = 3_000;

/** Runs the steps in order; a slow one is named once, so a long shutdown is never silent. */
async function runSteps(steps: ShutdownStep[], logger: Logger): Promise<void> {
  for (const step of steps) {
    const slow = setTimeout(
      () => logger.info({ waitingFor: step.waitsFor }, 'shutdown still waiting'),
      SLOW_STEP_MS,
    );
    slow.unref();
    try {
      await step.run();
    } finally {
      clearTimeout(slow);
    }
  }
}

/** The replica's name in leases: the pod name in Kubernetes (HOSTNAME), else host and pid. */
export function instanceId(configured?: string): string {
  return configured ?? `${hostname()}-${process.pid}`;
}

/**
 * What every service process starts with: its logger, its metrics registry, its database pool,
 * and PostgreSQL answering (see requireDatabase), through a pooler with the schema set on the
 * server's side (see pooledSearchPathProblem).
 */
export async function processBasics(
  name: string,
  config: BaseConfig & DatabaseConfig,
): Promise<{ logger: Logger; metrics: Metrics; db: Db }> {
  const logger = createLogger({ level: config.LOG_LEVEL, name });
  const metrics = createMetrics();
  collectProcessMetrics(metrics.registry);
  const db = createDb(config, { applicationName: `hub-${name}`, logger });
  await requireDatabase(db, config.DATABASE_URL);
  const searchPath = await pooledSearchPathProblem(config);
  if (searchPath) {
    await db.destroy().catch(() => undefined);
    throw new StartupDependencyError(searchPath);
  }
  return { logger, metrics, db };
}

/**
 * How long start-up retries an unreachable PostgreSQL before it gives up: long enough for a
 * database restart or failover under way (seconds), short enough that a wrong DATABASE_URL is told
 * at once; Kubernetes restarts the pod with its own backoff after that.
 */
const DATABASE_START_WAIT_MS = 5_000;

/** A dependency the process cannot start without: its message is the one line printed at exit. */
export class StartupDependencyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupDependencyError';
  }
}

/**
 * Every service needs PostgreSQL (its work is rows): start-up checks it answers and otherwise ends
 * with one line naming DATABASE_URL, instead of a bare ECONNREFUSED later or a process that runs
 * without doing anything.
 */
async function requireDatabase(
  db: Db,
  url: string,
  waitMs = DATABASE_START_WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await pingDb(db);
      return;
    } catch (thrown) {
      const err = toError(thrown);
      if (Date.now() >= deadline) {
        await db.destroy().catch(() => undefined);
        throw new StartupDependencyError(
          `PostgreSQL at ${redactDatabaseUrl(url)} (DATABASE_URL) does not answer: ${describeError(err)}. ` +
            'Start PostgreSQL, or set DATABASE_URL to a server that runs (host, port, user, password, database), then start again.',
          { cause: err },
        );
      }
      await sleep(500);
    }
  }
}

/** The URL without its password, for messages. */
function redactDatabaseUrl(url: string): string {
  return redactUrlPassword(url, 'DATABASE_URL');
}

/**
 * A Redis connection whose connection errors feed the process's one Redis state line (see
 * watchRedis), instead of being thrown at the process or logged per reconnect attempt.
 */
export function connectRedis(
  config: RedisConfig,
  logger: Logger,
  o: { subscriber?: boolean } = {},
): Redis {
  const redis = createRedis(config, o);
  watchRedis(redis, logger);
  return redis;
}

/** How long a signal during start-up waits for start-up to finish before the process just exits. */
const STARTUP_SIGNAL_GRACE_MS = 10_000;

/**
 * Runs `start`, which returns the shutdown steps. Exits 1 with the configuration problems listed
 * when start-up fails on configuration, and 1 with the error logged on any other start-up failure.
 */
export async function runService(
  name: string,
  start: () => Promise<{
    logger: Logger;
    shutdown: Shutdown | ShutdownStep[];
    shutdownTimeoutMs: number;
  }>,
): Promise<void> {
  // A signal during start-up (a rollout or scale-down right after the pod came up; the HTTP server
  // may already answer) is held and acted on once start-up is over, instead of killing the process
  // half-started with Node's default action.
  let early: NodeJS.Signals | undefined;
  const holdSignal = (signal: NodeJS.Signals) => {
    if (early) {
      process.stderr.write(`${name}: second ${signal} during start-up: exiting now\n`);
      process.exit(1);
    }
    early = signal;
    process.stderr.write(`${name}: ${signal} during start-up: stopping once start-up is over\n`);
    // Start-up waiting on a server that is away (it waits with a line per state) has nothing to
    // hand back yet: give it a few seconds, then leave.
    startupGrace = setTimeout(() => {
      process.stderr.write(
        `${name}: start-up did not finish within ${STARTUP_SIGNAL_GRACE_MS / 1000} s of ${signal}: exiting\n`,
      );
      process.exit(0);
    }, STARTUP_SIGNAL_GRACE_MS);
  };
  let startupGrace: NodeJS.Timeout | undefined;
  // One listener for the life of the process, which hands the signal to the handler of the moment.
  // Swapping listeners would lose a signal: removing Node's last listener closes the signal handle,
  // and a signal already caught but not yet dispatched (start-up ending in a synchronous stretch) is
  // dropped with it; the process would then run on, deaf to that SIGTERM.
  let handle: (signal: NodeJS.Signals) => void = holdSignal;
  const listener = (signal: NodeJS.Signals) => handle(signal);
  process.on('SIGTERM', listener);
  process.on('SIGINT', listener);
  let started: Awaited<ReturnType<typeof start>>;
  try {
    started = await start();
  } catch (thrown) {
    const err = toError(thrown);
    if (err instanceof ConfigError || err instanceof StartupDependencyError) {
      process.stderr.write(`${name}: ${err.message}\n`);
    } else process.stderr.write(`${name}: start-up failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  }
  const { logger, shutdown, shutdownTimeoutMs } = started;
  // The last lines ("stopped", or why not) are written, in order, before the process ends.
  const exit = (code: number) => void logsWritten(logger).then(() => process.exit(code));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    stopping = true;
    const steps = Array.isArray(shutdown) ? shutdown : undefined;
    const waits = steps?.flatMap((s) => (s.waitsFor ? [s.waitsFor] : [])) ?? [];
    logger.info(
      { signal },
      waits.length > 0 ? `shutting down; waiting for ${waits.join(', then ')}` : 'shutting down',
    );
    // Leave room past the in-flight budget for closing pools; then give up and exit.
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      exit(1);
    }, shutdownTimeoutMs + 10_000);
    force.unref();
    (steps ? runSteps(steps, logger) : (shutdown as Shutdown)()).then(
      () => {
        logger.info('stopped');
        exit(0);
      },
      (e: unknown) => {
        logger.error({ err: toError(e) }, 'shutdown failed');
        exit(1);
      },
    );
  };
  clearTimeout(startupGrace);
  handle = onSignal;
  if (early) onSignal(early);
}
