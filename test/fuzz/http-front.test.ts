/**
 * Fuzz: the HTTP front (src/kv/http-api.ts via startHttpApi) with a fake backend that applies
 * writes to a real KvStateMachine. Seeded and bounded (see fuzz-config.ts).
 *
 * Random request lines (methods, paths with random and malformed percent-encodings, query
 * strings), headers (X-Client-Id, X-Request-Seq, Content-Length, Content-Type, Expect,
 * Transfer-Encoding, with random values) and bodies go over a raw TCP socket to 127.0.0.1, one
 * connection per request. Every answer must be a well-formed HTTP/1.1 response with a 1xx/2xx/3xx/4xx
 * status (4xx with a JSON error body), or a clean close without a byte for what cannot be parsed;
 * never a 5xx, never an internal error logged, never a connection left hanging (each request has a
 * deadline). Afterwards the server still answers a normal request.
 */
import assert from 'node:assert/strict';
import { connect, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import * as fc from 'fast-check';
import type { KvServerStatus, MembersView } from '../../src/kv/api-types.js';
import { startHttpApi, type KvApiBackend, type KvHttpServer } from '../../src/kv/http-api.js';
import { encodeKvCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { checkAsync } from './fuzz-config.js';

const machine = new KvStateMachine();
let nextIndex = 1;
const logged: string[] = [];

const members: MembersView = {
  leader: 1,
  membershipIndex: 0,
  committed: true,
  joint: false,
  voters: [1, 2, 3].map((id) => ({ id, raft: `127.0.0.1:1000${id}`, http: `http://127.0.0.1:2000${id}`, match: 1 })),
  outgoing: [],
  learners: [],
};

const backend: KvApiBackend = {
  readMode: 'read-index',
  readLocal: (key) => {
    const found = machine.getWithMeta(key);
    const base = { index: machine.appliedIndex, revision: machine.revision };
    if (found === null) return { value: null, ...base };
    const { value, ...key_ } = found;
    return { value, ...base, key: key_ };
  },
  rangeLocal: (query) => ({ ...machine.range(query), index: machine.appliedIndex }),
  countLocal: (bounds) => ({ count: machine.count(bounds), revision: machine.revision, index: machine.appliedIndex }),
  confirmRead: () => Promise.resolve(machine.appliedIndex),
  commit: (command) => {
    const index = nextIndex++;
    return Promise.resolve({ index, result: machine.applyCommand(index, command) });
  },
  leaderUrl: (id) => `http://127.0.0.1:2000${id}`,
  leadership: () => ({ isLeader: true, leaderId: 1 }),
  nodeId: 1,
  voterIds: () => [1, 2, 3],
  transferLeadership: (to) => Promise.resolve({ leaderId: to ?? 2, previousLeaderId: 1, term: 2 }),
  members: () => members,
  changeMembership: () => Promise.resolve({ index: nextIndex++ }),
  isStopping: () => false,
  isNodeStopped: () => false,
  status: () => ({ id: 1, role: 'leader', term: 1, leaderId: 1 }) as unknown as KvServerStatus,
  metricsText: () => '# fuzz\n',
  countResponse: () => undefined,
  log: (line) => logged.push(line),
};

let server: KvHttpServer;
let port: number;

before(async () => {
  server = await startHttpApi(backend, { host: '127.0.0.1', port: 0 }, { headersTimeoutMs: 300, receiveTimeoutMs: 500, keepAliveTimeoutMs: 500, timeoutCheckIntervalMs: 50 });
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

// ---------------------------------------------------------------- requests

/** Text as latin1 "bytes" (every char 0..255), so the socket sends exactly these bytes. */
const byteChar = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));
const hexDigit = fc.constantFrom(...'0123456789abcdefABCDEF');
const pathChar = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...'abcxyz019-_.~/') },
  { weight: 3, arbitrary: fc.tuple(hexDigit, hexDigit).map(([a, b]) => `%${a}${b}`) },
  { weight: 1, arbitrary: fc.constantFrom('%', '%2', '%zz', '%%', '%00', '%2F', '%C3%A9', '%FF', '%ED%A0%80', '..', '//', '+', '?', ';', '@') },
);
const pathTail = fc.array(fc.oneof({ weight: 300, arbitrary: pathChar }, { weight: 1, arbitrary: byteChar }), { maxLength: 24 }).map((a) => a.join(''));
const pathArb = fc
  .tuple(
    fc.constantFrom('/v1/kv/', '/v1/kv/', '/v1/kv/', '/v1/kv', '/v1/members', '/v1/members/', '/v1/members/2', '/v1/members/4/promote', '/v1/leader/transfer', '/v1/txn', '/healthz', '/readyz', '/v1/status', '/metrics', '/', '/nope', '*', 'http://127.0.0.1/v1/kv/'),
    pathTail,
  )
  .map(([a, b]) => a + b);
