// The rules that tell a stale write of a cut-off worker from an allowed one, and the names a run's
// network leftovers are recognised by.
import { describe, expect, it } from '@jest/globals';
import { firstClaim, staleWrite, type IsolatedWrite } from './fencing.js';
import { ownerPid } from './netns.js';

const POD = 'allio-sync-4';
const write = (w: Partial<IsolatedWrite>): IsolatedWrite => ({
  at: new Date('2026-12-01T23:00:00.000Z'),
  client: '10.213.7.3',
  tbl: 'allio_tasks',
  row_id: '17',
  old_status: 1,
  new_status: 2,
  old_locked_by: `${POD}/allio-sync/0`,
  new_locked_by: null,
  lease_valid: true,
  claimable: false,
  ...w,
});

describe('stale writes of a cut-off worker', () => {
  it('allows an outcome or a renewal under its own live lease', () => {
    expect(staleWrite(write({}), POD)).toBeUndefined();
    expect(
      staleWrite(write({ new_status: 1, new_locked_by: `${POD}/allio-sync/0` }), POD),
    ).toBeUndefined();
  });

  it('refuses an outcome or a renewal after its own lease lapsed', () => {
    expect(staleWrite(write({ lease_valid: false, claimable: true }), POD)).toMatch(
      /wrote status 2 after its lease had lapsed/,
    );
    expect(staleWrite(write({ lease_valid: false, claimable: true, new_status: 3 }), POD)).toMatch(
      /lapsed/,
    );
  });

  it('allows giving a row back after the lease lapsed, and claiming it afresh', () => {
    expect(
      staleWrite(write({ lease_valid: false, claimable: true, new_status: 0 }), POD),
    ).toBeUndefined();
    expect(
      staleWrite(
        write({
          lease_valid: false,
          claimable: true,
          new_status: 1,
          new_locked_by: `${POD}/allio-sync/1`,
        }),
        POD,
      ),
    ).toBeUndefined();
  });

  it('allows claiming a new row or one whose lease expired, refuses one held under a live lease', () => {
    expect(
      staleWrite(
        write({
          old_status: 0,
          old_locked_by: null,
          new_status: 1,
          new_locked_by: `${POD}/allio-sync/0`,
          lease_valid: false,
          claimable: true,
        }),
        POD,
      ),
    ).toBeUndefined();
    expect(
      staleWrite(
        write({
          old_locked_by: 'allio-sync-1/allio-sync/0',
          new_status: 1,
          new_locked_by: `${POD}/allio-sync/0`,
          claimable: true,
          lease_valid: false,
        }),
        POD,
      ),
    ).toBeUndefined();
    expect(
      staleWrite(
        write({
          old_locked_by: 'allio-sync-1/allio-sync/0',
          new_status: 1,
          new_locked_by: `${POD}/allio-sync/0`,
        }),
        POD,
      ),
    ).toMatch(/claimed it while allio-sync-1/);
  });

  it('refuses changing a row another worker holds, but for a partner reply finishing a smart-home request', () => {
    expect(staleWrite(write({ old_locked_by: 'allio-sync-1/allio-sync/0' }), POD)).toMatch(
      /changed it while allio-sync-1/,
    );
    expect(
      staleWrite(
        write({ tbl: 'smart_home_requests', old_locked_by: 'mq-bridge-0/smart-home-requests/0' }),
        'mq-bridge-3',
      ),
    ).toBeUndefined();
    expect(
      staleWrite(
        write({ old_locked_by: 'allio-sync-1/allio-sync/0', lease_valid: false, claimable: true }),
        POD,
      ),
    ).toBeUndefined();
  });

  it('does not take another pod whose name starts the same for itself', () => {
    expect(staleWrite(write({ old_locked_by: 'allio-sync-40/allio-sync/0' }), POD)).toMatch(
      /changed it while allio-sync-40/,
    );
  });

  it('finds the first claim after a moment', () => {
    const t = (s: number) => new Date(Date.UTC(2026, 11, 1, 23, 0, s));
    const writes = [
      write({
        at: t(1),
        old_status: 0,
        old_locked_by: null,
        new_status: 1,
        new_locked_by: `${POD}/a/0`,
        claimable: true,
      }),
      write({ at: t(5) }),
      write({
        at: t(9),
        old_status: 0,
        old_locked_by: null,
        new_status: 1,
        new_locked_by: `${POD}/a/0`,
        claimable: true,
        row_id: '18',
      }),
    ];
    expect(firstClaim(writes, POD, t(2).getTime())?.row_id).toBe('18');
    expect(firstClaim(writes, POD, t(10).getTime())).toBeUndefined();
  });
});

describe('network names of a run', () => {
  it('name the run by its pid', () => {
    expect(ownerPid('hc-4123')).toBe(4123);
    expect(ownerPid('hc-4123-7')).toBe(4123);
    expect(ownerPid('hc-x')).toBeUndefined();
    expect(ownerPid('eth0')).toBeUndefined();
  });
});
