// Unit tests for the SmartHomePartner resource schema (shared by `hub apply` and the CRD).
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { API_VERSION } from '../core/resource.js';
import { smartHomePartnerResource } from './smart-home-partner.js';

const partner = (spec: unknown, name = 'acme') => ({
  apiVersion: API_VERSION,
  kind: 'SmartHomePartner',
  metadata: { name },
  spec,
});

describe('SmartHomePartner', () => {
  test('the example in examples/ is valid', () => {
    const doc = parse(
      readFileSync(new URL('../../examples/smart-home-partner.yaml', import.meta.url), 'utf8'),
    );
    expect(smartHomePartnerResource.parse(doc).spec.services).toEqual(['intercom', 'barrier']);
  });

  test('defaults: active, no explicit queue or client', () => {
    expect(smartHomePartnerResource.parse(partner({ services: ['barrier'] })).spec).toEqual({
      services: ['barrier'],
      active: true,
    });
  });

  test.each([
    [{ services: [] }, 'services'],
    [{ services: ['sauna'] }, 'services.0'],
    [{ services: ['intercom', 'intercom'] }, 'services'],
    [{ services: ['intercom'], commandQueue: 'amq.sneaky' }, 'commandQueue'],
    [{ services: ['intercom'], commandQueue: 'has space' }, 'commandQueue'],
    [{ services: ['intercom'], unknown: 1 }, ''],
  ])('%j is refused at %s', (spec, path) => {
    const r = smartHomePartnerResource.safeParse(partner(spec));
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues.map((i) => i.path.slice(1).join('.'))).toContain(path);
  });

  test('a name that is not a DNS label is refused', () => {
    expect(
      smartHomePartnerResource.safeParse(partner({ services: ['intercom'] }, 'Acme_Corp')).success,
    ).toBe(false);
  });
});