const queryValue = fc.oneof(
  fc.constantFrom('', 'true', 'false', 'append', 'put', 'base64', 'utf8', '2', '-1', '0', '1e3', '9007199254740993', '10000', '10001', 'YQ', 'YQ==', 'eA', '_-8', '%FF', 'a', 'fuzz'),
  pathTail,
);
const queryArb = fc.option(
  fc
    .array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom('op', 'cas', 'cas-absent', 'stale', 'encoding', 'to', '', 'if-mod-revision'),
          fc.constantFrom('prefix', 'start', 'end', 'limit', 'next', 'keys-only', 'count-only'),
          pathTail,
        ),
        fc.option(queryValue),
      ),
      { maxLength: 4 },
    )
    .map((params) => '?' + params.map(([k, v]) => (v === null ? k : `${k}=${v}`)).join('&')),
);
const methodArb = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE') },
  { weight: 2, arbitrary: fc.constantFrom('HEAD', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'get', 'M-SEARCH', 'PROPFIND') },
  { weight: 1, arbitrary: fc.array(byteChar, { minLength: 1, maxLength: 8 }).map((a) => a.join('')) },
);
const printable = fc.array(fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), { maxLength: 40 }).map((a) => a.join(''));
const headerValue = fc.oneof({ weight: 12, arbitrary: printable }, { weight: 1, arbitrary: fc.array(byteChar, { maxLength: 20 }).map((a) => a.join('')) });
const headersArb = fc.record(
  {
    clientId: fc.option(fc.oneof(fc.constantFrom('client-1', 'c', 'x'.repeat(128), 'x'.repeat(129), ''), headerValue)),
    seq: fc.option(fc.oneof(fc.constantFrom('1', '2', '0', '-1', '01', '1.5', '9007199254740991', '9007199254740992', ' 3 ', 'abc'), headerValue)),
    contentType: fc.option(fc.oneof(fc.constantFrom('application/json', 'application/octet-stream', 'text/plain; charset=utf-8', 'multipart/form-data; boundary=x'), headerValue)),
    expect: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('100-continue', '100-CONTINUE', 'nothing') }),
    extra: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.tuple(fc.constantFrom('Host', 'Accept', 'X-Forwarded-For', 'Transfer-Encoding', 'Content-Length', 'Connection', 'Upgrade'), headerValue) }),
  },
  { noNullPrototype: true },
);
const bodyArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 4, arbitrary: fc.array(byteChar, { maxLength: 120 }).map((a) => a.join('')) },
  {
    weight: 2,
    arbitrary: fc
      .record({ id: fc.oneof(fc.integer({ min: -2, max: 9 }), fc.constant('4')), raft: fc.constantFrom('127.0.0.1:10004', 'nope', '[::1]:1', ''), http: fc.constantFrom('http://127.0.0.1:20004', 'ftp://x', ''), role: fc.constantFrom('learner', 'voter', 'boss') }, { noNullPrototype: true })
      .map((o) => JSON.stringify(o)),
  },
);
/** How the body is framed: an honest Content-Length, none, a wrong one, or chunked. */
const framingArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant<{ kind: 'length' } | { kind: 'none' } | { kind: 'chunked' } | { kind: 'wrong'; value: string }>({ kind: 'length' }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'chunked' as const }) },
  { weight: 1, arbitrary: fc.constantFrom('-1', 'abc', '1e2', '0x10', '99999999999999999999', '1048577', '5, 5', '').map((value) => ({ kind: 'wrong' as const, value })) },
  { weight: 1, arbitrary: fc.nat({ max: 200 }).map((n) => ({ kind: 'wrong' as const, value: String(n) })) },
);

