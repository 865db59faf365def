// Who may do what in the smart-home API: every operation belongs to the tenant whose token it is.
// Machine clients (API keys) hold none of these, so they are refused like any unlisted role.
import { permissionConfig, type PermissionTable } from '../../core/auth/rbac.js';

type SmartHomePermission =
  'subscriptions:read' | 'subscriptions:change' | 'devices:open' | 'commands:read';

export const SMART_HOME_PERMISSIONS: PermissionTable<SmartHomePermission> = {
  'subscriptions:read': ['tenant'],
  'subscriptions:change': ['tenant'],
  'devices:open': ['tenant'],
  'commands:read': ['tenant'],
};

export const needs = permissionConfig<SmartHomePermission>();
