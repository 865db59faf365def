// Prints the import edges between the folders under services/ (a folder is services/<name>, or
// services/<name>/<sub> for domains and simulators), counting import statements, and the largest
// source files. Tests are left out: they may reach anywhere. Run: npx tsx scripts/import-edges.ts
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const GROUPED = new Set(['domains', 'simulators']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
  });
}

function folder(file: string): string {
  const parts = relative(ROOT, file).split('/');
  // A file directly in a grouped folder (a kit the simulators share) belongs to the group.
  return parts.slice(0, GROUPED.has(parts[1]) && parts.length > 3 ? 3 : 2).join('/');
}

const edges = new Map<string, number>();
const files = sources(join(ROOT, 'services'));
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    const target = resolve(dirname(file), match[1]);
    const [from, to] = [folder(file), folder(target)];
    if (from !== to) edges.set(`${from} -> ${to}`, (edges.get(`${from} -> ${to}`) ?? 0) + 1);
  }
}
const rows = [...edges].sort(([a], [b]) => a.localeCompare(b));
console.log(
  `${rows.length} folder edges, ${rows.reduce((n, [, c]) => n + c, 0)} import statements`,
);
for (const [edge, n] of rows) console.log(`${String(n).padStart(4)}  ${edge}`);
const sizes = files.map(
  (f) => [relative(ROOT, f), readFileSync(f, 'utf8').split('\n').length] as const,
);
console.log('largest files (lines):');
for (const [f, n] of sizes.sort((a, b) => b[1] - a[1]).slice(0, 10)) {
  console.log(`${String(n).padStart(5)}  ${f}`);
}
