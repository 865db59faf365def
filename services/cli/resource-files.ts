// Reads hub resources from YAML as the CLI's `-f` takes them: files, directories (their .yaml and
// .yml files, in name order, not recursing, like kubectl) or "-" for stdin.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

/** One YAML document and where it came from, for messages that say which one is wrong. */
export interface SourcedDocument {
  source: string;
  /** 1-based position of the document in its source. */
  index: number;
  doc: unknown;
}

const YAML_FILE = /\.ya?ml$/i;

async function expand(p: string): Promise<string[]> {
  if (p === '-') return [p];
  if (!(await stat(p)).isDirectory()) return [p];
  const names = (await readdir(p, { withFileTypes: true }))
    .filter((e) => e.isFile() && YAML_FILE.test(e.name))
    .map((e) => e.name);
  return names.sort().map((n) => path.join(p, n));
}

/**
 * Every document of every source, in order; empty documents (a trailing `---`) are dropped. A file
 * that is not valid YAML stops the whole read, so nothing is acted on from a half-read set.
 */
export async function readResourceFiles(
  paths: readonly string[],
  readStdin: () => Promise<string>,
): Promise<SourcedDocument[]> {
  const out: SourcedDocument[] = [];
  for (const p of paths) {
    for (const source of await expand(p)) {
      const text = source === '-' ? await readStdin() : await readFile(source, 'utf8');
      const docs = parseAllDocuments(text);
      const errors = docs.flatMap((d) => d.errors.map((e) => e.message));
      if (errors.length) {
        throw new Error(
          `${source === '-' ? 'stdin' : source} is not valid YAML: ${errors.join('; ')}`,
        );
      }
      docs.forEach((d, i) => {
        const doc = d.toJS() as unknown;
        if (doc !== null && doc !== undefined) {
          out.push({ source: source === '-' ? 'stdin' : source, index: i + 1, doc });
        }
      });
    }
  }
  return out;
}
