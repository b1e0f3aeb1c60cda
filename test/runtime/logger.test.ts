import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, formatJson, formatPretty, loggerFromLines, type LogFormat, type LogLevel } from '../../src/runtime/logger.js';
import { parseLogFormat, parseLogLevel } from '../../src/cli/node-logging.js';
import { UsageError } from '../../src/cli/common.js';

const FIXED = new Date('2026-12-02T00:20:00.123Z');

function capture(format: LogFormat, level: LogLevel = 'info', node: number | null = 2): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ node, level, format, now: () => FIXED, write: (line) => lines.push(line) }) };
}

test('pretty: time, level, node, message, then key=value fields, on one line', () => {
  const { lines, logger } = capture('pretty');
  logger.info('election won: this node leads', { term: 3, votes: [0, 2] });
  assert.deepEqual(lines, ['2026-12-02T00:20:00.123Z INFO  node=2 election won: this node leads term=3 votes=0,2']);
});

test('pretty: a component leads the message, as the plain lines of earlier versions did', () => {
  const { lines, logger } = capture('pretty');
  logger.child({ component: 'transport' }).warn('lost connection to node 1', { peer: 1 });
  assert.deepEqual(lines, ['2026-12-02T00:20:00.123Z WARN  node=2 transport: lost connection to node 1 peer=1']);
});

test('pretty: values with spaces, quotes, = or line breaks are quoted; a message stays on one line', () => {
  const { lines, logger } = capture('pretty');
  logger.error('failed\nbadly', { reason: 'disk "full" now', eq: 'a=b', empty: '', nl: 'x\ny', skipped: undefined });
  assert.equal(lines.length, 1);
  assert.equal(lines[0], '2026-12-02T00:20:00.123Z ERROR node=2 failed\\nbadly reason="disk \\"full\\" now" eq="a=b" empty="" nl="x\\ny"');
});

test('json: one object per line with time, level, node, msg and the fields', () => {
  const { lines, logger } = capture('json');
  logger.warn('refusing connection', { from: '10.0.0.1:5000', why: 'line\nbreak "quoted"', count: 2 });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes('\n'));
  assert.deepEqual(JSON.parse(lines[0]!), {
    time: '2026-12-02T00:20:00.123Z',
    level: 'warn',
    node: 2,
    msg: 'refusing connection',
    from: '10.0.0.1:5000',
    why: 'line\nbreak "quoted"',
    count: 2,
  });
});

test('json: fields cannot hide the record keys; odd values never throw', () => {
  const { lines, logger } = capture('json', 'info', null);
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = cyclic;
  logger.info('odd', { msg: 'shadow', level: 'x', big: 10n, nan: Number.NaN, error: new Error('boom'), cyclic, bytes: new Uint8Array(3), set: new Set([1]) });
  const record = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(record['msg'], 'odd');
  assert.equal(record['level'], 'info');
  assert.equal(record['node'], null);
  assert.equal(record['field_msg'], 'shadow');
  assert.equal(record['field_level'], 'x');
  assert.equal(record['big'], '10');
  assert.equal(record['nan'], 'NaN');
  assert.equal(record['error'], 'boom');
  assert.deepEqual(record['cyclic'], { a: 1, self: '[cycle]' });
  assert.equal(record['bytes'], '<3 bytes>');
  assert.deepEqual(record['set'], [1]);
});

test('levels below the minimum are dropped; enabled() says so', () => {
  const { lines, logger } = capture('json', 'warn');
  logger.debug('d');
  logger.info('i');
  logger.warn('w');
  logger.error('e');
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { level: string }).level), ['warn', 'error']);
  assert.equal(logger.enabled('info'), false);
  assert.equal(logger.enabled('error'), true);
  const all = capture('pretty', 'debug');
  all.logger.debug('d');
  assert.equal(all.lines.length, 1);
});

test('a sink that throws does not reach the caller', () => {
  const logger = createLogger({ write: () => { throw new Error('EPIPE'); } });
  assert.doesNotThrow(() => logger.error('lost'));
});

test('loggerFromLines: old line callbacks get `component: msg key=value`, debug left out', () => {
  const lines: string[] = [];
  const logger = loggerFromLines((line) => lines.push(line));
  logger.info('plain');
  logger.child({ component: 'raft' }).info('campaign started', { term: 4 });
  logger.debug('noise');
  assert.deepEqual(lines, ['plain', 'raft: campaign started term=4']);
});

test('formatters on a record directly', () => {
  const record = { time: FIXED.toISOString(), level: 'info' as const, node: 0, msg: 'm', fields: {} };
  assert.equal(formatPretty(record), '2026-12-02T00:20:00.123Z INFO  node=0 m');
  assert.equal(formatJson(record), '{"time":"2026-12-02T00:20:00.123Z","level":"info","node":0,"msg":"m"}');
});

test('--log-format and --log-level: defaults, and usage errors that name the choices', () => {
  assert.equal(parseLogFormat(undefined), 'pretty');
  assert.equal(parseLogFormat('json'), 'json');
  assert.equal(parseLogLevel(undefined), 'info');
  assert.equal(parseLogLevel('debug'), 'debug');
  assert.throws(() => parseLogFormat('xml'), (e: unknown) => e instanceof UsageError && /pretty, json.*"xml"/.test(e.message));
  assert.throws(() => parseLogLevel('loud'), (e: unknown) => e instanceof UsageError && /debug, info, warn, error.*"loud"/.test(e.message));
});