const requestArb = fc.record({ method: methodArb, path: pathArb, query: queryArb, headers: headersArb, body: bodyArb, framing: framingArb }, { noNullPrototype: true });
type Request = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function render(r: Request): string {
  const lines = [`${r.method} ${r.path}${r.query ?? ''} HTTP/1.1`, 'Host: 127.0.0.1'];
  const h = r.headers;
  if (h.clientId !== null) lines.push(`X-Client-Id: ${h.clientId}`);
  if (h.seq !== null) lines.push(`X-Request-Seq: ${h.seq}`);
  if (h.contentType !== null) lines.push(`Content-Type: ${h.contentType}`);
  if (h.expect !== null) lines.push(`Expect: ${h.expect}`);
  if (h.extra !== null) lines.push(`${h.extra[0]}: ${h.extra[1]}`);
  let body = r.body;
  if (r.framing.kind === 'length') lines.push(`Content-Length: ${body.length}`);
  else if (r.framing.kind === 'wrong') lines.push(`Content-Length: ${r.framing.value}`);
  else if (r.framing.kind === 'chunked') {
    lines.push('Transfer-Encoding: chunked');
    body = (body.length > 0 ? `${body.length.toString(16)}\r\n${body}\r\n` : '') + '0\r\n\r\n';
  }
  lines.push('Connection: close');
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

// ---------------------------------------------------------------- responses

/** Deadline for one request: far above the server's 500 ms receive timeout. */
const REQUEST_DEADLINE_MS = 4000;

/** Sends `text` on a new connection; resolves with every byte received once the server closes it. */
function exchange(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => undefined); // a reset after the answer is a close too
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${REQUEST_DEADLINE_MS} ms; received so far: ${JSON.stringify(received.slice(0, 300))}`));
    }, REQUEST_DEADLINE_MS);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.write(text, 'latin1');
  });
}

interface Response {
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: string;
}

/** Splits what was received into responses; throws if it is not a sequence of well-formed ones. */
function parseResponses(raw: string, method: string): Response[] {
  const out: Response[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at);
    if (end < 0) throw new Error(`incomplete response head: ${JSON.stringify(raw.slice(at, at + 300))}`);
    const [statusLine, ...headerLines] = raw.slice(at, end).split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/.exec(statusLine!);
    if (m === null) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const status = Number(m[1]);
    const headers = new Map<string, string>();
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`bad header line ${JSON.stringify(line)}`);
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    at = end + 4;
    let body = '';
    // A HEAD answer has no body, unless the parser refused the request before it knew it was a HEAD.
    const headWithoutBody = method === 'HEAD' && (at >= raw.length || raw.startsWith('HTTP/', at));
    if (status >= 200 && status !== 204 && status !== 304 && !headWithoutBody) {
      const length = headers.get('content-length');
      if (length !== undefined) {
        assert.match(length, /^\d+$/, 'Content-Length of a response');
        body = raw.slice(at, at + Number(length));
        if (body.length !== Number(length)) throw new Error(`body shorter (${body.length}) than its Content-Length ${length}`);
        at += body.length;
      } else if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
        for (;;) {
          const lineEnd = raw.indexOf('\r\n', at);
          if (lineEnd < 0) throw new Error('incomplete chunk size line');
          const size = parseInt(raw.slice(at, lineEnd), 16);
          if (!Number.isInteger(size)) throw new Error(`bad chunk size ${JSON.stringify(raw.slice(at, lineEnd))}`);
          at = lineEnd + 2;
          if (size === 0) {
            if (raw.slice(at, at + 2) !== '\r\n') throw new Error('chunked body does not end with an empty line');
            at += 2;
            break;
          }
          body += raw.slice(at, at + size);
          if (raw.slice(at + size, at + size + 2) !== '\r\n') throw new Error('chunk not followed by CRLF');
          at += size + 2;
        }
      } else {
        body = raw.slice(at);
        at = raw.length;
      }
    }
    out.push({ status, headers, body });
  }
  return out;
}

function checkAnswer(request: Request, raw: string): void {
  const where = `request ${JSON.stringify(render(request).slice(0, 400))}\nanswer ${JSON.stringify(raw.slice(0, 600))}`;
  let responses: Response[];
  try {
    responses = parseResponses(raw, request.method);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${where}`);
  }
  // Nothing at all is a clean close of an unparseable request; otherwise a final answer must be there.
  if (responses.length === 0) return;
  assert.ok(responses.some((r) => r.status >= 200), `only interim responses\n${where}`);
  for (const r of responses) {
    assert.ok(r.status >= 100 && r.status < 500, `status ${r.status}\n${where}`);
    // An `Expect` other than 100-continue once got node:http's bare 417 (found by this fuzz); the
    // server now answers it in JSON like everything else.
    if (r.status >= 400 && (request.method !== 'HEAD' || r.body !== '')) {
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `content type of a ${r.status}\n${where}`);
      let body: unknown;
      try {
        body = JSON.parse(r.body);
      } catch {
        assert.fail(`a ${r.status} without a JSON body\n${where}`);
      }
      const b = body as { error?: { code?: unknown; message?: unknown }; swapped?: unknown };
      const isError = typeof b.error?.code === 'string' && typeof b.error.message === 'string';
      const isCasMiss = r.status === 409 && b.swapped === false;
      assert.ok(isError || isCasMiss, `a ${r.status} whose body is not an error object\n${where}`);
    }
  }
}

