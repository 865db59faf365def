// 1C:Accounting objects for one exported hour (pure): a sale per produced order, a card payment per
// approved payment, a card refund per refunded order, a materials requisition per order's
// ingredient write-off, preceded by the
// catalog entries they reference (an item per dish and ingredient, the retail buyer as the
// counterparty). Ref_Key is derived from the object type and its source, so the same source always
// means the same 1C object, and a catalog entry is sent once however many hours use it.
import { createHash } from 'node:crypto';

export const DOC_TYPES = {
  sale: 'Document_РеализацияТоваровУслуг',
  payment: 'Document_ОперацияПоПлатежнойКарте',
  /** The same 1C document type as the payment, with the refund operation kind. */
  refund: 'Document_ОперацияПоПлатежнойКарте',
  writeOff: 'Document_ТребованиеНакладная',
} as const;
export const CATALOGS = {
  item: 'Catalog_Номенклатура',
  counterparty: 'Catalog_Контрагенты',
} as const;
export type DocType =
  (typeof DOC_TYPES)[keyof typeof DOC_TYPES] | (typeof CATALOGS)[keyof typeof CATALOGS];

/** Every kitchen sale and card payment is to a retail buyer; 1C keeps them under one counterparty. */
const RETAIL_BUYER = { sourceId: 'retail-buyer', description: 'Розничный покупатель' } as const;

export interface OneCDocument {
  docType: DocType;
  sourceId: string;
  refKey: string;
  body: Record<string, unknown>;
}

/** A name-based UUID (RFC 4122 version 5 layout over SHA-1) of the document type and source. */
export function refKeyOf(docType: string, sourceId: string): string {
  const h = createHash('sha1').update(`integration-hub:1c:${docType}:${sourceId}`).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

export interface HourData {
  orders: {
    id: string;
    producedAt: Date;
    totalMinor: number;
    currency: string;
    items: { dishId: string; name: string; quantity: number; priceMinor: number }[];
  }[];
  payments: {
    id: string;
    orderId: string;
    settledAt: Date;
    amountMinor: number;
    currency: string;
    gatewayPaymentId: string;
  }[];
  refunds: {
    orderId: string;
    refundedAt: Date;
    amountMinor: number;
    currency: string;
    gatewayPaymentId: string;
    gatewayRefundId: string;
  }[];
  writeOffs: {
    orderId: string;
    at: Date;
    lines: { ingredient: string; quantity: number; unit: string }[];
  }[];
}

const money = (minor: number) => Math.round(minor) / 100;
const date1c = (d: Date) => d.toISOString().slice(0, 19);

const doc = (docType: DocType, sourceId: string, body: Record<string, unknown>): OneCDocument => {
  const refKey = refKeyOf(docType, sourceId);
  return { docType, sourceId, refKey, body: { Ref_Key: refKey, ...body } };
};

/** The item's Ref_Key: dishes and ingredients share the catalog, so their ids are kept apart. */
const itemSource = (kind: 'dish' | 'ingredient', id: string) => `${kind}:${id}`;
const itemKey = (kind: 'dish' | 'ingredient', id: string) =>
  refKeyOf(CATALOGS.item, itemSource(kind, id));

/** The catalog entries the hour's documents reference, each once. */
function catalogEntries(data: HourData): OneCDocument[] {
  const items = new Map<string, OneCDocument>();
  const item = (kind: 'dish' | 'ingredient', id: string, description: string, unit?: string) => {
    const source = itemSource(kind, id);
    if (!items.has(source)) {
      items.set(
        source,
        doc(CATALOGS.item, source, {
          Description: description,
          Артикул: id,
          ЭтоУслуга: false,
          ...(unit ? { ЕдиницаИзмерения: unit } : {}),
        }),
      );
    }
  };
  for (const o of data.orders) for (const i of o.items) item('dish', i.dishId, i.name);
  for (const w of data.writeOffs) {
    for (const l of w.lines) item('ingredient', l.ingredient, l.ingredient, l.unit);
  }
  const buyer =
    data.orders.length + data.payments.length + data.refunds.length > 0
      ? [
          doc(CATALOGS.counterparty, RETAIL_BUYER.sourceId, {
            Description: RETAIL_BUYER.description,
            ЮридическоеФизическоеЛицо: 'ФизическоеЛицо',
          }),
        ]
      : [];
  return [...buyer, ...items.values()];
}

export function hourDocuments(data: HourData): OneCDocument[] {
  const buyerKey = refKeyOf(CATALOGS.counterparty, RETAIL_BUYER.sourceId);
  return [
    ...catalogEntries(data),
    ...data.orders.map((o) =>
      doc(DOC_TYPES.sale, o.id, {
        Date: date1c(o.producedAt),
        Posted: false,
        Комментарий: `Kitchen order ${o.id}`,
        Контрагент_Key: buyerKey,
        ВалютаДокумента: o.currency,
        СуммаДокумента: money(o.totalMinor),
        Товары: o.items.map((i, n) => ({
          LineNumber: String(n + 1),
          Номенклатура_Key: itemKey('dish', i.dishId),
          Содержание: i.name,
          Артикул: i.dishId,
          Количество: i.quantity,
          Цена: money(i.priceMinor),
          Сумма: money(i.priceMinor * i.quantity),
        })),
      }),
    ),
    ...data.payments.map((p) =>
      doc(DOC_TYPES.payment, p.id, {
        Date: date1c(p.settledAt),
        Posted: false,
        Комментарий: `Kitchen order ${p.orderId}`,
        Контрагент_Key: buyerKey,
        ВидОперации: 'ОплатаПокупателя',
        ВалютаДокумента: p.currency,
        СуммаДокумента: money(p.amountMinor),
        НомерПлатежаЭквайера: p.gatewayPaymentId,
      }),
    ),
    // Source `refund:<order>` keeps the refund's Ref_Key apart from the payment's in the same document type.
    ...data.refunds.map((r) =>
      doc(DOC_TYPES.refund, `refund:${r.orderId}`, {
        Date: date1c(r.refundedAt),
        Posted: false,
        Комментарий: `Refund of kitchen order ${r.orderId}`,
        Контрагент_Key: buyerKey,
        ВидОперации: 'ВозвратПокупателю',
        ВалютаДокумента: r.currency,
        СуммаДокумента: money(r.amountMinor),
        НомерПлатежаЭквайера: r.gatewayPaymentId,
        НомерВозвратаЭквайера: r.gatewayRefundId,
      }),
    ),
    ...data.writeOffs.map((w) =>
      doc(DOC_TYPES.writeOff, w.orderId, {
        Date: date1c(w.at),
        Posted: false,
        Комментарий: `Ingredients of kitchen order ${w.orderId}`,
        Материалы: w.lines.map((l, n) => ({
          LineNumber: String(n + 1),
          Номенклатура_Key: itemKey('ingredient', l.ingredient),
          Артикул: l.ingredient,
          Количество: l.quantity,
          ЕдиницаИзмерения: l.unit,
        })),
      }),
    ),
  ];
}

/** The completed UTC hours in the look-back window, as period keys (`YYYY-MM-DDTHH`), oldest first. */
export function completedHours(now: Date, lookBackHours: number): string[] {
  const current = Math.floor(now.getTime() / 3_600_000) * 3_600_000;
  const keys: string[] = [];
  for (let h = lookBackHours; h >= 1; h--) {
    keys.push(new Date(current - h * 3_600_000).toISOString().slice(0, 13));
  }
  return keys;
}

export const hourStart = (key: string): Date => new Date(`${key}:00:00.000Z`);
