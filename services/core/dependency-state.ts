// One log line per change of a dependency's state: when it stops answering, when it answers again,
// and a reminder while it stays down, however many calls fail in between (a busy api fails several
// Redis calls a second while Redis is down; each used to log its own warning).
import type { Logger } from './logger.js';

/**
 * While a dependency stays down, how often its outage is logged again. Once a minute keeps an
 * outage visible in a log tail without burying the lines around it.
 */
export const OUTAGE_REMINDER_MS = 60_000;

interface DependencyStateOptions {
  /** Said in every line, e.g. "redis" or "rabbitmq". */
  name: string;
  /** Fields on every line (e.g. the server's address without secrets). */
  fields?: Record<string, unknown>;
  /** What the outage means for this process, said in its first line (e.g. "commands are refused"). */
  effect?: string;
  reminderMs?: number;
  now?: () => number;
}

export class DependencyState {
  private downSince: number | undefined;
  private lastLoggedAt = 0;
  private failures = 0;
  private readonly reminderMs: number;
  private readonly now: () => number;

  constructor(
    private readonly logger: Logger,
    private readonly o: DependencyStateOptions,
  ) {
    this.reminderMs = o.reminderMs ?? OUTAGE_REMINDER_MS;
    this.now = o.now ?? Date.now;
  }

  get isDown(): boolean {
    return this.downSince !== undefined;
  }

  /**
   * A failed call or connection attempt. The first failure logs one warning (the reason, no stack:
   * a refused connection is not a bug in this process); later ones only count, with a reminder
   * every `reminderMs` while the dependency stays down.
   */
  down(reason: string, fields: Record<string, unknown> = {}): void {
    const now = this.now();
    this.failures++;
    if (this.downSince === undefined) {
      this.downSince = now;
      this.lastLoggedAt = now;
      const effect = this.o.effect ? `; ${this.o.effect}` : '';
      this.logger.warn(
        { ...this.o.fields, ...fields, reason },
        `${this.o.name} unavailable${effect}`,
      );
      return;
    }
    if (now - this.lastLoggedAt < this.reminderMs) return;
    this.lastLoggedAt = now;
    this.logger.warn(
      {
        ...this.o.fields,
        ...fields,
        reason,
        downForS: Math.round((now - this.downSince) / 1000),
        failures: this.failures,
      },
      `${this.o.name} still unavailable`,
    );
  }

  /** A call or connection succeeded: logs the recovery once if the dependency was down. */
  up(fields: Record<string, unknown> = {}): void {
    if (this.downSince === undefined) return;
    const downForS = Math.round((this.now() - this.downSince) / 1000);
    this.logger.info(
      { ...this.o.fields, ...fields, downForS, failures: this.failures },
      `${this.o.name} available again`,
    );
    this.downSince = undefined;
    this.failures = 0;
  }
}
