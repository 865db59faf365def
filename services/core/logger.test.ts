import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, test } from '@jest/globals';
import { destination as pinoDestination } from 'pino';
import { createLogger, logsWritten } from './logger.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function fileLogger() {
  const dir = mkdtempSync(path.join(tmpdir(), 'logs-written-'));
  dirs.push(dir);
  const file = path.join(dir, 'out.log');
  // What pino uses for stdout by default: sonic-boom writing asynchronously.
  const destination = pinoDestination({ dest: file, sync: false, mkdir: true });
  return { logger: createLogger({ level: 'info' }, destination), destination, file };
}

const messages = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { msg: string }).msg);

test('logsWritten resolves once every line logged so far is in the destination, in order', async () => {
  const { logger, destination, file } = fileLogger();
  await new Promise((resolve) => destination.once('ready', resolve));
  // The first line goes out at once in a write of its own; the next ones wait behind it. Exiting
  // here would race that write against the exit handler's synchronous one.
  logger.info('started');
  logger.info('shutting down');
  logger.info('stopped');
  await logsWritten(logger);
  expect(messages(file)).toEqual(['started', 'shutting down', 'stopped']);
  destination.end();
});

test('logsWritten resolves at once when nothing is being written', async () => {
  const { logger, destination } = fileLogger();
  await new Promise((resolve) => destination.once('ready', resolve));
  const t0 = Date.now();
  await logsWritten(logger, 5_000);
  expect(Date.now() - t0).toBeLessThan(1_000);
  destination.end();
});
