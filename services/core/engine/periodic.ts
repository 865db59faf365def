// Periodic work without a leader: every replica inserts the row for the current period with
// ON CONFLICT DO NOTHING, and a reconciler claims it like any other row, so each period runs once.
import type { Knex } from 'knex';
import { toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { sleep } from '../sleep.js';

export const PERIODIC_RUNS = 'periodic_runs';

export interface Period {
  key: string;
  dueAt: Date;
}

/** The UTC day containing `now`, due at `timeOfDay` (HH:MM, UTC) of that day. */
export function dailyPeriod(now: Date, timeOfDay: string): Period {
  const key = now.toISOString().slice(0, 10);
  return { key, dueAt: new Date(`${key}T${timeOfDay}:00.000Z`) };
}

/** Inserts the run row for a period unless it exists; true when this call created it. */
async function ensurePeriod(db: Knex, name: string, period: Period): Promise<boolean> {
  const { rows } = await db.raw<{ rows: unknown[] }>(
    `insert into ${PERIODIC_RUNS} (name, period_key, next_attempt_at) values (?, ?, ?)
     on conflict (name, period_key) do nothing returning id`,
    [name, period.key, period.dueAt],
  );
  return rows.length > 0;
}

export interface PeriodicJob {
  name: string;
  period(now: Date): Period;
}

/** Ticks every `intervalMs` and makes sure each job has its row for the current period. */
export class PeriodicScheduler {
  private readonly stopController = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Knex,
    private readonly jobs: readonly PeriodicJob[],
    private readonly logger: Logger,
    private readonly intervalMs = 60_000,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** One pass over the jobs; exposed so start-up and tests need not wait for a tick. */
  async tick(): Promise<void> {
    for (const job of this.jobs) {
      const period = job.period(this.now());
      try {
        if (await ensurePeriod(this.db, job.name, period)) {
          this.logger.info(
            { job: job.name, period: period.key, dueAt: period.dueAt },
            'periodic run scheduled',
          );
        }
      } catch (thrown) {
        this.logger.warn(
          { err: toError(thrown), job: job.name },
          'could not schedule periodic run; will try next tick',
        );
      }
    }
  }

  start(): void {
    this.running ??= (async () => {
      while (!this.stopController.signal.aborted) {
        await this.tick();
        await sleep(this.intervalMs, this.stopController.signal);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopController.abort();
    await this.running;
  }
}
