// A Kubernetes API server for the operator's tests, speaking the real HTTP protocol for the paths
// the operator uses: list and watch (chunked JSON event stream) of namespaced custom resources,
// merge patches of objects and of their status subresource with resourceVersion conflicts,
// finalizer-gated deletion, get/create/replace of coordination.k8s.io Leases, and get of core v1
// Secrets.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { track } from './leaks.js';

type Json = Record<string, unknown>;
interface Meta {
  name: string;
  namespace: string;
  resourceVersion?: string;
  generation?: number;
  uid?: string;
  labels?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
}
export interface StoredObject extends Json {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  spec?: unknown;
  status?: unknown;
}
interface WatchEvent {
  rv: number;
  collection: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: StoredObject;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Json =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Json) } : {};
  for (const [k, v] of Object.entries(patch as Json)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const clone = <T>(v: T): T => structuredClone(v);

export interface FakeKube {
  url: string;
  kubeConfig(): KubeConfig;
  /** Creates or updates an object as `kubectl apply` would (a spec change bumps the generation). */
  apply(
    o: {
      apiVersion: string;
      kind: string;
      metadata: { name: string; namespace?: string };
      spec?: unknown;
    },
    plural: string,
  ): StoredObject;
  /** Creates or replaces a core v1 Secret; `data` values are plain text (stored base64, as the API server does). */
  putSecret(
    namespace: string,
    name: string,
    data: Record<string, string>,
    labels?: Record<string, string>,
  ): void;
  /** Deletes as the API server does: with finalizers only marks it, without removes it. */
  remove(plural: string, namespace: string, name: string): void;
  get(plural: string, namespace: string, name: string): StoredObject | undefined;
  /** Method and path of every request served, in order. */
  requests: string[];
  /** Ends every open watch, as an API server restart or a load balancer timeout would. */
  dropWatches(): void;
  close(): Promise<void>;
}

export async function startFakeKube(): Promise<FakeKube> {
  const objects = new Map<string, Map<string, StoredObject>>(); // collection path -> name -> object
  const events: WatchEvent[] = [];
  const watchers = new Set<{ collection: string; res: http.ServerResponse; from: number }>();
  const requests: string[] = [];
  let rv = 100;
  let uid = 0;

  // The core group ("") lives under /api, every other group under /apis.
  const collection = (group: string, version: string, ns: string, plural: string) =>
    `${group ? `/apis/${group}` : '/api'}/${version}/namespaces/${ns}/${plural}`;
  const bucket = (c: string) => {
    let m = objects.get(c);
    if (!m) objects.set(c, (m = new Map()));
    return m;
  };
  const emit = (c: string, type: WatchEvent['type'], object: StoredObject) => {
    const e: WatchEvent = {
      rv: Number(object.metadata.resourceVersion),
      collection: c,
      type,
      object: clone(object),
    };
    events.push(e);
    for (const w of watchers) {
      if (w.collection === c) w.res.write(`${JSON.stringify({ type, object: e.object })}\n`);
    }
  };
  const store = (c: string, o: StoredObject, type: WatchEvent['type']) => {
    o.metadata.resourceVersion = String(++rv);
    if (type === 'DELETED') bucket(c).delete(o.metadata.name);
    else bucket(c).set(o.metadata.name, o);
    emit(c, type, o);
  };
  /** An object marked for deletion goes once its last finalizer is removed. */
  const settle = (c: string, o: StoredObject) => {
    if (o.metadata.deletionTimestamp && !(o.metadata.finalizers ?? []).length) {
      store(c, o, 'DELETED');
    }
  };

  const send = (res: http.ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const status = (res: http.ServerResponse, code: number, reason: string, message: string) =>
    send(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });

  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      requests.push(
        `${req.method} ${url.pathname}${url.searchParams.get('watch') ? '?watch' : ''}`,
      );
      const body = raw ? (JSON.parse(raw) as Json) : undefined;
      const m =
        /^\/(?:apis\/([^/]+)|api)\/([^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/.exec(
          url.pathname,
        );
      if (!m) return status(res, 404, 'NotFound', `no route ${url.pathname}`);
      const [, group = '', version, ns, plural, name, sub] = m as unknown as [
        string,
        string | undefined,
        string,
        string,
        string,
        string | undefined,
        string | undefined,
      ];
      const c = collection(group, version, ns, plural);
      const items = bucket(c);

      if (req.method === 'GET' && !name) {
        if (url.searchParams.get('watch')) {
          const from = Number(url.searchParams.get('resourceVersion') ?? rv);
          res.writeHead(200, {
            'content-type': 'application/json',
            'transfer-encoding': 'chunked',
          });
          // The API server answers a watch at once and streams events later.
          res.flushHeaders();
          const w = { collection: c, res, from };
          watchers.add(w);
          for (const e of events) {
            if (e.collection === c && e.rv > from) {
              res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
            }
          }
          req.socket.on('close', () => watchers.delete(w));
          return;
        }
        return send(res, 200, {
          apiVersion: `${group}/${version}`,
          kind: 'List',
          metadata: { resourceVersion: String(rv) },
          items: [...items.values()].map(clone),
        });
      }
      const current = name ? items.get(name) : undefined;
      if (req.method === 'GET') {
        return current
          ? send(res, 200, current)
          : status(res, 404, 'NotFound', `${plural} ${name} not found`);
      }

      if (req.method === 'POST' && !name && body) {
        const o = body as StoredObject;
        if (items.has(o.metadata.name)) {
          return status(res, 409, 'AlreadyExists', `${plural} ${o.metadata.name} already exists`);
        }
        o.metadata = {
          ...o.metadata,
          namespace: ns,
          uid: `uid-${++uid}`,
          creationTimestamp: new Date().toISOString(),
        };
        store(c, o, 'ADDED');
        return send(res, 201, o);
      }
      if (!current) return status(res, 404, 'NotFound', `${plural} ${name} not found`);
      const sentRv = (body?.metadata as Meta | undefined)?.resourceVersion;
      if (sentRv !== undefined && sentRv !== current.metadata.resourceVersion) {
        return status(
          res,
          409,
          'Conflict',
          `the object has been modified; please apply your changes to the latest version`,
        );
      }

      if (req.method === 'PUT' && body) {
        const o = body as StoredObject;
        o.metadata = { ...current.metadata, ...o.metadata };
        store(c, o, 'MODIFIED');
        return send(res, 200, o);
      }
      if (req.method === 'PATCH' && body) {
        if (req.headers['content-type'] !== 'application/merge-patch+json') {
          return status(
            res,
            415,
            'UnsupportedMediaType',
            `expected application/merge-patch+json, got ${req.headers['content-type']}`,
          );
        }
        const next = clone(current);
        if (sub === 'status') {
          // The status subresource changes status only.
          next.status = mergePatch(current.status, body.status);
        } else {
          const {
            metadata,
            status: _ignored,
            ...rest
          } = body as { metadata?: Json; status?: unknown };
          const patched = mergePatch(next, rest) as StoredObject;
          patched.status = current.status;
          if (metadata?.finalizers !== undefined) {
            patched.metadata.finalizers = metadata.finalizers as string[];
          }
          Object.assign(next, patched);
        }
        store(c, next, 'MODIFIED');
        send(res, 200, next);
        settle(c, next);
        return;
      }
      return status(res, 405, 'MethodNotAllowed', `${req.method} is not served here`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const untrack = track(`fake Kubernetes API ${url}`);
  const collectionOf = (apiVersion: string, ns: string, plural: string) => {
    const [group, version] = apiVersion.includes('/')
      ? (apiVersion.split('/') as [string, string])
      : ['', apiVersion];
    return collection(group, version, ns, plural);
  };

  return {
    url,
    requests,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
        users: [{ name: 'operator', token: 'fake-token' }],
        contexts: [{ name: 'fake', cluster: 'fake', user: 'operator' }],
        currentContext: 'fake',
      });
      return kc;
    },
    apply(o, plural) {
      const ns = o.metadata.namespace ?? 'default';
      const c = collectionOf(o.apiVersion, ns, plural);
      const current = bucket(c).get(o.metadata.name);
      if (!current) {
        store(
          c,
          {
            ...clone(o),
            metadata: {
              ...clone(o.metadata),
              namespace: ns,
              generation: 1,
              uid: `uid-${++uid}`,
              creationTimestamp: new Date().toISOString(),
            },
          } as StoredObject,
          'ADDED',
        );
        return clone(bucket(c).get(o.metadata.name)!);
      }
      const next = clone(current);
      if (JSON.stringify(current.spec) !== JSON.stringify(o.spec)) {
        next.spec = clone(o.spec);
        next.metadata.generation = (current.metadata.generation ?? 1) + 1;
      }
      store(c, next, 'MODIFIED');
      return clone(next);
    },
    putSecret(ns, name, data, labels) {
      const c = collection('', 'v1', ns, 'secrets');
      const encoded = Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      );
      const current = bucket(c).get(name);
      const metadata = {
        ...(current?.metadata ?? {
          uid: `uid-${++uid}`,
          creationTimestamp: new Date().toISOString(),
        }),
        name,
        namespace: ns,
        labels,
      };
      store(
        c,
        { apiVersion: 'v1', kind: 'Secret', metadata, data: encoded } as StoredObject,
        current ? 'MODIFIED' : 'ADDED',
      );
    },
    remove(plural, ns, name) {
      for (const [c, items] of objects) {
        if (!c.endsWith(`/namespaces/${ns}/${plural}`)) continue;
        const o = items.get(name);
        if (!o) continue;
        if ((o.metadata.finalizers ?? []).length) {
          const next = clone(o);
          next.metadata.deletionTimestamp = new Date().toISOString();
          store(c, next, 'MODIFIED');
        } else store(c, o, 'DELETED');
      }
    },
    get(plural, ns, name) {
      for (const [c, items] of objects) {
        if (c.endsWith(`/namespaces/${ns}/${plural}`) && items.has(name)) {
          return clone(items.get(name)!);
        }
      }
      return undefined;
    },
    dropWatches() {
      for (const w of watchers) w.res.end();
      watchers.clear();
    },
    async close() {
      for (const w of watchers) w.res.end();
      watchers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      untrack();
    },
  };
}
