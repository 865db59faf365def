// The partner contract (docs/asyncapi.yaml) is a valid AsyncAPI document, and the messages the hub
// and the partner simulator actually build match its schemas (and malformed ones do not).
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { buildCommand, buildReply, parseReply } from '../services/contracts/smart-home-messages.js';
import { defaultCommandQueue } from '../services/contracts/smart-home-partner.js';
import { partnerScopes } from '../services/domains/partner-access/scopes.js';

const text = readFileSync(new URL('../docs/asyncapi.yaml', import.meta.url), 'utf8');

describe('docs/asyncapi.yaml', () => {
  test('parses with the AsyncAPI parser without errors', async () => {
    const { document, diagnostics } = await new Parser().parse(text);
    const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
    expect(errors.map((e) => `${e.path.join('.')}: ${e.message}`)).toEqual([]);
    expect(document).toBeDefined();
    expect(
      document
        ?.operations()
        .all()
        .map((o) => o.id())
        .sort(),
    ).toEqual(['receiveCommands', 'sendReply']);
    expect(
      document
        ?.allMessages()
        .all()
        .map((m) => m.name())
        .sort(),
    ).toEqual(['device.open', 'reply', 'subscription.connect', 'subscription.disconnect']);
  });

  test('the security scheme names the scopes the authorization server grants a partner', () => {
    const doc = parse(text) as {
      components: {
        securitySchemes: {
          partnerToken: {
            scopes: string[];
            flows: { clientCredentials: { availableScopes: Record<string, string> } };
          };
        };
      };
    };
    const scheme = doc.components.securitySchemes.partnerToken;
    const expected = partnerScopes({
      partner: '{partner}',
      commandQueue: defaultCommandQueue('{partner}'),
      vhost: '/',
      resourceServerId: 'rabbitmq',
    });
    expect(scheme.scopes).toEqual(expected);
    expect(Object.keys(scheme.flows.clientCredentials.availableScopes)).toEqual(expected);
  });

  const schemas = (parse(text) as { components: { schemas: Record<string, unknown> } }).components
    .schemas;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema({ $id: 'contract', components: { schemas } });
  const validator = (name: string) =>
    ajv.getSchema(`contract#/components/schemas/${name}`) ??
    (() => {
      throw new Error(name);
    })();
  const now = new Date();
  const person = { fullName: 'Anna Petrova', phone: '+7 916 555-01-02', apartment: '117' };
  const base = {
    correlationId: crypto.randomUUID(),
    service: 'intercom' as const,
    tenantRef: crypto.randomUUID(),
    createdAt: now,
    attempt: 1,
  };
  const connect = buildCommand({
    ...base,
    type: 'subscription.connect',
    payload: { personalData: person, biometricsConsent: true },
  });
  const disconnect = buildCommand({ ...base, type: 'subscription.disconnect', payload: {} });
  const open = buildCommand({
    ...base,
    type: 'device.open',
    payload: { expiresAt: now.toISOString() },
  });

  test.each([
    ['ConnectCommand', connect],
    ['DisconnectCommand', disconnect],
    ['OpenCommand', open],
    ['Reply', buildReply(open, 'success')],
    ['Reply', buildReply(connect, 'failure', 'tenant unknown at this address')],
  ])('a %s built by the hub matches the contract', (name, message) => {
    const validate = validator(name);
    expect(validate(message) ? [] : validate.errors).toEqual([]);
  });

  test('messages that break the contract are refused by its schemas', () => {
    expect(
      validator('Reply')({ ...buildReply(open, 'success'), payload: { outcome: 'maybe' } }),
    ).toBe(false);
    expect(
      validator('ConnectCommand')({
        ...connect,
        payload: { personalData: { ...person, phone: 'call me' }, biometricsConsent: true },
      }),
    ).toBe(false);
    expect(validator('OpenCommand')({ ...open, messageId: 'not-a-uuid' })).toBe(false);
    // The hub dead-letters a reply with NUL in its text (parseReply), and the contract says so.
    const nul = buildReply(open, 'failure', 'jammed\u0000door');
    expect(validator('Reply')(nul)).toBe(false);
    expect(parseReply(Buffer.from(JSON.stringify(nul)))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/NUL/),
    });
  });
});
