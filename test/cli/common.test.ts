/** The CLI's parsers and the status table, without processes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError, formatPeers, formatTable, parseBytes, parseEndpoints, parseHostPort, parseHttpUrl, parsePeers } from '../../src/cli/common.js';
import { statusTable } from '../../src/cli/status.js';

describe('parsePeers', () => {
  it('parses and sorts a peer list, and formats it back', () => {
    const text = '1=127.0.0.1:7001/http://127.0.0.1:8001, 0=localhost:7000/http://localhost:8000/';
    const peers = parsePeers(text);
    assert.deepEqual(peers, [
      { id: 0, raftHost: 'localhost', raftPort: 7000, httpUrl: 'http://localhost:8000' },
      { id: 1, raftHost: '127.0.0.1', raftPort: 7001, httpUrl: 'http://127.0.0.1:8001' },
    ]);
    assert.deepEqual(parsePeers(formatPeers(peers)), peers);
  });

  it('formats IPv6 hosts in brackets, so the list parses back', () => {
    const peers = parsePeers('0=[::1]:7000/http://[::1]:8000,1=[fd00::2]:7001/http://[fd00::2]:8001');
    assert.deepEqual(peers.map((p) => p.raftHost), ['::1', 'fd00::2']);
    assert.equal(formatPeers(peers), '0=[::1]:7000/http://[::1]:8000,1=[fd00::2]:7001/http://[fd00::2]:8001');
    assert.deepEqual(parsePeers(formatPeers(peers)), peers);
  });

  const bad: [string, RegExp][] = [
    ['', /empty peer list/],
    ['0=127.0.0.1:7000/http://127.0.0.1:8000,0=127.0.0.1:7001/http://127.0.0.1:8001', /duplicate node id 0/],
    ['0=127.0.0.1:7000/http://127.0.0.1:8000,1=127.0.0.1:7000/http://127.0.0.1:8001', /same raft address/],
    ['0=127.0.0.1:7000/http://127.0.0.1:8000,1=127.0.0.1:7001/http://127.0.0.1:8000', /same HTTP URL/],
    ['-1=127.0.0.1:7000/http://127.0.0.1:8000', /non-negative integer/],
    ['0=127.0.0.1:7000', /no HTTP URL/],
    ['0=127.0.0.1/http://127.0.0.1:8000', /expected HOST:PORT/],
    ['0=999.0.0.1:7000/http://127.0.0.1:8000', /invalid host/],
    ['0=127.0.0.1:0/http://127.0.0.1:8000', /out of range/],
    ['0=127.0.0.1:65536/http://127.0.0.1:8000', /out of range/],
    ['0=127.0.0.1:7000/http://127.0.0.1', /explicit port/],
    ['0=127.0.0.1:7000/http://127.0.0.1:8000/v1', /no path/],
    ['0=127.0.0.1:7000/ftp://127.0.0.1:8000', /only http:\/\/ and https:\/\//],
  ];
  for (const [text, message] of bad) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(() => parsePeers(text), (error: unknown) => error instanceof UsageError && message.test(error.message));
    });
  }
});

describe('other parsers', () => {
  it('host:port, URLs, endpoints, byte counts', () => {
    assert.deepEqual(parseHostPort('0.0.0.0:80', 'x'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseHostPort('[::1]:9000', 'x'), { host: '::1', port: 9000 });
    assert.deepEqual(parseHostPort('127.0.0.1:0', 'x', true), { host: '127.0.0.1', port: 0 });
    assert.throws(() => parseHostPort('127.0.0.1:0', 'x'), UsageError);
    assert.throws(() => parseHostPort('127.0.0.1:http', 'x'), UsageError);
    assert.equal(parseHttpUrl('http://127.0.0.1:8000/', 'x'), 'http://127.0.0.1:8000');
    assert.deepEqual(parseEndpoints('http://a:1, http://b:2,,http://a:1'), ['http://a:1', 'http://b:2']);
    assert.throws(() => parseEndpoints(' , '), UsageError);
    assert.equal(parseBytes('64m', 'x'), 64 * 1024 * 1024);
    assert.equal(parseBytes('1000', 'x'), 1000);
    assert.throws(() => parseBytes('-5', 'x'), UsageError);
  });

  it('formatTable aligns columns', () => {
    const text = formatTable(
      [
        ['a', 'bb'],
        ['ccc', '1'],
      ],
      new Set([1]),
    );
    assert.equal(text, 'a    bb\n---  --\nccc   1');
  });
});

describe('statusTable', () => {
  it('computes lag against the leader and shows down nodes', () => {
    const rows = statusTable([
      { endpoint: 'http://n0', status: { id: 0, role: 'leader', term: 3, leaderId: 0, commitIndex: 10, appliedIndex: 10 } },
      { endpoint: 'http://n1', status: { id: 1, role: 'follower', term: 3, leaderId: 0, commitIndex: 8, appliedIndex: 7 } },
      { endpoint: 'http://n2', error: 'ECONNREFUSED' },
    ]);
    assert.deepEqual(rows[0], ['node', 'role', 'term', 'commit', 'applied', 'lag', 'leader', 'http']);
    assert.deepEqual(rows[1], ['0', 'leader', '3', '10', '10', '0', '0 (self)', 'http://n0']);
    assert.deepEqual(rows[2], ['1', 'follower', '3', '8', '7', '3', '0', 'http://n1']);
    assert.equal(rows[3]![1], 'down');
  });
});
