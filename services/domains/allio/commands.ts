// ALLIO webhook commands and the pure mapping from a stored webhook to sync tasks.

export type Entity = 'reserve' | 'dealcard';
export type Op = 'upsert' | 'delete';

/** Commands that produce tasks; every other command is stored and skipped with a reason. */
const COMMANDS: ReadonlyMap<string, { entity: Entity; op: Op }> = new Map([
  ['RESERVE_ADD', { entity: 'reserve', op: 'upsert' }],
  ['RESERVE_MOD', { entity: 'reserve', op: 'upsert' }],
  ['RESERVE_DEL', { entity: 'reserve', op: 'delete' }],
  ['DEALCARD_ADD', { entity: 'dealcard', op: 'upsert' }],
  ['DEALCARD_MOD', { entity: 'dealcard', op: 'upsert' }],
  ['DEALCARD_DEL', { entity: 'dealcard', op: 'delete' }],
]);

/** ALLIO answers at most this many ids per list request, so a task never carries more. */
export const MAX_IDS_PER_REQUEST = 100;

export interface TaskDraft {
  entity: Entity;
  op: Op;
  command: string;
  /** JSON array as text, as the `allio_tasks.external_ids` column stores it. */
  external_ids: string;
}

type TaskPlan = { tasks: TaskDraft[] } | { skip: string };

/**
 * Turns one webhook into tasks: one per chunk of at most 100 distinct ids, or a skip reason
 * (unknown command, no ids). Duplicate ids inside a webhook are dropped here.
 */
export function planTasks(command: string, externalIdsArray: string): TaskPlan {
  const kind = COMMANDS.get(command);
  if (!kind) return { skip: `command ${command} is not synchronised` };
  const ids = parseIds(externalIdsArray);
  if (ids.length === 0) return { skip: 'webhook carries no ids' };
  const tasks: TaskDraft[] = [];
  for (let i = 0; i < ids.length; i += MAX_IDS_PER_REQUEST) {
    tasks.push({
      ...kind,
      command,
      external_ids: JSON.stringify(ids.slice(i, i + MAX_IDS_PER_REQUEST)),
    });
  }
  return { tasks };
}

/** Parses a stored JSON id array, keeping the first occurrence of each positive integer id. */
export function parseIds(json: string): number[] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed)) throw new Error('external ids are not a JSON array');
  const seen = new Set<number>();
  for (const v of parsed) {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n === 'number' && Number.isSafeInteger(n) && n > 0) seen.add(n);
  }
  return [...seen];
}

/** Distinct ids over several tasks, in first-seen order, split into request-sized chunks. */
export function batchIds(taskIdLists: readonly number[][]): number[][] {
  const all = [...new Set(taskIdLists.flat())];
  const chunks: number[][] = [];
  for (let i = 0; i < all.length; i += MAX_IDS_PER_REQUEST) {
    chunks.push(all.slice(i, i + MAX_IDS_PER_REQUEST));
  }
  return chunks;
}
