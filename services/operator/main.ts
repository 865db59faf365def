// Entry point of the `operator` Deployment: reconciles AllioIntegration and SmartHomePartner
// resources into the hub (and, with KEYCLOAK_URL, the partners' clients at Keycloak) while it holds
// the leader Lease; serves /healthz, /readyz, /metrics.
import { KubeConfig } from '@kubernetes/client-node';
import { createHttpServer, loadConfig, pingDb } from '../core/index.js';
import { connectAmqp, pingAmqp } from '../core/amqp.js';
import { OutboundPolicy } from '../core/outbound.js';
import { instanceId, processBasics, runService } from '../core/runtime.js';
import { operatorConfig } from './config.js';
import { KeycloakClientRegistry } from './keycloak-clients.js';
import { createOperator } from './operator.js';

await runService('operator', async () => {
  const config = loadConfig(operatorConfig);
  const { logger, metrics, db } = await processBasics('operator', config);
  const kc = new KubeConfig();
  // In a pod: the ServiceAccount token; elsewhere: KUBECONFIG or ~/.kube/config.
  kc.loadFromDefault();
  const amqp = connectAmqp(config.AMQP_URL, logger, { name: 'hub-operator' });
  const outbound = new OutboundPolicy(config, logger, metrics);
  // The refinement of operatorConfig guarantees the secret whenever the URL is set.
  const oauthClients =
    config.KEYCLOAK_URL && config.KEYCLOAK_CLIENT_SECRET
      ? new KeycloakClientRegistry({
          url: config.KEYCLOAK_URL,
          realm: config.KEYCLOAK_REALM,
          clientId: config.KEYCLOAK_CLIENT_ID,
          clientSecret: config.KEYCLOAK_CLIENT_SECRET,
          target: {
            vhost: config.RABBITMQ_PARTNER_VHOST,
            resourceServerId: config.RABBITMQ_RESOURCE_SERVER_ID,
          },
          timeoutMs: config.KEYCLOAK_HTTP_TIMEOUT_MS,
          logger,
          outbound,
        })
      : undefined;
  if (!oauthClients) {
    logger.warn(
      'KEYCLOAK_URL is not set: partner clients at the authorization server are not managed (OAuthClientReady=Unknown)',
    );
  }
  const operator = createOperator({
    kc,
    db,
    amqp,
    logger,
    registry: metrics.registry,
    identity: instanceId(config.INSTANCE_ID),
    watchNamespace: config.WATCH_NAMESPACE,
    leaseNamespace: config.POD_NAMESPACE,
    leaseName: config.OPERATOR_LEASE_NAME,
    leaseDurationSeconds: config.OPERATOR_LEASE_DURATION_SECONDS,
    resyncMs: config.OPERATOR_RESYNC_MS,
    oauthClients,
    outbound,
  });
  const http = createHttpServer({
    logger,
    metrics,
    limits: config,
    // A standby is ready too: readiness says its dependencies answer, not that it leads.
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'rabbitmq', check: () => pingAmqp(amqp) },
    ],
  });
  await http.listen({ port: config.PORT, host: '0.0.0.0' });
  operator.start();
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: async () => {
      await operator.stop();
      await http.close();
      await amqp.close();
      await db.destroy();
    },
  };
});
