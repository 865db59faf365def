// Leak guard: resources a test opens are tracked, and a test file that ends with one still open
// fails (a worker left running, a pool left open) instead of hanging or slowing the suite. The
// check runs in test/support/leak-environment.cjs after the file's last afterAll hook.
type Registry = Map<number, string>;
const g = globalThis as typeof globalThis & {
  __hubOpenResources?: Registry;
  __hubNextResource?: number;
};
const open: Registry = (g.__hubOpenResources ??= new Map());

export function track(what: string): () => void {
  const id = (g.__hubNextResource = (g.__hubNextResource ?? 0) + 1);
  open.set(id, what);
  return () => open.delete(id);
}

export function openResources(): string[] {
  return [...open.values()];
}
