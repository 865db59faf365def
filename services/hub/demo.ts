// Demo mode of `npm start -- --simulators`: starts the ALLIO simulator, registers a demo
// integration pointing at it, and sends it webhooks so that data flows through the hub at once.
import type { Knex } from 'knex';
import type { Logger } from '../core/logger.js';
import { toError } from '../core/errors.js';
import { upsertIntegration } from '../allio-sync/integrations.js';
import { API_VERSION, allioIntegrationResource } from '../allio-sync/resource.js';
import { startAllioSimulator, type AllioSimulator } from '../simulators/allio/server.js';

export const DEMO = {
  name: 'demo',
  integrationUuid: '5b0c6a0e-8a5f-4c1e-9a57-2f4f1f0d9b11',
  webhookKey: 'demo-webhook-key-0001',
  token: 'demo-token',
} as const;

const COMMANDS = ['RESERVE_ADD', 'RESERVE_MOD', 'DEALCARD_ADD', 'DEALCARD_MOD', 'SPACE_CHANGED'] as const;

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
  await upsertIntegration(o.db, resource);
  const webhookUrl = `${o.apiUrl}/webhooks/allio/${DEMO.webhookKey}`;
  o.logger.info({ simulator: simulator.url, webhookUrl }, 'demo: ALLIO simulator and integration "demo" ready');

  let sent = 0;
  const send = async () => {
    const command = COMMANDS[sent % COMMANDS.length] ?? 'RESERVE_ADD';
    const first = 1 + ((sent * 7) % 500);
    const indexes = Array.from({ length: 1 + (sent % 5) }, (_, i) => first + i);
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
          { reservations: Number(r[0]?.count), deals: Number(d[0]?.count), contacts: Number(c[0]?.count), webhooksSent: sent },
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
