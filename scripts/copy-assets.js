// Copies the non-TypeScript files the services load at run time (Lua scripts, static pages) into dist/.
import { cpSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const ASSET = /\.(lua|html|css|svg|json|proto|xsd)$/;

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) walk(file);
    else if (ASSET.test(name)) cpSync(file, path.join('dist', file));
  }
}
walk('services');
walk('proto');