test('fuzz HTTP: random requests get well-formed answers below 500, or a clean close, and never hang', async (t) => {
  let answered = 0;
  let closedSilently = 0;
  const statuses = new Map<number, number>();
  const codes = new Map<string, number>();
  await checkAsync(
    'HTTP front',
    fc.asyncProperty(requestArb, async (request) => {
      const raw = await exchange(render(request));
      checkAnswer(request, raw);
      if (raw.length === 0) closedSilently++;
      else answered++;
      const first = /^HTTP\/1\.1 (\d{3})/.exec(raw);
      const code = /"code":"([^"]+)"(?:,"message":"malformed HTTP request \(([A-Z_]+))?/.exec(raw);
      if (code !== null) codes.set(code[2] ?? code[1]!, (codes.get(code[2] ?? code[1]!) ?? 0) + 1);
      if (first !== null) statuses.set(Number(first[1]), (statuses.get(Number(first[1])) ?? 0) + 1);
      const internal = logged.filter((line) => /internal error/i.test(line));
      assert.deepEqual(internal, [], `the server logged an internal error for ${JSON.stringify(render(request).slice(0, 400))}`);
    }),
    600,
  );
  t.diagnostic(`answered ${answered}, closed without an answer ${closedSilently}; statuses ${JSON.stringify([...statuses].sort((a, b) => a[0] - b[0]))}; error codes ${JSON.stringify([...codes])}`);
  // Enough variety that the fuzz reaches past the parser: successes and several kinds of refusal.
  assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0 && (statuses.get(404) ?? 0) > 0, JSON.stringify([...statuses]));

  // The server still answers a normal request, and a normal write and read.
  const health = parseResponses(await exchange('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 'GET');
  assert.equal(health[0]?.status, 200);
  const put = parseResponses(await exchange('PUT /v1/kv/fuzz-after HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'), 'PUT');
  assert.equal(put[0]?.status, 200, put[0]?.body);
  const get = parseResponses(await exchange('GET /v1/kv/fuzz-after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 'GET');
  assert.equal(get[0]?.status, 200, get[0]?.body);
  assert.equal((JSON.parse(get[0]!.body) as { value: string }).value, 'ok');
});

// ---------------------------------------------------------------- transactions

const jsonJunk = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 6 }), fc.constant([]), fc.constant({}), fc.constant(2 ** 60), fc.constant([[1]]));
const txnKeyArb = fc.oneof({ weight: 8, arbitrary: fc.constantFrom('a', 'b', 'fuzz', '', 'YQ==', 'Yg', '!!', '\u00e9', 'x'.repeat(1025)) }, { weight: 1, arbitrary: jsonJunk });
const maybe = { requiredKeys: [] as never[], noNullPrototype: true } as const;
const txnCompareArb = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record(
      {
        key: txnKeyArb,
        target: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('value', 'version', 'create', 'mod', 'exists') }, { weight: 1, arbitrary: jsonJunk }),
        op: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('=', '!=', '<', '>') }, { weight: 1, arbitrary: jsonJunk }),
        value: fc.oneof(fc.constantFrom('a', 'YQ==', '', '!!'), fc.nat({ max: 4 }), fc.boolean(), jsonJunk),
        extra: fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: jsonJunk }),
      },
      maybe,
    ),
  },
  { weight: 1, arbitrary: jsonJunk },
);
const txnArgsArb = fc.record({ key: txnKeyArb, value: fc.oneof(fc.constantFrom('v', 'YQ==', ''), jsonJunk) }, maybe);
const txnOpArb = fc.oneof(
  { weight: 4, arbitrary: fc.record({ put: txnArgsArb }, { noNullPrototype: true }) },
  { weight: 3, arbitrary: fc.record({ delete: txnArgsArb }, { noNullPrototype: true }) },
  { weight: 3, arbitrary: fc.record({ get: txnArgsArb }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.record({ put: txnArgsArb, get: txnArgsArb, zap: jsonJunk }, maybe) },
  { weight: 1, arbitrary: jsonJunk },
);
const txnBranchArb = fc.oneof({ weight: 8, arbitrary: fc.array(txnOpArb, { maxLength: 5 }) }, { weight: 1, arbitrary: jsonJunk }, { weight: 1, arbitrary: fc.constant(Array.from({ length: 129 }, () => ({ get: { key: 'a' } }))) });
/** Well-typed transactions (still with duplicate keys and absent keys now and then). */
const cleanKey = fc.constantFrom('a', 'b', 'c', 'fuzz');
const cleanTxnArb = fc
  .record(
    {
      compare: fc.array(
        fc.oneof(
          fc.record({ key: cleanKey, target: fc.constant('value'), op: fc.constantFrom('=', '!=', '<', '>'), value: fc.constantFrom('v', '', 'w') }, { noNullPrototype: true }),
          fc.record({ key: cleanKey, target: fc.constantFrom('version', 'create', 'mod'), op: fc.constantFrom('=', '!=', '<', '>'), value: fc.nat({ max: 30 }) }, { noNullPrototype: true }),
          fc.record({ key: cleanKey, target: fc.constant('exists'), op: fc.constantFrom('=', '!='), value: fc.boolean() }, { noNullPrototype: true }),
        ),
        { maxLength: 3 },
      ),
      then: fc.array(fc.oneof(fc.record({ put: fc.record({ key: cleanKey, value: fc.constantFrom('v', 'w', '') }, { noNullPrototype: true }) }, { noNullPrototype: true }), fc.record({ get: fc.record({ key: cleanKey }, { noNullPrototype: true }) }, { noNullPrototype: true }), fc.record({ delete: fc.record({ key: cleanKey }, { noNullPrototype: true }) }, { noNullPrototype: true })), { maxLength: 3 }),
      else: fc.array(fc.record({ get: fc.record({ key: cleanKey }, { noNullPrototype: true }) }, { noNullPrototype: true }), { maxLength: 2 }),
    },
    { noNullPrototype: true },
  )
  .map((o) => JSON.stringify(o));
const txnBodyArb = fc.oneof(
  { weight: 8, arbitrary: cleanTxnArb },
  {
    weight: 10,
    arbitrary: fc
      .record(
        {
          compare: fc.oneof({ weight: 8, arbitrary: fc.array(txnCompareArb, { maxLength: 4 }) }, { weight: 1, arbitrary: jsonJunk }),
          then: txnBranchArb,
          else: txnBranchArb,
          encoding: fc.oneof(fc.constantFrom('base64', 'utf8'), jsonJunk),
          other: jsonJunk,
        },
        maybe,
      )
      .map((o) => JSON.stringify(o)),
  },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom('', '{', 'null', '[]', '"x"', '{"then":[{"put":{"key":"\\ud800","value":"x"}}]}'), fc.string({ maxLength: 30 })) },
);

