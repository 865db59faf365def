// Tenant REST for the smart home (`/v1/smart-home/...`): subscriptions and their connect and
// disconnect requests, opening the door or the barrier, and reading a command's result.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Knex } from 'knex';
import { z } from 'zod';
import type { Authenticator } from '../../core/auth/tenant-jwt.js';
import { toError } from '../../core/errors.js';
import type { FieldCipher } from '../../core/field-cipher.js';
import { ApiError, unavailable } from '../../core/http.js';
import { parseOrThrow } from '../../core/validation-errors.js';
import type { TenantEvent } from '../../contracts/tenant-events.js';
import type { TenantEventPublisher } from '../../core/tenant-events.js';
import {
  decideTenantAction,
  SERVICES,
  type FailureCode,
  type RequestKind,
} from '../../domains/smart-home/domain.js';
import { personalDataSchema } from '../../contracts/smart-home-messages.js';
import {
  listSubscriptions,
  pushSubscriptionChange,
  requestChange,
  SUBSCRIPTIONS,
  type SubscriptionRow,
} from '../../domains/smart-home/requests.js';
import { guardRoutes, tenantOf } from '../../core/auth/rbac.js';
import type { OpenCommands } from './open-commands.js';
import { needs, SMART_HOME_PERMISSIONS } from './permissions.js';

interface SmartHomeRouteDeps {
  db: Knex;
  authenticator: Authenticator;
  cipher: FieldCipher;
  events: TenantEventPublisher<TenantEvent>;
  commands: OpenCommands;
}

const serviceParams = z.object({
  service: z.enum(SERVICES, { errorMap: () => ({ message: 'must be intercom or barrier' }) }),
});
const commandParams = z.object({ commandId: z.string().uuid('must be a command id (UUID)') });
const connectBody = z
  .object({
    personalData: personalDataSchema,
    /** Consent to face recognition by the partner; only the intercom uses biometrics. */
    biometricsConsent: z.boolean().default(false),
  })
  .strict();
const idempotencyKey = z
  .string()
  .min(8)
  .max(200)
  .regex(/^[A-Za-z0-9._:-]+$/, 'must be 8–200 letters, digits or . _ : -')
  .optional();

/** Parses with `schema` or answers 422 with each field's problem (at most twenty, each short). */
function valid<S extends z.ZodTypeAny>(schema: S, value: unknown, what: string): z.output<S> {
  return parseOrThrow(schema, value, {
    code: 'invalid_body',
    message: `The ${what} is not valid.`,
  });
}

function service(req: FastifyRequest) {
  const p = serviceParams.safeParse(req.params);
  if (!p.success) {
    throw new ApiError(404, 'unknown_service', 'Smart-home services are "intercom" and "barrier".');
  }
  return p.data.service;
}

const SMART_HOME_PREFIX = '/v1/smart-home/';

/**
 * A command from smart-home-cache or, failing that, PostgreSQL; a 503 (not a 500) only when
 * neither can answer.
 */
async function readCommand(
  commands: OpenCommands,
  commandId: string,
  tenantId: string,
  req: FastifyRequest,
) {
  try {
    return await commands.get(commandId, tenantId);
  } catch (thrown) {
    req.log.error({ err: toError(thrown), commandId }, 'command not readable');
    throw unavailable(
      'commands_unavailable',
      'Command results cannot be read right now; try again in a moment.',
    );
  }
}

const REFUSAL_STATUS: Record<string, number> = { no_partner: 503, idempotency_key_reused: 422 };

