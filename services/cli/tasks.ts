// `hub tasks`: queries behind listing and replaying ALLIO tasks.
import type { Knex } from 'knex';
import { replayFailed } from '../core/engine/work-table.js';

export const TASK_STATUS: Record<string, number> = { new: 0, 'in-progress': 1, done: 2, failed: 3 };

interface TaskListing {
  id: number;
  integration: string;
  command: string;
  status: string;
  attempts: number;
  external_ids: string;
  next_attempt_at: Date;
  last_error: string | null;
}

export async function listTasks(
  db: Knex,
  o: { status: string; integration?: string; limit: number },
): Promise<TaskListing[]> {
  const names = Object.fromEntries(Object.entries(TASK_STATUS).map(([k, v]) => [v, k]));
  const q = db('allio_tasks as t')
    .join('allio_integrations as i', 'i.id', 't.integration_id')
    .select(
      't.id',
      'i.name as integration',
      't.command',
      't.status',
      't.attempts',
      't.external_ids',
      't.next_attempt_at',
      't.last_error',
    )
    .orderBy('t.id', 'desc')
    .limit(o.limit);
  if (o.status !== 'all') q.where('t.status', TASK_STATUS[o.status] ?? -1);
  if (o.integration) q.where('i.name', o.integration);
  const rows: (Omit<TaskListing, 'status' | 'id'> & { status: number; id: string })[] = await q;
  return rows.map((r) => ({ ...r, id: Number(r.id), status: names[r.status] ?? String(r.status) }));
}

/** Tasks per status, every status present (0 when none): the summary above `hub tasks list`. */
export async function countTasks(
  db: Knex,
  o: { integration?: string },
): Promise<Record<string, number>> {
  const q = db('allio_tasks as t')
    .select('t.status')
    .count<{ status: number; count: string }[]>('* as count')
    .groupBy('t.status');
  if (o.integration) {
    q.join('allio_integrations as i', 'i.id', 't.integration_id').where('i.name', o.integration);
  }
  const counts = Object.fromEntries(Object.keys(TASK_STATUS).map((k) => [k, 0]));
  const names = Object.fromEntries(Object.entries(TASK_STATUS).map(([k, v]) => [v, k]));
  for (const r of await q) counts[names[r.status] ?? String(r.status)] = Number(r.count);
  return counts;
}

export async function retryTasks(
  db: Knex,
  o: { ids: string[]; integration?: string },
): Promise<string[]> {
  return replayFailed(db, 'allio_tasks', (q) => {
    if (o.ids.length) q.whereIn('id', o.ids);
    if (o.integration) {
      q.whereIn(
        'integration_id',
        db('allio_integrations').select('id').where({ name: o.integration }),
      );
    }
    return q;
  });
}
