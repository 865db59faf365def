// Secrets the operator reads for a resource (an AllioIntegration's webhookKeySecretRef), through
// the Kubernetes API. A Secret is used only when it is bound to the integration by a label, so
// that whoever may edit one AllioIntegration cannot point it at any other Secret in the namespace
// (the database password, another integration's key) and probe its value through the webhook URL.
import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { PermanentError } from '../core/errors.js';
import type { SecretReader } from '../domains/allio/webhook-key.js';

/** The label a Secret carries to serve the AllioIntegration it names: `<label>: <integration name>`. */
export const INTEGRATION_LABEL = 'integration-hub.io/alliointegration';

export function kubeSecretReader(kc: KubeConfig, defaultNamespace: string): SecretReader {
  const api = kc.makeApiClient(CoreV1Api);
  return async (ref, owner) => {
    const namespace = owner.namespace ?? defaultNamespace;
    const where = `Secret ${namespace}/${ref.name}`;
    let secret;
    try {
      secret = await api.readNamespacedSecret({ name: ref.name, namespace });
    } catch (thrown) {
      // Missing or forbidden is the resource's problem (retried at the next resync); anything else is
      // an API server hiccup and retried with backoff like any failed action.
      if (thrown instanceof ApiException && (thrown.code === 404 || thrown.code === 403)) {
        throw new PermanentError(
          `${where} cannot be read (${thrown.code === 404 ? 'not found' : 'forbidden'})`,
          { cause: thrown },
        );
      }
      throw thrown;
    }
    if (secret.metadata?.labels?.[INTEGRATION_LABEL] !== owner.name) {
      throw new PermanentError(
        `${where} is not bound to this integration: label it ${INTEGRATION_LABEL}=${owner.name}`,
      );
    }
    const data = secret.data?.[ref.key];
    if (data === undefined) throw new PermanentError(`${where} has no key ${ref.key}`);
    return Buffer.from(data, 'base64').toString('utf8');
  };
}
