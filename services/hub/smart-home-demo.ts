// Smart-home demo of `npm start -- --simulators`: a partner simulator serving intercom and barrier,
// its SmartHomePartner row, and the tenant demo page at /demo/ that plays the mobile app (sign in
// as a demo tenant, connect, open, watch states change over the WebSocket).
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import { z } from 'zod';
import { ApiError } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { API_VERSION } from '../core/resource.js';
import { DEFAULT_SCOPE_SETTINGS, syncPartnerClient } from '../domains/partner-access/clients.js';
import { upsertPartner } from '../domains/smart-home/partners.js';
import { defaultCommandQueue, smartHomePartnerResource } from '../contracts/smart-home-partner.js';
import { PartnerSimulator } from '../simulators/smart-home/partner.js';
import type { TenantIdp } from '../simulators/tenant-idp/server.js';

const DEMO_PARTNER = 'demo-partner';

const signIn = z.object({
  tenant: z
    .string()
    .trim()
    .regex(/^[a-z0-9][a-z0-9-]{1,40}$/, 'must be 2–41 lower-case letters, digits or "-"'),
});

export async function startSmartHomeDemo(o: {
  db: Knex;
  amqpUrl: string;
  logger: Logger;
  replyDelayMs?: number;
}): Promise<{ stop(): Promise<void> }> {
  const resource = smartHomePartnerResource.parse({
    apiVersion: API_VERSION,
    kind: 'SmartHomePartner',
    metadata: { name: DEMO_PARTNER },
    spec: { services: ['intercom', 'barrier'] },
  });
  await upsertPartner(o.db, resource);
  // Its client at the development authorization server (`hub auth secret demo-partner` issues a
  // secret); the local broker itself accepts the simulator as guest.
  await syncPartnerClient(o.db, resource, DEFAULT_SCOPE_SETTINGS);
  const partner = new PartnerSimulator({
    amqpUrl: o.amqpUrl,
    partner: DEMO_PARTNER,
    commandQueue: defaultCommandQueue(DEMO_PARTNER),
    logger: o.logger,
    behaviour: { delayMs: o.replyDelayMs ?? 400 },
  });
  await partner.start();
  o.logger.info({ partner: DEMO_PARTNER }, 'demo: smart-home partner simulator consuming');
  return { stop: () => partner.stop() };
}

/**
 * The demo page, its sign-in (a token from the development identity provider) and, with the kitchen,
 * a card token: the app tokenizes the card at the gateway itself, which the page cannot do here
 * because the gateway simulator's certificate is a throw-away one the browser does not trust.
 */
export function registerDemoPage(
  app: FastifyInstance,
  idp: TenantIdp,
  kitchen?: { tokenizeTestCard(): string },
): void {
  const page = new URL('./demo-page/index.html', import.meta.url);
  const icon = new URL('./demo-page/favicon.svg', import.meta.url);
  app.get('/demo/', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send(await readFile(page, 'utf8')),
  );
  app.get('/demo/favicon.svg', async (_req, reply) =>
    reply
      .type('image/svg+xml')
      .header('cache-control', 'public, max-age=86400')
      .send(await readFile(icon, 'utf8')),
  );
  app.get('/demo', async (_req, reply) => reply.redirect('/demo/'));
  app.post('/demo/api/sign-in', async (req) => {
    const body = signIn.safeParse(req.body);
    if (!body.success) {
      throw new ApiError(
        422,
        'invalid_body',
        `tenant ${body.error.issues[0]?.message ?? 'is invalid'}`,
      );
    }
    return {
      accessToken: await idp.issue(body.data.tenant, { ttlSeconds: 8 * 3600 }),
      tenant: body.data.tenant,
    };
  });
  app.get('/demo/api/features', async () => ({ kitchen: Boolean(kitchen) }));
  if (kitchen) {
    app.post('/demo/api/card-token', async () => ({
      cardToken: kitchen.tokenizeTestCard(),
      card: 'test card •••• 1111',
    }));
  }
}
