// Process life cycle shared by every entry point: configuration errors end start-up with a clear
// message, SIGTERM/SIGINT run the shutdown steps in order, and a second signal forces the exit.
import { hostname } from 'node:os';
import { ConfigError, toError } from './index.js';
import type { Logger } from './logger.js';

export type Shutdown = () => Promise<void>;

/** The replica's name in leases: the pod name in Kubernetes (HOSTNAME), else host and pid. */
export function instanceId(configured?: string): string {
  return configured ?? `${hostname()}-${process.pid}`;
}

/**
 * Runs `start`, which returns the shutdown steps. Exits 1 with the configuration problems listed
 * when start-up fails on configuration, and 1 with the error logged on any other start-up failure.
 */
export async function runService(
  name: string,
  start: () => Promise<{ logger: Logger; shutdown: Shutdown; shutdownTimeoutMs: number }>,
): Promise<void> {
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
    // Leave room past the in-flight budget for closing pools; then give up and exit.
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
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
