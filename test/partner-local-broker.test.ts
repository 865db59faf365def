// What docs/partner-sdk.md tells a partner about `npm start`'s broker, checked on real brokers: the
// machine's RabbitMQ refuses a token from the development authorization server and takes guest, and a
// broker given the OAuth 2.0 backend with the rabbitmq.conf lines the document prints (and the public
// key `npm start` keeps in .dev/) takes the token over plain AMQP and holds it to its scopes.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { devSigningKeys } from '../services/hub/dev-keys.js';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import amqplib from 'amqplib';
import type { Channel as TopologyChannel } from 'amqp-connection-manager';
import {
  assertPartnerTopology,
  assertRepliesTopology,
  COMMANDS_EXCHANGE,
} from '../services/contracts/smart-home-topology.js';
import { startAuthServer, type TestAuthServer } from './support/auth.js';
import { AMQP_URL, createTestContext, waitFor, type TestContext } from './support/context.js';
import { startRabbitNode, type RabbitNode } from './support/rabbitmq-node.js';

const PARTNER = 'local-vendor';
const QUEUE = `partner.${PARTNER}.commands`;

/** The rabbitmq.conf lines of the "Locally, against `npm start`" section, between its CONF markers. */
function documentedConf(): string[] {
  const doc = readFileSync(new URL('../docs/partner-sdk.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Locally, against `npm start`'));
  const m = /<<'CONF'\n([\s\S]*?)\n\s*CONF\n/.exec(section);
  if (!m?.[1]) {
    throw new Error('docs/partner-sdk.md has no rabbitmq.conf block in its local section');
  }
  return m[1]
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

let ctx: TestContext;
let auth: TestAuthServer;
let node: RabbitNode | undefined;
let token: string;
let publicKeyFile: string;

beforeAll(async () => {
  ctx = await createTestContext('plocal');
  // The key `npm start` makes into HUB_DEV_DIR when AUTH_SIGNING_JWKS is not set.
  const dev = devSigningKeys(mkdtempSync(path.join(tmpdir(), 'hub-dev-')));
  publicKeyFile = dev.publicKeyFile;
  expect(devSigningKeys(path.dirname(publicKeyFile))).toEqual({ ...dev, created: false });
  auth = await startAuthServer(ctx, { signingKeys: (JSON.parse(dev.jwks) as { keys: [] }).keys });
  await auth.service.clients.ensure({ partner: PARTNER, clientId: PARTNER, queue: QUEUE });
  const secret = await auth.service.clients.rotateSecret(PARTNER);
  const res = await fetch(auth.tokenUrl, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${PARTNER}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  expect(res.status).toBe(200);
  token = ((await res.json()) as { access_token: string }).access_token;
}, 60_000);

afterAll(async () => {
  await node?.stop();
  await auth?.stop();
  await ctx?.close();
}, 60_000);

const withUser = (url: string, user: string, password: string) => {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
};

describe('a partner against the local broker', () => {
  test("the machine's RabbitMQ refuses the token with 403 ACCESS_REFUSED and takes guest/guest", async () => {
    await expect(amqplib.connect(withUser(AMQP_URL, PARTNER, token))).rejects.toThrow(
      /ACCESS_REFUSED/,
    );
    const guest = await amqplib.connect(withUser(AMQP_URL, 'guest', 'guest'));
    await guest.close();
  });

  test('a broker with the documented OAuth 2.0 lines takes the token and holds it to its scopes', async () => {
    const backends = documentedConf()
      .filter((l) => l.startsWith('auth_backends.'))
      .map((l) => l.split('=')[1]!.trim());
    const rest = documentedConf()
      .filter((l) => !l.startsWith('auth_backends.'))
      .map((l) => l.replace('/etc/rabbitmq/hub-dev-signing-key.pem', publicKeyFile));
    expect(backends).toEqual(['rabbit_auth_backend_internal', 'rabbit_auth_backend_oauth2']);
    node = await startRabbitNode({
      plugins: ['rabbitmq_auth_backend_oauth2'],
      authBackends: backends,
      config: rest,
    });
    const admin = await amqplib.connect(node.amqpUrl);
    try {
      const ch = await admin.createConfirmChannel();
      // The declarations use only the amqplib channel methods both channel types share.
      await assertRepliesTopology(ch as unknown as TopologyChannel);
      await assertPartnerTopology(ch as unknown as TopologyChannel, {
        name: PARTNER,
        commandQueue: QUEUE,
      });
      ch.publish(COMMANDS_EXCHANGE, PARTNER, Buffer.from('open'), { persistent: true });
      await ch.waitForConfirms();

      const partner = await amqplib.connect(withUser(node.amqpUrl, 'ignored', token));
      try {
        const pch = await partner.createChannel();
        const got = await waitFor(
          async () => (await pch.get(QUEUE, { noAck: true })) || undefined,
          10_000,
          'the command',
        );
        expect(got.content.toString()).toBe('open');
        // Its scopes give it its own queue only: declaring another is refused.
        pch.on('error', () => undefined);
        await expect(pch.assertQueue('not-mine')).rejects.toThrow(/ACCESS_REFUSED/);
      } finally {
        await partner.close().catch(() => undefined);
      }
    } finally {
      await admin.close();
    }
  }, 180_000);
});
