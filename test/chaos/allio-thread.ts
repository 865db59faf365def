// The ALLIO simulator on a thread of its own. ALLIO counts a request when it arrives; a simulator
// sharing the harness's event loop (traffic, WebSocket clients, Prometheus polling, invariant
// queries) would stamp requests late whenever that loop is busy, bunching them into one second on
// paper. Its own loop stamps them as they come, as a separate server would. It counts every caller
// under one quota, as ALLIO sees the hub's one egress address (pods in network namespaces reach it
// from addresses of their own).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AllioSimulatorStats } from '../../services/simulators/allio/server.js';
import { ROOT } from '../fuzz/child.js';

export interface AllioSimulatorThread {
  url: string;
  stats(): Promise<AllioSimulatorStats>;
  failNext(n: number, status: number, retryAfterSeconds?: number): void;
  setLatency(ms: number): void;
  close(): Promise<void>;
}

// Runs the built simulator (dist/, as the pods run): a thread does not get the test's TypeScript
// transform.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then(async ({ startAllioSimulator }) => {
  const sim = await startAllioSimulator({ token: workerData.token, host: workerData.host, oneEgress: true });
  parentPort.on('message', async (m) => {
    if (m.op === 'stats') return parentPort.postMessage({ id: m.id, value: sim.stats() });
    if (m.op === 'failNext') sim.failNext(...m.args);
    if (m.op === 'setLatency') sim.setLatency(m.args[0]);
    if (m.op === 'close') await sim.close();
    parentPort.postMessage({ id: m.id });
  });
  parentPort.postMessage({ ready: sim.url });
}, (e) => parentPort.postMessage({ error: String((e && e.stack) || e) }));
`;

/** `host`: the address to listen on (default 127.0.0.1). */
export async function startAllioSimulatorThread(
  token: string,
  host = '127.0.0.1',
): Promise<AllioSimulatorThread> {
  const module = pathToFileURL(path.join(ROOT, 'dist/services/simulators/allio/server.js')).href;
  const worker = new Worker(WORKER, { eval: true, workerData: { module, token, host } });
  const pending = new Map<number, (value: unknown) => void>();
  let next = 0;
  const url = await new Promise<string>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m: { ready?: string; error?: string; id?: number; value?: unknown }) => {
      if (m.ready) resolve(m.ready);
      else if (m.error) reject(new Error(`ALLIO simulator thread: ${m.error}`));
      else if (m.id !== undefined) {
        pending.get(m.id)?.(m.value);
        pending.delete(m.id);
      }
    });
  });
  const call = <T>(op: string, args: unknown[] = []) =>
    new Promise<T>((resolve) => {
      const id = next++;
      pending.set(id, resolve as (value: unknown) => void);
      worker.postMessage({ id, op, args });
    });
  return {
    url,
    stats: () => call<AllioSimulatorStats>('stats'),
    failNext: (n, status, retryAfterSeconds) =>
      void call('failNext', [n, status, retryAfterSeconds]),
    setLatency: (ms) => void call('setLatency', [ms]),
    async close() {
      await call('close');
      await worker.terminate();
    },
  };
}
