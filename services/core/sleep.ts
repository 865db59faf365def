// An abortable sleep: shutdown and LISTEN/NOTIFY wake-ups cut waits short instead of waiting them out.

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects). Returns true if it slept fully. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
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