test('fuzz HTTP: random POST /v1/txn bodies answer 200 or 4xx with a code, never 500', async () => {
  const seen = new Map<number, number>();
  await checkAsync(
    'HTTP txn bodies',
    fc.asyncProperty(txnBodyArb, fc.boolean(), async (json, session) => {
      const body = Buffer.from(json, 'utf8');
      const sessionHeaders = session ? `X-Client-Id: fuzz-txn\r\nX-Request-Seq: ${nextIndex}\r\n` : '';
      const request = `POST /v1/txn HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n${sessionHeaders}Content-Length: ${body.length}\r\n\r\n${body.toString('latin1')}`;
      const [answer] = parseResponses(await exchange(request), 'POST');
      assert.ok(answer !== undefined, json);
      seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
      const parsed = JSON.parse(answer.body) as Record<string, unknown>;
      if (answer.status === 200) {
        assert.equal(typeof parsed['succeeded'], 'boolean', json);
        assert.ok(Array.isArray(parsed['results']), json);
        assert.equal(answer.headers.get('x-tsraft-revision'), String(parsed['revision']));
      } else {
        assert.ok(answer.status === 400 || answer.status === 413 || answer.status === 409, `${answer.status} for ${json}: ${answer.body.slice(0, 300)}`);
        assert.equal(typeof (parsed['error'] as { code?: unknown }).code, 'string', json);
      }
      assert.deepEqual(logged.filter((line) => /internal error/i.test(line)), [], json);
    }),
    300,
  );
  assert.ok((seen.get(200) ?? 0) > 10 && (seen.get(400) ?? 0) > 10, JSON.stringify([...seen]));
});

