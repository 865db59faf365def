// A smart-home request's state (ready_for_request, requested, complete, failed) is computed by
// PostgreSQL from the engine's columns instead of being stored beside them.
import type { Migration } from './index.js';

export const smartHomeRequestState: Migration = {
  id: 15,
  name: 'smart_home_request_state',
  sql: `
-- One encoding of a request's progress. The engine's status is stored (0 new, 1 in progress, 2 done,
-- 3 error) and the state the app, the CLI and the docs name is a generated column over it:
--   status 2 -> complete, status 3 -> failed,
--   status 0 or 1 -> requested once the command was sent in this round (requested_at set),
--                    ready_for_request before that (a replay clears requested_at).
-- This direction, not a stored state with a generated status: the shared engine writes status on
-- every work table (claim, retry, fail, release, replay) and knows no domain's states, so each of
-- its writes must move the state by itself. PostgreSQL refuses any write of a generated column, so
-- no writer can leave the two out of step.

-- Carry what only the stored state said into requested_at. A request waiting for its first send of
-- this round (new, or replayed after failing) has no send time; one marked requested has one.
update smart_home_requests set requested_at = null
 where state = 'ready_for_request' and status in (0, 1) and requested_at is not null;
update smart_home_requests set requested_at = updated_at
 where state = 'requested' and status in (0, 1) and requested_at is null;
-- Where the two disagreed on whether a request is finished (the engine failed a request whose
-- state still said requested), the status is what the bridge acted on, so it decides.

drop index smart_home_requests_open;
alter table smart_home_requests drop column state;
alter table smart_home_requests add constraint smart_home_requests_status check (status in (0, 1, 2, 3));
alter table smart_home_requests add column state text not null generated always as (
  case status
    when 2 then 'complete'
    when 3 then 'failed'
    else case when requested_at is null then 'ready_for_request' else 'requested' end
  end) stored;
-- At most one request in flight per subscription (ready_for_request or requested).
create unique index smart_home_requests_open on smart_home_requests (subscription_id) where status in (0, 1);
`,
};
