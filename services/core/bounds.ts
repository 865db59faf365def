// Limits that keep an error answer small whatever the input: how many validation issues are
// reported and how long each is, how big an error's details may be, and how deeply JSON may nest.
import type { ZodIssue } from 'zod';

/**
 * Issues listed in an error answer. One is enough to fix a field; twenty cover every field of the
 * largest body the hub accepts. Unbounded, a 256 KiB body of bad array elements listed ~127,000
 * issues: an 8.5 MB answer built from ~100 MB of heap.
 */
export const MAX_ISSUES = 20;
/** Characters of one issue's message or path; zod's messages list unknown keys, which a client picks. */
export const MAX_ISSUE_TEXT = 200;
/** Characters of a dead-letter or log reason built from issues. */
export const MAX_REASON_TEXT = 500;
/** Characters of an error answer's `details` as JSON; above it the details are replaced by a note. */
export const MAX_DETAILS_CHARS = 4_096;
/** Characters of an error answer's message. */
export const MAX_MESSAGE_TEXT = 500;
/**
 * Nesting of a JSON body. No contract of the hub nests deeper than 5; 64 leaves room for partners'
 * extra fields, and keeps recursive walks (card-number search, logging) far from the stack limit.
 */
export const MAX_JSON_DEPTH = 64;

interface Issue {
  path: string;
  message: string;
}

/** `text` cut to `max` characters, marked with an ellipsis when cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * Text from outside made fit for a PostgreSQL text column: NUL, which PostgreSQL refuses in text
 * ("invalid byte sequence for encoding UTF8: 0x00"), becomes U+FFFD, and the length is clipped.
 */
export function storable(text: string, max: number): string {
  return clip(text, max).replaceAll('\u0000', '\uFFFD');
}

function pathOf(issue: Pick<ZodIssue, 'path'>): string {
  // Joining a path of thousands of segments would itself be the cost being avoided.
  return clip(issue.path.slice(0, 32).map(String).join('.'), MAX_ISSUE_TEXT);
}

/** At most MAX_ISSUES issues as `{path, message}`, each clipped. */
export function formatIssues(issues: readonly ZodIssue[]): Issue[] {
  return issues
    .slice(0, MAX_ISSUES)
    .map((i) => ({ path: pathOf(i), message: clip(i.message, MAX_ISSUE_TEXT) }));
}

/** At most MAX_ISSUES lines `path message` for a person to read, and a last line counting the rest. */
export function problemLines(issues: readonly ZodIssue[]): string[] {
  const lines = formatIssues(issues).map((i) => `${i.path || '(root)'} ${i.message}`);
  if (issues.length > lines.length) {
    lines.push(`(${issues.length - lines.length} more problems not listed)`);
  }
  return lines;
}

/** One line for a log or a dead-letter header: the first issues, and how many more there were. */
export function describeIssues(issues: readonly ZodIssue[], max = MAX_REASON_TEXT): string {
  const shown = issues.slice(0, 3).map((i) => `${pathOf(i) || '(root)'}: ${clip(i.message, 100)}`);
  const more = issues.length > shown.length ? ` (+${issues.length - shown.length} more)` : '';
  return clip(`${shown.join('; ')}${more}`, max);
}

/**
 * An error's details as they may be answered: an array keeps its first MAX_ISSUES entries, and
 * details whose JSON passes MAX_DETAILS_CHARS (or that cannot be serialised) become a note.
 */
export function boundDetails(details: unknown): unknown {
  if (details === undefined) return undefined;
  const capped = Array.isArray(details) ? details.slice(0, MAX_ISSUES) : details;
  let text: string | undefined;
  try {
    text = JSON.stringify(capped);
  } catch {
    text = undefined;
  }
  if (text !== undefined && text.length <= MAX_DETAILS_CHARS) return capped;
  return { truncated: true, note: `details left out: larger than ${MAX_DETAILS_CHARS} characters` };
}

/**
 * True when `value` nests arrays and objects deeper than `max`. The walk recurses at most `max`
 * levels whatever the input, so it cannot overflow the stack; 87,000 small objects take ~1 ms
 * (an explicit stack of every container took ~40 ms).
 */
export function nestedDeeperThan(value: unknown, max = MAX_JSON_DEPTH, depth = 0): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth >= max) return true;
  if (Array.isArray(value)) {
    for (const child of value as unknown[]) {
      if (nestedDeeperThan(child, max, depth + 1)) return true;
    }
    return false;
  }
  for (const key in value) {
    if (nestedDeeperThan((value as Record<string, unknown>)[key], max, depth + 1)) return true;
  }
  return false;
}

/**
 * True when a string or key anywhere in a parsed JSON value holds NUL, which PostgreSQL refuses in
 * text and jsonb: refused at the door, it is a 400 instead of a failed insert. Call it on a value
 * already known to nest at most MAX_JSON_DEPTH levels.
 */
function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return (value as unknown[]).some(holdsNul);
  for (const key in value) {
    if (key.includes('\u0000') || holdsNul((value as Record<string, unknown>)[key])) return true;
  }
  return false;
}

/**
 * Why a parsed JSON body is refused before any route looks at it (nested past MAX_JSON_DEPTH, or
 * holding NUL), or undefined. Both parsers of the hub use it: fastify's for every JSON route, and
 * the warehouse webhook's own, which must keep the raw body for its signature.
 */
export function jsonRefusal(
  value: unknown,
): { code: 'body_too_deep' | 'nul_character'; message: string } | undefined {
  if (nestedDeeperThan(value)) {
    return {
      code: 'body_too_deep',
      message: `The JSON body nests deeper than ${MAX_JSON_DEPTH} levels.`,
    };
  }
  if (holdsNul(value)) {
    return {
      code: 'nul_character',
      message: 'Text in the JSON body may not contain the NUL character (\\u0000).',
    };
  }
  return undefined;
}
