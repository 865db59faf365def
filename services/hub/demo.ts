// Demo mode of `npm start -- --simulators`: starts the ALLIO simulator, registers a demo
// integration pointing at it, and sends it webhooks so that data flows through the hub at once.
import type { Knex } from 'knex';
import type { Logger } from '../core/logger.js';
import { toError } from '../core/errors.js';
import { upsertIntegration } from '../domains/allio/integrations.js';
import { API_VERSION, allioIntegrationResource } from '../domains/allio/resource.js';
import { startAllioSimulator, type AllioSimulator } from '../simulators/allio/server.js';

const DEMO = {
  name: 'demo',
  integrationUuid: '5b0c6a0e-8a5f-4c1e-9a57-2f4f1f0d9b11',
  webhookKey: 'demo-webhook-key-0001',
  token: 'demo-token',
} as const;

const COMMANDS = [
  'RESERVE_ADD',
  'RESERVE_MOD',
  'DEALCARD_ADD',
  'DEALCARD_MOD',
  'SPACE_CHANGED',
] as const;

/**
 * The demo's n-th webhook (from 0) given the first id not used yet: the *_ADD commands bring new ids
 * (so the CRM keeps growing), the others touch the ids just added. Returns the next unused id.
 */
export function demoWebhook(
  n: number,
  nextId: number,
): { command: (typeof COMMANDS)[number]; indexes: number[]; nextId: number } {
  const command = COMMANDS[n % COMMANDS.length] ?? 'RESERVE_ADD';
  const size = 1 + (n % 5);
  if (command.endsWith('_ADD')) {
    return {
      command,
      indexes: Array.from({ length: size }, (_, i) => nextId + i),
      nextId: nextId + size,
    };
  }
  const first = Math.max(1, nextId - size);
  return {
    command,
    indexes: Array.from({ length: Math.max(1, nextId - first) }, (_, i) => first + i),
    nextId,
  };
}

/**
 * The first id the demo has not sent yet: after the largest the hub holds for the integration, in
 * its webhooks (accepted before a restart, maybe not synced yet) or its CRM rows (the webhooks may
 * have been purged since). A restarted demo so carries on with new records instead of sending
 * ids 1, 2, 3 again, which the CRM already holds.
 */
export async function nextDemoId(db: Knex, integrationId: string): Promise<number> {
  const r = await db.raw<{ rows: { max: string | null }[] }>(
    `select greatest(
       (select max(e::bigint) from allio_webhook w, jsonb_array_elements_text(
          case when jsonb_typeof(w.external_ids_array::jsonb) = 'array' then w.external_ids_array::jsonb else '[]'::jsonb end) e
        where w.integration_id = :id and e ~ '^[0-9]{1,15}$'),
       (select max(external_id::bigint) from crm_reservations where integration_id = :id and external_id ~ '^[0-9]{1,15}$'),
       (select max(external_id::bigint) from crm_deals where integration_id = :id and external_id ~ '^[0-9]{1,15}$')
     )::text as max`,
    { id: integrationId },
  );
  return Number(r.rows[0]?.max ?? 0) + 1;
}

export interface Demo {
  simulator: AllioSimulator;
  stop(): Promise<void>;
}

export async function startDemo(o: {
  db: Knex;
  logger: Logger;
  apiUrl: string;
  simulatorPort: number;
  webhookEveryMs?: number;
}): Promise<Demo> {
  const simulator = await startAllioSimulator({ port: o.simulatorPort, token: DEMO.token });
  const resource = allioIntegrationResource.parse({
    apiVersion: API_VERSION,
    kind: 'AllioIntegration',
    metadata: { name: DEMO.name },
    spec: {
      integrationUuid: DEMO.integrationUuid,
      webhookKey: DEMO.webhookKey,
      apiBaseUrl: simulator.url,
      apiToken: DEMO.token,
      deletionControl: true,
    },
  });
  const { id: integrationId } = await upsertIntegration(o.db, resource);
  let nextId = await nextDemoId(o.db, integrationId);
  const webhookUrl = `${o.apiUrl}/webhooks/allio/${DEMO.webhookKey}`;
  o.logger.info(
    { simulator: simulator.url, webhookUrl, firstNewId: nextId },
    'demo: ALLIO simulator and integration "demo" ready',
  );

  let sent = 0;
  const send = async () => {
    const next = demoWebhook(sent, nextId);
    const { command, indexes } = next;
    nextId = next.nextId;
    sent++;
    try {
      const res = await fetch(webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uuid: DEMO.integrationUuid, command, indexes }),
      });
      if (!res.ok) o.logger.warn({ status: res.status }, 'demo: webhook refused');
    } catch (thrown) {
      o.logger.warn({ err: toError(thrown) }, 'demo: webhook not sent');
    }
  };
  const timer = setInterval(() => void send(), o.webhookEveryMs ?? 2_000);
  const report = setInterval(() => {
    void Promise.all([
      o.db('crm_reservations').count<{ count: string }[]>('* as count'),
      o.db('crm_deals').count<{ count: string }[]>('* as count'),
      o.db('crm_contacts').count<{ count: string }[]>('* as count'),
    ]).then(
      ([r, d, c]) =>
        o.logger.info(
          {
            reservations: Number(r[0]?.count),
            deals: Number(d[0]?.count),
            contacts: Number(c[0]?.count),
            webhooksSent: sent,
          },
          'demo: CRM now holds',
        ),
      (e: unknown) => o.logger.warn({ err: toError(e) }, 'demo: could not count CRM rows'),
    );
  }, 10_000);
  void send();
  return {
    simulator,
    async stop() {
      clearInterval(timer);
      clearInterval(report);
      await simulator.close();
    },
  };
}
