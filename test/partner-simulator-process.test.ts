// The smart-home partner simulator as its own process (as `npm start`, the benchmark and partners'
// engineers run it): it consumes its queue, answers connect and open, and stops cleanly on SIGTERM.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { waitFor } from './support/context.js';
import { startServiceProcess, type ServiceProcess, expectCleanExit } from './support/process.js';
import {
  call,
  openSocket,
  PERSONAL,
  startStack,
  type ApiInstance,
  type Stack,
} from './support/smart-home.js';
import type { TenantIdp } from '../services/simulators/tenant-idp/server.js';

let idp: TenantIdp;
let api: ApiInstance;
let stack: Stack;
let sim: ServiceProcess;

beforeAll(async () => {
  stack = await startStack('simproc', { partner: false, partnerName: 'sim-partner' });
  ({ idp, api } = stack);
  sim = startServiceProcess('services/simulators/smart-home/main.ts', {
    AMQP_URL: stack.vhost.url,
    SIM_PARTNER: 'sim-partner',
    SIM_DELAY_MS: '50',
  });
  await waitFor(
    () => sim.output().includes('partner simulator consuming'),
    20_000,
    'the simulator to consume',
  );
}, 30_000);
afterAll(async () => {
  sim?.child.kill('SIGTERM');
  if (sim) await expectCleanExit(sim);
  await stack?.close();
});

test('a tenant connects and opens the barrier through the simulator process', async () => {
  const token = await idp.issue('tenant-sim');
  const socket = await openSocket(api.url, token);
  try {
    expect(
      (
        await call(api.url, 'POST', '/v1/smart-home/subscriptions/barrier/connect', token, {
          personalData: PERSONAL,
        })
      ).status,
    ).toBe(202);
    await socket.next(
      (e) =>
        e.type === 'subscription.changed' &&
        (e.subscription as { state: string }).state === 'connected',
      10_000,
      'connected',
    );
    const open = await call(api.url, 'POST', '/v1/smart-home/subscriptions/barrier/open', token);
    const result = await socket.next(
      (e) => e.type === 'command.result' && e.commandId === open.body.commandId,
      10_000,
      'opened',
    );
    expect(result.status).toBe('opened');
  } finally {
    await socket.close();
  }
});
