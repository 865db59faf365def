// LISTEN/NOTIFY wake-ups: one dedicated connection per process listens on `hub_work` and wakes the
// reconcilers of the table named in the payload. If the connection drops it reconnects with
// backoff; the reconcilers' polling covers the gap. LISTEN needs a session of its own, so the
// connection goes to DATABASE_SESSION_URL when set (PostgreSQL itself, past a PgBouncer in
// transaction mode).
import pg from 'pg';
import { sessionDatabaseUrl, type DatabaseConfig } from '../config.js';
import { describeError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { settledOrAborted, sleep } from '../sleep.js';
import { retryDelayMs } from './backoff.js';

export const WORK_CHANNEL = 'hub_work';

export class WorkListener {
  private client: pg.Client | undefined;
  private readonly handlers = new Map<string, Set<() => void>>();
  private readonly stopController = new AbortController();
  private running: Promise<void> | undefined;
  private connectedOnce: Promise<void>;
  private resolveConnected!: () => void;

  constructor(
    private readonly connectionString: string,
    private readonly schema: string,
    private readonly logger: Logger,
  ) {
    this.connectedOnce = new Promise((r) => (this.resolveConnected = r));
  }

  /** The listener of a service: on the session URL, in the service's schema. */
  static fromConfig(
    config: Pick<DatabaseConfig, 'DATABASE_URL' | 'DATABASE_SESSION_URL' | 'DATABASE_SCHEMA'>,
    logger: Logger,
  ): WorkListener {
    return new WorkListener(sessionDatabaseUrl(config), config.DATABASE_SCHEMA, logger);
  }

  /** Calls `handler` whenever rows are inserted into `table` (in this listener's schema). */
  on(table: string, handler: () => void): void {
    const key = `${this.schema}.${table}`;
    let set = this.handlers.get(key);
    if (!set) this.handlers.set(key, (set = new Set()));
    set.add(handler);
  }

  /**
   * Starts listening; resolves once the first LISTEN is in place, or after `waitMs` if the database
   * is not reachable yet (listening goes on in the background; polling covers the gap).
   */
  async start(waitMs = 5_000): Promise<void> {
    this.running ??= this.run();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.connectedOnce,
      this.running,
      new Promise((r) => (timer = setTimeout(r, waitMs))),
    ]);
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    this.stopController.abort();
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
    await this.running;
  }

  private async run(): Promise<void> {
    const stop = this.stopController.signal;
    let failures = 0;
    let interrupted = false;
    while (!stop.aborted) {
      const client = new pg.Client({
        connectionString: this.connectionString,
        application_name: 'hub-listener',
      });
      const ended = new Promise<void>((resolve) => {
        client.once('end', resolve);
        client.on('error', (err) => {
          // An expected outage: its reason, not a stack trace.
          this.logger.warn(
            { reason: describeError(err) },
            'listener connection lost; polling covers the gap',
          );
          interrupted = true;
          resolve();
        });
      });
      try {
        await client.connect();
        client.on('notification', (msg) => {
          for (const h of this.handlers.get(msg.payload ?? '') ?? []) h();
        });
        await client.query(`listen ${WORK_CHANNEL}`);
        this.client = client;
        if (interrupted || failures > 0) this.logger.info('listener connected again');
        interrupted = false;
        failures = 0;
        this.resolveConnected();
        // Wake everyone once: rows may have arrived while we were not listening.
        for (const set of this.handlers.values()) for (const h of set) h();
        await settledOrAborted(ended, stop);
      } catch (thrown) {
        failures++;
        // One line per outage (the lost connection's, or this first failure's), not one per attempt.
        const first = !interrupted;
        interrupted = true;
        const line = { reason: describeError(toError(thrown)), attempts: failures };
        if (first) this.logger.warn(line, 'listener could not connect; polling covers the gap');
        else this.logger.debug(line, 'listener still cannot connect');
      } finally {
        await client.end().catch(() => undefined);
      }
      if (!stop.aborted) {
        await sleep(retryDelayMs(failures + 1, { baseMs: 500, maxMs: 30_000, factor: 2 }), stop);
      }
    }
  }
}
