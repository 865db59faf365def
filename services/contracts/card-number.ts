// Card-number guard: the hub never receives a primary account number, so any request value that
// looks like one (13–19 digits, spaces or dashes allowed, passing the Luhn check) is refused.
import { MAX_JSON_DEPTH } from '../core/bounds.js';

/** Luhn checksum over a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

// Runs of 13–19 digits, optionally grouped by single spaces or dashes, not inside a longer number.
const CANDIDATE = /(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])/g;

function stringLooksLikeCard(s: string): boolean {
  for (const m of s.matchAll(CANDIDATE)) if (luhnValid(m[0].replace(/[ -]/g, ''))) return true;
  return false;
}

/**
 * The JSON path of the first value that looks like a card number, or undefined. Keys are checked
 * too: a client could put the number anywhere.
 */
export function findCardNumber(value: unknown, path = '$', depth = 0): string | undefined {
  // The JSON parser refuses bodies nested deeper than this, so everything accepted is searched.
  if (depth > MAX_JSON_DEPTH) return undefined;
  if (typeof value === 'string') return stringLooksLikeCard(value) ? path : undefined;
  if (typeof value === 'number' || typeof value === 'bigint') {
    return stringLooksLikeCard(String(value)) ? path : undefined;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findCardNumber(value[i], `${path}[${i}]`, depth + 1);
      if (hit) return hit;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (stringLooksLikeCard(k)) return `${path}.${k.slice(0, 4)}…`;
      const hit = findCardNumber(v, `${path}.${k}`, depth + 1);
      if (hit) return hit;
    }
  }
  return undefined;
}
