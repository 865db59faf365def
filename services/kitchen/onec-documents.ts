// 1C:Accounting documents for one exported hour (pure): a sale per produced order, a card payment
// per approved payment, a materials requisition per order's ingredient write-off. Ref_Key is derived
// from the document type and its source, so the same source always means the same 1C document.
import { createHash } from 'node:crypto';

export const DOC_TYPES = {
  sale: 'Document_РеализацияТоваровУслуг',
  payment: 'Document_ОперацияПоПлатежнойКарте',
  writeOff: 'Document_ТребованиеНакладная',
} as const;
export type DocType = (typeof DOC_TYPES)[keyof typeof DOC_TYPES];

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
  orders: { id: string; producedAt: Date; totalMinor: number; currency: string; items: { dishId: string; name: string; quantity: number; priceMinor: number }[] }[];
  payments: { id: string; orderId: string; settledAt: Date; amountMinor: number; currency: string; gatewayPaymentId: string }[];
  writeOffs: { orderId: string; at: Date; lines: { ingredient: string; quantity: number; unit: string }[] }[];
}

const money = (minor: number) => Math.round(minor) / 100;
const date1c = (d: Date) => d.toISOString().slice(0, 19);

export function hourDocuments(data: HourData): OneCDocument[] {
  const doc = (docType: DocType, sourceId: string, body: Record<string, unknown>): OneCDocument => {
    const refKey = refKeyOf(docType, sourceId);
    return { docType, sourceId, refKey, body: { Ref_Key: refKey, ...body } };
  };
  return [
    ...data.orders.map((o) => doc(DOC_TYPES.sale, o.id, {
      Date: date1c(o.producedAt), Posted: false, Комментарий: `Kitchen order ${o.id}`,
      ВалютаДокумента: o.currency, СуммаДокумента: money(o.totalMinor),
      Товары: o.items.map((i, n) => ({
        LineNumber: String(n + 1), Содержание: i.name, Артикул: i.dishId,
        Количество: i.quantity, Цена: money(i.priceMinor), Сумма: money(i.priceMinor * i.quantity),
      })),
    })),
    ...data.payments.map((p) => doc(DOC_TYPES.payment, p.id, {
      Date: date1c(p.settledAt), Posted: false, Комментарий: `Kitchen order ${p.orderId}`,
      ВалютаДокумента: p.currency, СуммаДокумента: money(p.amountMinor), НомерПлатежаЭквайера: p.gatewayPaymentId,
    })),
    ...data.writeOffs.map((w) => doc(DOC_TYPES.writeOff, w.orderId, {
      Date: date1c(w.at), Posted: false, Комментарий: `Ingredients of kitchen order ${w.orderId}`,
      Материалы: w.lines.map((l, n) => ({ LineNumber: String(n + 1), Артикул: l.ingredient, Количество: l.quantity, ЕдиницаИзмерения: l.unit })),
    })),
  ];
}

/** The completed UTC hours in the look-back window, as period keys (`YYYY-MM-DDTHH`), oldest first. */
export function completedHours(now: Date, lookBackHours: number): string[] {
  const current = Math.floor(now.getTime() / 3_600_000) * 3_600_000;
  const keys: string[] = [];
  for (let h = lookBackHours; h >= 1; h--) keys.push(new Date(current - h * 3_600_000).toISOString().slice(0, 13));
  return keys;
}

export const hourStart = (key: string): Date => new Date(`${key}:00:00.000Z`);
