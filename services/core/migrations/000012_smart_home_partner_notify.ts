// A SmartHomePartner written by `hub apply`, the operator or the demo wakes the mq-bridge at once
// (LISTEN/NOTIFY on hub_work), which then declares the partner's queue; its periodic refresh stays
// as the fallback for a missed notification.
import type { Migration } from './index.js';

export const smartHomePartnerNotify: Migration = {
  id: 12,
  name: 'smart_home_partner_notify',
  sql: `
create trigger smart_home_partners_notify after insert or update on smart_home_partners
  for each statement execute function hub_notify_work();
`,
};
