// Configuration of the kitchen part of the api service: warehouse webhook secrets and tolerance.
import { z } from 'zod';
import { secretKey } from '../../contracts/standard-webhooks.js';

export const kitchenApiEnv = z.object({
  /** Space- or comma-separated `whsec_…` secrets; more than one while the warehouse rotates keys. */
  KITCHEN_WAREHOUSE_WEBHOOK_SECRETS: z
    .string({ required_error: 'is required (whsec_… secrets of the warehouse webhooks)' })
    .transform((v) => v.split(/[\s,]+/).filter(Boolean))
    .refine(
      (list) =>
        list.length > 0 &&
        list.every((s) => {
          try {
            secretKey(s);
            return true;
          } catch {
            return false;
          }
        }),
      'must be whsec_ secrets of at least 16 base64-encoded bytes',
    ),
  /** How far a webhook-timestamp may be from our clock (Standard Webhooks suggests 5 minutes). */
  KITCHEN_WAREHOUSE_TOLERANCE_S: z.coerce.number().int().min(10).max(3600).default(300),
});
export type KitchenApiConfig = z.infer<typeof kitchenApiEnv>;

/** Whether this api replica serves the kitchen (its variables are required only then). */
export const kitchenApiSwitch = z.object({
  KITCHEN_API: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
});