// ---------------------------------------------------------------- ranges

const rangeKey = fc.oneof(fc.constantFrom('', 'f', 'fu', 'fuzz', 'fuzz-after', 'k', 'z', '%00', '%FF', '%FF%FF'), pathTail);
const rare = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: arb });
const rangeQueryArb = fc
  .record(
    {
      mode: fc.constantFrom('prefix', 'prefix', 'range', 'range', 'anything'),
      prefix: fc.option(rangeKey),
      start: fc.option(rangeKey),
      end: fc.option(rangeKey),
      limit: rare(fc.oneof(fc.constantFrom('1', '2', '3', '10000', '10001', '0', '-1', 'x', '1.0', ''), fc.nat({ max: 12_000 }).map(String))),
      next: rare(fc.oneof(fc.constantFrom('', 'ZnV6eg', 'ZnV6eg==', '_w', '!!', 'AAAA', 'A', 'Zm', 'Zg'), pathTail)),
      keysOnly: rare(fc.constantFrom('true', 'false', 'yes', '')),
      countOnly: rare(fc.constantFrom('true', 'false', '1')),
      encoding: rare(fc.constantFrom('base64', 'utf8', 'auto', 'hex')),
      stale: rare(fc.constantFrom('true', 'false')),
    },
    { noNullPrototype: true },
  )
  .map((q) => ({
    ...q,
    prefix: q.mode === 'prefix' ? (q.prefix ?? '') : q.mode === 'range' ? null : q.prefix,
    start: q.mode === 'range' ? (q.start ?? '') : q.mode === 'prefix' ? null : q.start,
    end: q.mode === 'prefix' ? null : q.end,
  }));

