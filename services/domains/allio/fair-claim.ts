// The sync worker's claim: a fair share of ALLIO's quota for every integration behind one egress
// IP. A claim first waits for a slot of the quota, then picks the integration whose turn it is
// (start-time fair queueing over weighted virtual times) and leases its oldest due tasks, so the
// choice is made at the moment a request can go out, never queued behind batches claimed earlier.
import { CLAIM_SET, dueCondition, type WorkTable } from '../../core/engine/work-table.js';
import { RateLimiterClosedError, type Grant } from '../../core/ratelimit/limiter.js';
import { MAX_IDS_PER_REQUEST } from './commands.js';
import type { TaskRow } from './sync-worker.js';

const DUE_T = dueCondition('t');
/**
 * Due upsert tasks, in the terms of the partial index allio_tasks_fair. `next_attempt_at <= now()`
 * holds for every due row (a task in progress was claimed when due, and claiming does not move it);
 * said outright, it bounds the index range, so tasks waiting for a retry later are never read.
 */
const PENDING_UPSERT_T = `t.op = 'upsert' and t.status in (0, 1) and t.next_attempt_at <= now() and ${DUE_T}`;

/**
 * One statement (the time it takes is taken from the slot granted just before it, so it is one round
 * trip, not a transaction of four). Each integration carries a virtual time: the finish tag of its
 * last batch. Among active integrations with due upsert tasks, the one with the lowest start tag —
 * its virtual time, or the clock if it was idle and fell behind (idle time earns no credit) — is
 * served: its oldest due task names the entity, then the due tasks of that integration and entity
 * in order while their ids add up to at most 100 (a larger task goes alone). Its virtual time moves
 * past the start by the requests the batch needs divided by its weight, and the clock moves to the
 * start. Claims lock the clock row, so they run one after another; one that waited for another
 * reads the clock as that one left it, and the tasks it leases are rechecked under SKIP LOCKED, but
 * the integrations' virtual times as of its start: the rare claim that collides with another may
 * serve an integration one turn early, never twice for one turn (the updates build on the newest
 * virtual time). Cost: one index probe (allio_tasks_fair) per active integration, plus the batch.
 */
const FAIR_CLAIM_SQL = `
with clock as (
  select vtime from allio_sync_clock for update
), pick as (
  select i.id, i.weight, greatest(i.sync_vtime, c.vtime) as start
    from allio_integrations i cross join clock c
   where i.active and exists (select 1 from allio_tasks t where t.integration_id = i.id and ${PENDING_UPSERT_T})
   order by start, i.id limit 1
), head as (
  select t.entity from allio_tasks t
   where t.integration_id = (select id from pick) and ${PENDING_UPSERT_T}
   order by t.next_attempt_at, t.id limit 1
), cand as (
  -- Ids counted by their commas: parsing 100 JSON arrays of 100 ids took 9 of the claim's 10 ms.
  select t.id, sum(length(t.external_ids) - length(replace(t.external_ids, ',', '')) + 1) over w as cum,
         row_number() over w as rn
    from (select id, next_attempt_at, external_ids from allio_tasks t
           where t.integration_id = (select id from pick) and t.entity = (select entity from head) and ${PENDING_UPSERT_T}
           order by t.next_attempt_at, t.id limit ${MAX_IDS_PER_REQUEST}) t
  window w as (order by t.next_attempt_at, t.id)
), picked as (
  -- Only the tasks that fit are locked (claims run one at a time, so the others are not wanted).
  select t.id, (select x.cum from cand x where x.id = t.id) as cum from allio_tasks t
   where t.id = any(array(select id from cand where cum <= ${MAX_IDS_PER_REQUEST} or rn = 1)) and ${PENDING_UPSERT_T}
   for update of t skip locked
), cost as (
  select greatest(ceil(max(cum) / ${MAX_IDS_PER_REQUEST}.0), 1)::float8 as requests from picked having count(*) > 0
), served as (
  update allio_integrations i set sync_vtime = greatest(i.sync_vtime, p.start) + c.requests / p.weight
    from pick p cross join cost c where i.id = p.id
), advanced as (
  update allio_sync_clock k set vtime = greatest(k.vtime, p.start) from pick p cross join cost c
), claimed as (
  update allio_tasks set ${CLAIM_SET}
   where id in (select id from picked)
  returning *
)
-- The integration's settings come back with the tasks: one round trip less inside the slot.
select c.*, (select json_build_object(
         'id', i.id::text, 'name', i.name, 'integration_uuid', i.integration_uuid, 'webhook_key_hash', i.webhook_key_hash,
         'api_base_url', i.api_base_url, 'api_token', i.api_token, 'api_token_secret_name', i.api_token_secret_name,
         'api_token_secret_key', i.api_token_secret_key, 'deletion_control', i.deletion_control, 'active', i.active,
         'weight', i.weight)
       from allio_integrations i where i.id = c.integration_id) as integration
  from claimed c`;

/** What the claim needs of the ALLIO client: a slot of the quota ahead of the request. */
interface QuotaSlots {
  slot(signal?: AbortSignal): Promise<Grant>;
  unusedSlot(grant: Grant): void;
}

export interface FairClaim {
  claim(owner: string): Promise<TaskRow[]>;
  /** The slot taken for `owner`'s batch, for its first request; each slot is handed out once. */
  takeSlot(owner: string): Grant | undefined;
}

/**
 * Claims after a slot is granted. No due work: the slot is given back at once (unsent, it frees
 * immediately). The limiter closed (shutdown): nothing is claimed.
 */
export function fairClaim(table: WorkTable, quota: QuotaSlots): FairClaim {
  const slots = new Map<string, Grant>();
  return {
    async claim(owner) {
      let grant: Grant;
      try {
        grant = await quota.slot();
      } catch (thrown) {
        if (thrown instanceof RateLimiterClosedError) return [];
        throw thrown;
      }
      let rows: TaskRow[] = [];
      try {
        rows = await table.claimRaw<TaskRow>(owner, FAIR_CLAIM_SQL, [
          owner,
          table.options.leaseMs / 1000,
        ]);
      } finally {
        if (rows.length > 0) slots.set(owner, grant);
        else quota.unusedSlot(grant);
      }
      return rows;
    },
    takeSlot(owner) {
      const grant = slots.get(owner);
      slots.delete(owner);
      return grant;
    },
  };
}
