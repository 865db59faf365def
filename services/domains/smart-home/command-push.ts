// Pushing an ended open command to its tenant: the outcome goes into smart-home-cache with the
// tenant's `command.result` event, then PostgreSQL notes it pushed. Whatever fails in between
// (Redis down, the process killed) leaves the push due, and an api replica's sweep pushes it again.
import { toError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { CommandCache } from './command-cache.js';
import type { CommandRecord } from './command-state.js';
import type { CommandStore } from './command-store.js';
import type { SmartHomeMetrics } from './metrics.js';

export class CommandPush {
  constructor(
    private readonly d: {
      store: CommandStore;
      cache: CommandCache;
      logger: Logger;
      metrics: SmartHomeMetrics;
    },
  ) {}

  /** Pushes each result; never throws (the outcome is committed; a failed push stays due). */
  async push(ended: CommandRecord[]): Promise<void> {
    const pushed: string[] = [];
    for (const c of ended) {
      try {
        const published = await this.d.cache.publishResult(c);
        this.d.metrics.resultPushes.inc({ result: published ? 'published' : 'repeated' });
        pushed.push(c.commandId);
      } catch (thrown) {
        this.d.metrics.resultPushes.inc({ result: 'failed' });
        // Redis is down or failing: the rest would fail alike, and the sweep retries them all.
        this.d.logger.warn(
          {
            err: toError(thrown),
            commandId: c.commandId,
            correlationId: c.commandId,
            left: ended.length - pushed.length,
          },
          'command result not pushed; the sweep pushes it again',
        );
        break;
      }
    }
    try {
      await this.d.store.markPushed(pushed);
    } catch (thrown) {
      this.d.logger.warn(
        { err: toError(thrown), commands: pushed.length },
        'pushed command results not noted; they may be pushed twice',
      );
    }
  }
}
