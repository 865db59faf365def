// The SmartHomePartner resource: a smart-home partner, the services it runs, its queue and its
// OAuth client. `hub apply -f` reads it; the custom resource of the same kind carries it.
import { z } from 'zod';
import { resourceSchema } from '../core/resource.js';
import { boundedArray } from '../core/validation.js';
import { SERVICES } from './smart-home-messages.js';

/** RabbitMQ queue names the hub accepts: letters, digits and . _ - (no amq. prefix, which is reserved). */
const queueName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._-]+$/, 'may contain only letters, digits, ".", "_" and "-"')
  .refine((q) => !q.startsWith('amq.'), 'must not start with "amq." (reserved by RabbitMQ)');

export const smartHomePartnerSpec = z
  .object({
    services: boundedArray(z.enum(SERVICES), {
      min: 1,
      tooFew: 'must name at least one service (intercom, barrier)',
      max: SERVICES.length,
      tooMany: `must name each service at most once (${SERVICES.join(', ')})`,
    }).refine((s) => new Set(s).size === s.length, 'must not repeat a service'),
    /** The partner's command queue; defaults to `partner.<name>.commands`. */
    commandQueue: queueName.optional(),
    /** The partner's client id at the authorization server; defaults to the resource name. */
    oauthClientId: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[A-Za-z0-9._:-]+$/)
      .optional(),
    active: z.boolean().default(true),
  })
  .strict();

export const smartHomePartnerResource = resourceSchema('SmartHomePartner', smartHomePartnerSpec);

export type SmartHomePartnerResource = z.infer<typeof smartHomePartnerResource>;

export const defaultCommandQueue = (name: string): string => `partner.${name}.commands`;
