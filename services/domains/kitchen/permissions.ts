// Who may do what in the kitchen API. Tenants (JWT) order and pay; kitchen operators (API keys of
// kitchen terminals) follow orders and stock; kitchen admins (back office) manage technology cards.
// Staff roles are held by API keys, or by a JWT as client roles of the hub's own audience
// (`resource_access[<TENANT_JWT_AUDIENCE>].roles`); a token's `roles`/`realm_access` grant nothing.
import { permissionConfig, type PermissionTable } from '../../core/auth/rbac.js';

type KitchenPermission =
  | 'menu:read'
  | 'orders:create'
  | 'orders:pay'
  | 'orders:read'
  | 'stock:read'
  | 'tech-cards:read'
  | 'tech-cards:write';

export const KITCHEN_ROLES = ['tenant', 'kitchen-operator', 'kitchen-admin'] as const;

export const KITCHEN_PERMISSIONS: PermissionTable<KitchenPermission> = {
  'menu:read': ['tenant', 'kitchen-operator', 'kitchen-admin'],
  'orders:create': ['tenant'],
  'orders:pay': ['tenant'],
  'orders:read': ['tenant', 'kitchen-operator'],
  'stock:read': ['kitchen-operator', 'kitchen-admin'],
  'tech-cards:read': ['kitchen-operator', 'kitchen-admin'],
  'tech-cards:write': ['kitchen-admin'],
};

export const needs = permissionConfig<KitchenPermission>();
