// Technology cards in XML: checked against tech-card.xsd (libxml2's validator, compiled to WASM),
// then read into a typed card; and written back to XML that passes the same schema.
import { readFileSync } from 'node:fs';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { validateXML } from 'xmllint-wasm';
import { z } from 'zod';
import { clip, MAX_ISSUE_TEXT } from '../../core/bounds.js';

const TECH_CARD_NS = 'urn:integration-hub:kitchen:tech-card:1';
const XSD = readFileSync(new URL('./tech-card.xsd', import.meta.url), 'utf8');
/** Cards are small; a larger body is a mistake or an attack on the parser. */
export const MAX_CARD_BYTES = 64 * 1024;

export const techCard = z.object({
  dishId: z.string(),
  version: z.number().int().positive(),
  name: z.string(),
  price: z.object({ minor: z.number().int().nonnegative(), currency: z.string().length(3) }),
  ingredients: z
    .array(
      z.object({
        code: z.string(),
        unit: z.enum(['g', 'ml', 'pcs']),
        gross: z.number().positive(),
        net: z.number().positive(),
      }),
    )
    .min(1),
  cooking: z.object({
    program: z.string(),
    temperatureC: z.number().int().nonnegative(),
    durationSec: z.number().int().positive(),
  }),
});
export type TechCard = z.infer<typeof techCard>;

export class TechCardError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'TechCardError';
  }
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => name === 'ingredient',
  // No entity expansion: cards never need it and it is the classic XML bomb.
  processEntities: false,
});

/** Validates against the XSD, then maps to a TechCard; throws TechCardError listing what is wrong. */
export async function parseTechCard(xml: string): Promise<TechCard> {
  if (Buffer.byteLength(xml) > MAX_CARD_BYTES) {
    throw new TechCardError(`A technology card must be under ${MAX_CARD_BYTES} bytes.`, []);
  }
  if (/<!DOCTYPE/i.test(xml)) {
    throw new TechCardError('Technology cards must not contain a DOCTYPE.', []);
  }
  const result = await validateXML({
    xml: [{ fileName: 'card.xml', contents: xml }],
    schema: [{ fileName: 'tech-card.xsd', contents: XSD }],
  });
  if (!result.valid) {
    throw new TechCardError(
      'The technology card does not match the schema (tech-card.xsd).',
      // libxml2 quotes the offending value; each problem is clipped so the answer stays small.
      result.errors.slice(0, 10).map((e) => clip(e.message.trim(), MAX_ISSUE_TEXT)),
    );
  }
  const doc = parser.parse(xml) as { technologyCard: Record<string, unknown> };
  const c = doc.technologyCard as {
    '@dishId': string;
    '@version': string;
    name: string;
    price: { '#text': string; '@currency': string };
    ingredients: {
      ingredient: { '@code': string; '@unit': string; '@gross': string; '@net': string }[];
    };
    cooking: { '@program': string; '@temperatureC': string; '@durationSec': string };
  };
  return techCard.parse({
    dishId: c['@dishId'],
    version: Number(c['@version']),
    name: String(c.name),
    price: { minor: Number(c.price['#text']), currency: c.price['@currency'] },
    ingredients: c.ingredients.ingredient.map((i) => ({
      code: i['@code'],
      unit: i['@unit'],
      gross: Number(i['@gross']),
      net: Number(i['@net']),
    })),
    cooking: {
      program: c.cooking['@program'],
      temperatureC: Number(c.cooking['@temperatureC']),
      durationSec: Number(c.cooking['@durationSec']),
    },
  });
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  format: true,
  suppressEmptyNode: true,
});

export function techCardToXml(card: TechCard): string {
  const body = builder.build({
    technologyCard: {
      '@xmlns': TECH_CARD_NS,
      '@dishId': card.dishId,
      '@version': card.version,
      name: card.name,
      price: { '#text': card.price.minor, '@currency': card.price.currency },
      ingredients: {
        ingredient: card.ingredients.map((i) => ({
          '@code': i.code,
          '@unit': i.unit,
          '@gross': i.gross,
          '@net': i.net,
        })),
      },
      cooking: {
        '@program': card.cooking.program,
        '@temperatureC': card.cooking.temperatureC,
        '@durationSec': card.cooking.durationSec,
      },
    },
  }) as string;
  return `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
}
