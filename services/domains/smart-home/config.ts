// Smart-home settings shared by the api (open commands) and the mq-bridge (subscription requests),
// and the mq-bridge service's whole configuration.
import { z } from 'zod';
import {
  amqpEnv,
  baseEnv,
  databaseEnv,
  deadLetterEnv,
  installationEnv,
  redisEnv,
  retentionEnv,
} from '../../core/config.js';
import { encryptionKeysEnv } from '../../core/field-cipher.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const smartHomeEnv = installationEnv.extend({
  /**
   * How long the bridge waits for a partner's reply to a connect/disconnect before sending it
   * again; the wait doubles with every attempt (30 s, 60 s, 2 min, 4 min: about 7.5 min in all).
   */
  SMART_HOME_REPLY_TIMEOUT_MS: int(50, 3_600_000).default(30_000),
  /** Sends of one connect/disconnect before the request fails (visible to the tenant, replayable). */
  SMART_HOME_MAX_ATTEMPTS: int(1, 50).default(4),
  /** An open command not answered within this time is reported as `timeout`, and a later reply is ignored. */
  SMART_HOME_COMMAND_TTL_MS: int(100, 300_000).default(10_000),
  /** How long an open command's result stays readable over REST (for an app that was offline). */
  SMART_HOME_RESULT_RETENTION_MS: int(1_000, 86_400_000).default(15 * 60_000),
  /** Replies handled at once by one bridge process (the channel's prefetch). */
  SMART_HOME_REPLY_PREFETCH: int(1, 1000).default(50),
});
export type SmartHomeConfig = z.infer<typeof smartHomeEnv>;

/** How long an open command stays readable: the configured retention, and always past its deadline. */
export function commandRetentionMs(
  c: Pick<SmartHomeConfig, 'SMART_HOME_COMMAND_TTL_MS' | 'SMART_HOME_RESULT_RETENTION_MS'>,
): number {
  return Math.max(c.SMART_HOME_RESULT_RETENTION_MS, c.SMART_HOME_COMMAND_TTL_MS + 1_000);
}

export const mqBridgeEnv = baseEnv
  .merge(databaseEnv)
  .merge(redisEnv)
  .merge(amqpEnv)
  .merge(encryptionKeysEnv)
  .merge(smartHomeEnv)
  .merge(retentionEnv)
  .merge(deadLetterEnv);
