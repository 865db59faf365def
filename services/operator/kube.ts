// The operator's Kubernetes calls: list/watch of the hub's custom resources (informers), merge
// patches of their finalizers and of their status subresource.
import {
  CustomObjectsApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import {
  GROUP,
  KINDS,
  VERSION,
  type Kind,
  type Observed,
  type ResourceStatus,
} from './reconcile.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export type ResourceInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

/**
 * The resource as the reconciler sees it. Custom objects arrive as plain JSON (timestamps are
 * strings, whatever the client's generic type says), and list items carry no apiVersion/kind.
 */
export function toObserved(kind: Kind, o: KubernetesObject): Observed {
  const raw = o as unknown as Omit<Observed, 'kind' | 'apiVersion'>;
  const ts: unknown = raw.metadata.deletionTimestamp;
  return {
    ...raw,
    apiVersion: `${GROUP}/${VERSION}`,
    kind,
    metadata: {
      ...raw.metadata,
      deletionTimestamp:
        ts instanceof Date ? ts.toISOString() : typeof ts === 'string' ? ts : undefined,
    },
  };
}

export class KubeResources {
  private readonly api: CustomObjectsApi;

  constructor(
    private readonly kc: KubeConfig,
    readonly namespace: string,
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  informer(kind: Kind): ResourceInformer {
    const plural = KINDS[kind].plural;
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${this.namespace}/${plural}`;
    const list = async () => {
      // The generated client types custom objects as `any`; the list has the Kubernetes list shape.
      return (await this.api.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural,
      })) as KubernetesListObject<KubernetesObject>;
    };
    return makeInformer(this.kc, path, list);
  }

  /** Sets the finalizers; the resourceVersion makes a concurrent change fail with 409 instead of being lost. */
  async setFinalizers(o: Observed, finalizers: string[]): Promise<Observed> {
    const body = { metadata: { finalizers, resourceVersion: o.metadata.resourceVersion } };
    const patched = (await this.api.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: o.metadata.namespace,
        plural: KINDS[o.kind].plural,
        name: o.metadata.name,
        body,
      },
      mergePatch,
    )) as KubernetesObject;
    return toObserved(o.kind, patched);
  }

  async patchStatus(o: Observed, status: ResourceStatus): Promise<void> {
    await this.api.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: o.metadata.namespace,
        plural: KINDS[o.kind].plural,
        name: o.metadata.name,
        body: { status },
      },
      mergePatch,
    );
  }
}