export function registerSmartHomeRoutes(app: FastifyInstance, d: SmartHomeRouteDeps): void {
  guardRoutes(app, {
    prefix: SMART_HOME_PREFIX,
    table: SMART_HOME_PERMISSIONS,
    db: d.db,
    authenticator: d.authenticator,
  });

  app.get('/v1/smart-home/subscriptions', needs('subscriptions:read'), async (req) => ({
    subscriptions: await listSubscriptions(d.db, tenantOf(req)),
  }));

  const change =
    (kind: RequestKind) => async (req: FastifyRequest, reply: import('fastify').FastifyReply) => {
      const tenantId = tenantOf(req);
      const svc = service(req);
      const body =
        kind === 'connect' ? valid(connectBody, req.body, 'connection request') : undefined;
      if (body?.biometricsConsent && svc !== 'intercom') {
        throw new ApiError(
          422,
          'invalid_body',
          'Biometrics are used only by the intercom; send biometricsConsent: false for the barrier.',
        );
      }
      const key = valid(idempotencyKey, req.headers['idempotency-key'], 'Idempotency-Key header');
      const result = await requestChange(d.db, d.cipher, {
        tenantId,
        service: svc,
        kind,
        personalData: body?.personalData,
        biometricsConsent: body?.biometricsConsent,
        idempotencyKey: key,
      });
      if (!result.ok) {
        throw new ApiError(
          REFUSAL_STATUS[result.refusal.code] ?? 409,
          result.refusal.code,
          result.refusal.message,
        );
      }
      req.log.info(
        {
          tenantId,
          service: svc,
          kind,
          requestId: result.request.id,
          correlationId: result.request.id,
          replayed: !result.created,
        },
        'smart-home request accepted',
      );
      if (result.created) {
        await pushSubscriptionChange(d.events, req.log, tenantId, result.subscription);
      }
      return reply.status(202).send({ request: result.request, subscription: result.subscription });
    };
  app.post(
    '/v1/smart-home/subscriptions/:service/connect',
    needs('subscriptions:change'),
    change('connect'),
  );
  app.post(
    '/v1/smart-home/subscriptions/:service/disconnect',
    needs('subscriptions:change'),
    change('disconnect'),
  );

  app.post(
    '/v1/smart-home/subscriptions/:service/open',
    needs('devices:open'),
    async (req, reply) => {
      const tenantId = tenantOf(req);
      const svc = service(req);
      const sub = await d
        .db(`${SUBSCRIPTIONS} as s`)
        .join('smart_home_partners as p', 'p.id', 's.partner_id')
        .where({ 's.tenant_id': tenantId, 's.service': svc })
        .first<(SubscriptionRow & { partner: string; command_queue: string }) | undefined>(
          's.*',
          'p.name as partner',
          'p.command_queue',
        );
      const decision = decideTenantAction(sub?.state, 'open');
      if (!decision.allowed) {
        throw new ApiError(409, decision.refusal.code, decision.refusal.message);
      }
      if (!sub) throw new Error('unreachable: an allowed open has a subscription');
      let opened: { commandId: string; expiresAt: Date };
      try {
        opened = await d.commands.open({
          service: svc,
          tenantId,
          partnerRef: sub.partner_ref,
          partner: sub.partner,
          commandQueue: sub.command_queue,
        });
      } catch (thrown) {
        req.log.error({ err: toError(thrown), service: svc }, 'open command not sent');
        throw unavailable(
          'command_not_sent',
          'The command could not be handed to the partner; try again in a moment.',
        );
      }
      req.log.info(
        { tenantId, service: svc, commandId: opened.commandId, correlationId: opened.commandId },
        'open command sent',
      );
      return reply.status(202).send({
        commandId: opened.commandId,
        status: 'pending',
        expiresAt: opened.expiresAt.toISOString(),
      });
    },
  );

  app.get('/v1/smart-home/commands/:commandId', needs('commands:read'), async (req) => {
    const tenantId = tenantOf(req);
    const p = commandParams.safeParse(req.params);
    const record = p.success
      ? await readCommand(d.commands, p.data.commandId, tenantId, req)
      : undefined;
    if (!record) {
      throw new ApiError(
        404,
        'command_not_found',
        'No such command for this tenant (results are kept for a limited time).',
      );
    }
    return {
      commandId: record.commandId,
      service: record.service,
      status: record.status,
      // The partner's reason stays in the database and the cache for operators; tenants get the code.
      ...(record.status === 'failed'
        ? { failureCode: 'partner_refused' satisfies FailureCode }
        : {}),
      createdAt: record.createdAt.toISOString(),
      ...(record.completedAt ? { completedAt: record.completedAt.toISOString() } : {}),
    };
  });
}
