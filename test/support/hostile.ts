// Hostile bodies for validation tests: JSON of a given size made of array elements that all fail
// validation, and a timed request that reports how big the answer was.

/** The most an error answer may weigh, whatever the request. */
export const MAX_ERROR_BYTES = 8 * 1024;
/** The most issues an error answer may list. */
export const MAX_LISTED_ISSUES = 20;

/**
 * A JSON text of about `bytes` bytes: `fields` with `arrayField` set to as many copies of `element`
 * as fit. Every copy fails validation, so an unbounded validator reports one issue per copy.
 */
export function invalidArrayBody(
  fields: Record<string, unknown>,
  arrayField: string,
  element: unknown,
  bytes = 256 * 1024 - 512,
): string {
  const head = JSON.stringify({ ...fields, [arrayField]: [] }).slice(0, -3);
  const one = JSON.stringify(element);
  const copies = Math.max(1, Math.floor((bytes - head.length - 3) / (one.length + 1)));
  return `${head}[${Array.from({ length: copies }, () => one).join(',')}]}`;
}

export interface TimedAnswer {
  status: number;
  bytes: number;
  ms: number;
  text: string;
  /** The JSON answer, or undefined when it is not JSON. */
  json: { error?: { code?: string; message?: string; details?: unknown } } | undefined;
}

/** Sends `body` as-is and measures the answer's size and the time to its last byte. */
export async function timedPost(
  url: string,
  body: string,
  headers: Record<string, string> = {},
  method = 'POST',
): Promise<TimedAnswer> {
  const started = performance.now();
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await res.text();
  const ms = performance.now() - started;
  let json: TimedAnswer['json'];
  try {
    json = JSON.parse(text) as TimedAnswer['json'];
  } catch {
    json = undefined;
  }
  return { status: res.status, bytes: Buffer.byteLength(text), ms, text, json };
}

/** How many issues an error answer lists (details as an array, or details.issues). */
export function listedIssues(a: TimedAnswer): number {
  const d = a.json?.error?.details;
  if (Array.isArray(d)) return d.length;
  if (d && typeof d === 'object' && Array.isArray((d as { issues?: unknown }).issues)) {
    return (d as { issues: unknown[] }).issues.length;
  }
  return 0;
}
