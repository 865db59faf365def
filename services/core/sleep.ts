// An abortable sleep: shutdown and LISTEN/NOTIFY wake-ups cut waits short instead of waiting them out.

/**
 * Waits on each signal, each behind one 'abort' listener however many waits share the signal. A
 * consumer sleeps per message on its one stop signal; a listener per wait put 11 on it as soon as
 * 11 messages waited at once (the redeliveries after a broker reconnect), and Node warned of a leak.
 */
const waiting = new WeakMap<AbortSignal, { wakers: Set<() => void>; fire: () => void }>();

/** Calls `wake` once when `signal` aborts, until the returned function is called. */
function onAbort(signal: AbortSignal, wake: () => void): () => void {
  let entry = waiting.get(signal);
  if (!entry) {
    const wakers = new Set<() => void>();
    const fire = () => {
      waiting.delete(signal);
      for (const w of wakers) w();
      wakers.clear();
    };
    entry = { wakers, fire };
    waiting.set(signal, entry);
    signal.addEventListener('abort', fire, { once: true });
  }
  const { wakers, fire } = entry;
  wakers.add(wake);
  return () => {
    if (!wakers.delete(wake) || wakers.size > 0) return;
    signal.removeEventListener('abort', fire);
    if (waiting.get(signal)?.wakers === wakers) waiting.delete(signal);
  };
}

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects). Returns true if it slept fully. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const stopWaiting = signal
      ? onAbort(signal, () => {
          clearTimeout(timer);
          resolve(false);
        })
      : () => undefined;
    const timer = setTimeout(
      () => {
        stopWaiting();
        resolve(true);
      },
      Math.max(0, ms),
    );
  });
}

/** Resolves when `p` settles or `signal` aborts, whichever is first; the abort listener goes with it. */
export async function settledOrAborted(p: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  let stopWaiting = () => undefined as void;
  try {
    await Promise.race([
      p.then(
        () => undefined,
        () => undefined,
      ),
      new Promise<void>((resolve) => (stopWaiting = onAbort(signal, resolve))),
    ]);
  } finally {
    stopWaiting();
  }
}

/** A reusable wake-up: `wait(ms)` sleeps until the timeout or the next `wake()`. */
export class Waker {
  private controller = new AbortController();

  wait(ms: number, stop?: AbortSignal): Promise<boolean> {
    const signal = stop ? AbortSignal.any([this.controller.signal, stop]) : this.controller.signal;
    return sleep(ms, signal);
  }

  wake(): void {
    this.controller.abort();
    this.controller = new AbortController();
  }
}