test('fuzz HTTP: GET /v1/kv ranges answer 200 with sorted, bounded pages or 400 with a code', async () => {
  // Keys to find: text and bytes, sharing prefixes.
  for (const key of ['f', 'fu', 'fuzz', 'fuzz/1', 'fuzz/2', 'fuzz\u00ff', 'k', 'z']) {
    const index = nextIndex++;
    machine.applyCommand(index, encodeKvCommand({ op: 'put', clientId: '', seq: 0, key: new TextEncoder().encode(key), value: new Uint8Array([1]) }));
  }
  const seen = new Map<number, number>();
  await checkAsync(
    'HTTP ranges',
    fc.asyncProperty(rangeQueryArb, async (q) => {
      const params = Object.entries({ prefix: q.prefix, start: q.start, end: q.end, limit: q.limit, next: q.next, 'keys-only': q.keysOnly, 'count-only': q.countOnly, encoding: q.encoding, stale: q.stale })
        .filter(([, v]) => v !== null)
        .map(([k, v]) => `${k}=${v as string}`);
      const request = `GET /v1/kv?${params.join('&')} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
      const [answer] = parseResponses(await exchange(request), 'GET');
      assert.ok(answer !== undefined, request);
      const body = JSON.parse(answer.body) as Record<string, unknown>;
      seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
      if (answer.status === 400) {
        assert.equal(typeof (body['error'] as { code?: unknown }).code, 'string', request);
        return;
      }
      assert.equal(answer.status, 200, `${request}\n${answer.body.slice(0, 300)}`);
      assert.equal(answer.headers.get('x-tsraft-revision'), String(body['revision']));
      if (q.countOnly === 'true') {
        assert.ok(Number.isSafeInteger(body['count']), request);
        return;
      }
      const kvs = body['kvs'] as { key: string; keyEncoding?: string }[];
      const limit = q.limit === null ? 1000 : Number(q.limit);
      assert.ok(kvs.length <= limit, request);
      const bytes = kvs.map((kv) => Buffer.from(kv.key, q.encoding === 'base64' || kv.keyEncoding === 'base64' ? 'base64' : 'utf8'));
      for (let i = 1; i < bytes.length; i++) assert.ok(Buffer.compare(bytes[i - 1]!, bytes[i]!) < 0, `unsorted page for ${request}`);
      assert.equal(body['more'] === true, typeof body['next'] === 'string', request);
      const internal = logged.filter((line) => /internal error/i.test(line));
      assert.deepEqual(internal, [], request);
    }),
    300,
  );
  assert.ok((seen.get(200) ?? 0) > 10 && (seen.get(400) ?? 0) > 10, JSON.stringify([...seen]));
});

test('range pages stay bounded: 4 MiB of keys and values, 8 MiB of JSON, at least one key, with more and next', async () => {
  const put = (key: string, value: Uint8Array): void => {
    const index = nextIndex++;
    machine.applyCommand(index, encodeKvCommand({ op: 'put', clientId: '', seq: 0, key: new TextEncoder().encode(key), value }));
  };
  const MiB = 1024 * 1024;
  for (let i = 0; i < 5; i++) put(`big/${i}`, new Uint8Array(MiB - 16).fill(0x61));
  // Control characters: valid UTF-8, six bytes of JSON each (\u0001).
  for (let i = 0; i < 3; i++) put(`ctl/${i}`, new Uint8Array(MiB - 16).fill(0x01));
  const page = async (query: string): Promise<{ body: Record<string, unknown>; bytes: number }> => {
    const [answer] = parseResponses(await exchange(`GET /v1/kv?${query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), 'GET');
    assert.equal(answer?.status, 200, answer?.body.slice(0, 200));
    return { body: JSON.parse(answer.body) as Record<string, unknown>, bytes: answer.body.length };
  };
  const big = await page('prefix=big/');
  assert.equal((big.body['kvs'] as unknown[]).length, 4, 'four values of just under 1 MiB fit in 4 MiB, a fifth does not');
  assert.equal(big.body['more'], true);
  const rest = await page(`prefix=big/&next=${big.body['next'] as string}`);
  assert.deepEqual((rest.body['kvs'] as { key: string }[]).map((kv) => kv.key), ['big/4']);
  assert.equal(rest.body['more'], false);
  const ctl = await page('prefix=ctl/');
  assert.equal((ctl.body['kvs'] as unknown[]).length, 1, 'one ~6 MiB JSON item; a second would pass 8 MiB');
  assert.ok(ctl.bytes < 8 * MiB);
  assert.equal(ctl.body['more'], true);
  // keys-only pages are not cut by the values.
  const keys = await page('prefix=ctl/&keys-only=true');
  assert.equal((keys.body['kvs'] as unknown[]).length, 3);
  for (const k of ['big/', 'ctl/']) for (let i = 0; i < 5; i++) {
    const index = nextIndex++;
    machine.applyCommand(index, encodeKvCommand({ op: 'delete', clientId: '', seq: 0, key: new TextEncoder().encode(`${k}${i}`) }));
  }
});
