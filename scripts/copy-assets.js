// Copies the non-TypeScript files the services load at run time (Lua scripts, static pages, the
// kitchen's XML and Protobuf schemas) into dist/, beside the compiled code of their service: a
// service the build left out (the image compiles only the chart's entry points) gets none.
import { cpSync, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const ASSET = /\.(lua|html|css|svg|json|proto|xsd)$/;

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) walk(file);
    else if (ASSET.test(name)) cpSync(file, path.join('dist', file));
  }
}
for (const service of readdirSync('services')) {
  const dir = path.join('services', service);
  if (statSync(dir).isDirectory() && existsSync(path.join('dist', dir))) walk(dir);
}
walk('proto');
