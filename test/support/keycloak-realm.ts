// What a partners' realm file asks of Keycloak's environment, for the checks of the deployments.
import type { KeycloakRealm } from '../../services/domains/partner-access/keycloak-realm.js';

/** The environment variables a realm's placeholders name: what Keycloak's environment must set. */
export function realmSecretVariables(realm: KeycloakRealm): string[] {
  return realm.clients.flatMap((c) => {
    const m = /^\$\{([A-Z0-9_]+)\}$/.exec(c.secret ?? '');
    return m ? [m[1]!] : [];
  });
}
