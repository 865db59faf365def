// The operator assembled: leader election on a Lease, and the controller that runs only while this
// replica leads. Kept apart from main.ts so tests run it in-process against their own servers.
import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { OutboundPolicy } from '../core/outbound.js';
import type { Knex } from 'knex';
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Registry } from '../core/metrics.js';
import { Controller } from './controller.js';
import { TopologyRunner, type OAuthClientRegistry } from './executor.js';
import { KubeResources } from './kube.js';
import { LeaderElector } from './lease.js';
import { kubeSecretReader } from './secrets.js';
import { operatorMetrics } from './metrics.js';

interface OperatorOptions {
  kc: KubeConfig;
  db: Knex;
  amqp: AmqpConnectionManager;
  logger: Logger;
  registry: Registry;
  identity: string;
  watchNamespace: string;
  leaseNamespace: string;
  leaseName: string;
  leaseDurationSeconds: number;
  resyncMs?: number;
  oauthClients?: OAuthClientRegistry;
  /** Checks an integration's API URL when it is applied (the worker checks again at every call). */
  outbound?: OutboundPolicy;
}

export interface Operator {
  elector: LeaderElector;
  start(): void;
  stop(): Promise<void>;
}

export function createOperator(o: OperatorOptions): Operator {
  const metrics = operatorMetrics(o.registry);
  metrics.leader.set(0);
  const topology = new TopologyRunner(o.amqp, o.logger);
  let controller: Controller | undefined;
  // Leadership changes are serialized so a quick lose-then-win never runs two controllers, and run
  // beside the elector so that a slow start never delays the Lease renewals.
  let transition: Promise<void> = Promise.resolve();
  const then = (step: () => Promise<void>) => {
    transition = transition
      .then(step)
      .catch((e: unknown) =>
        o.logger.error({ err: toError(e) }, 'operator controller start or stop failed'),
      );
  };
  const stopController = async () => {
    const c = controller;
    controller = undefined;
    metrics.leader.set(0);
    await c?.stop();
  };
  const elector = new LeaderElector({
    api: o.kc.makeApiClient(CoordinationV1Api),
    name: o.leaseName,
    namespace: o.leaseNamespace,
    identity: o.identity,
    durationSeconds: o.leaseDurationSeconds,
    logger: o.logger,
    onStartedLeading: () =>
      then(async () => {
        controller = new Controller({
          kube: new KubeResources(o.kc, o.watchNamespace),
          deps: {
            db: o.db,
            topology,
            oauthClients: o.oauthClients,
            secrets: kubeSecretReader(o.kc, o.watchNamespace),
            outbound: o.outbound,
          },
          logger: o.logger,
          metrics,
          resyncMs: o.resyncMs,
        });
        metrics.leader.set(1);
        await controller.start();
      }),
    onStoppedLeading: () => then(stopController),
  });
  return {
    elector,
    start: () => elector.start(),
    stop: async () => {
      await elector.stop();
      await transition;
      await stopController();
      await topology.close();
    },
  };
}
