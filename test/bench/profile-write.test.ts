/**
 * bench:profile without a cluster: the category of single frames, the walk up the stack (socket
 * writes by their caller, uncategorised frames by their nearest categorised ancestor), the window
 * cut by sample times, and the file-name and /proc helpers, on a hand-made .cpuprofile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyseProfile, frameCategory, pidOfProfileFile, threadName, type CpuProfile, type ProfileNode } from '../../bench/profile-write.js';

const SRC = 'file:///work/main/dist/src';

function frame(functionName: string, url: string): ProfileNode['callFrame'] {
  return { functionName, url, lineNumber: 0, columnNumber: 0, scriptId: 0 };
}

// (root)
// ├─ (program) 2, (idle) 3, (garbage collector) 4
// ├─ processTicksAndRejections 5 (node internals)
// │  ├─ commit kv/replica 6
// │  │  ├─ step core/raft 7 ─ send transport/tcp 8 ─ _write streams 9 ─ writeBuffer 11 (socket)
// │  │  └─ insert node_modules/sorted-btree 17
// │  └─ write node:internal/fs/promises 12 ─ writeBuffer 15 (file)
// ├─ parserOnIncoming node:_http_server 10 ─ serve kv/http-kv-routes 13 ─ writev 14 (socket)
// ├─ onStreamRead node:internal/stream_base_commons 16
// └─ main cli/node 18
const nodes: ProfileNode[] = [
  { id: 1, callFrame: frame('(root)', ''), children: [2, 3, 4, 5, 10, 16, 18] },
  { id: 2, callFrame: frame('(program)', '') },
  { id: 3, callFrame: frame('(idle)', '') },
  { id: 4, callFrame: frame('(garbage collector)', '') },
  { id: 5, callFrame: frame('processTicksAndRejections', 'node:internal/process/task_queues'), children: [6, 12] },
  { id: 6, callFrame: frame('commit', `${SRC}/kv/replica.js`), children: [7, 17] },
  { id: 7, callFrame: frame('step', `${SRC}/core/raft.js`), children: [8] },
  { id: 8, callFrame: frame('send', `${SRC}/transport/tcp.js`), children: [9] },
  { id: 9, callFrame: frame('_write', 'node:internal/streams/writable'), children: [11] },
  { id: 10, callFrame: frame('parserOnIncoming', 'node:_http_server'), children: [13] },
  { id: 11, callFrame: frame('writeBuffer', '') },
  { id: 12, callFrame: frame('write', 'node:internal/fs/promises'), children: [15] },
  { id: 13, callFrame: frame('serve', `${SRC}/kv/http-kv-routes.js`), children: [14] },
  { id: 14, callFrame: frame('writev', '') },
  { id: 15, callFrame: frame('writeBuffer', '') },
  { id: 16, callFrame: frame('onStreamRead', 'node:internal/stream_base_commons') },
  { id: 17, callFrame: frame('insert', 'file:///work/main/node_modules/sorted-btree/b+tree.js') },
  { id: 18, callFrame: frame('main', `${SRC}/cli/node.js`) },
];

/** One sample of each leaf every 100 µs from startTime 1000 (times 1100, 1200, ...). */
function profileOf(samples: number[]): CpuProfile {
  return { nodes, startTime: 1000, endTime: 1000 + 100 * (samples.length + 1), samples, timeDeltas: samples.map(() => 100) };
}

test('frameCategory: tsraft directories, node: modules, the special frames', () => {
  assert.equal(frameCategory(frame('x', `${SRC}/kv/http-io.js`)), 'HTTP');
  assert.equal(frameCategory(frame('x', `${SRC}/kv/state-machine.js`)), 'KV commands/state machine');
  assert.equal(frameCategory(frame('x', `${SRC}/kv/watch-hub.js`)), 'KV commands/state machine');
  assert.equal(frameCategory(frame('x', `${SRC}/core/replication.js`)), 'Raft core');
  assert.equal(frameCategory(frame('x', `${SRC}/driver/ready-driver.js`)), 'driver/runtime');
  assert.equal(frameCategory(frame('x', `${SRC}/runtime/node.js`)), 'driver/runtime');
  assert.equal(frameCategory(frame('x', `${SRC}/codec/codec.js`)), 'codec');
  assert.equal(frameCategory(frame('x', `${SRC}/transport/tcp.js`)), 'transport');
  assert.equal(frameCategory(frame('x', `${SRC}/storage/file-storage.js`)), 'WAL/storage');
  assert.equal(frameCategory(frame('x', 'node:_http_outgoing')), 'HTTP');
  assert.equal(frameCategory(frame('x', 'node:internal/fs/promises')), 'WAL/storage');
  assert.equal(frameCategory(frame('(garbage collector)', '')), 'GC');
  assert.equal(frameCategory(frame('(program)', '')), 'native, no JS on stack');
  // No category of their own: they take their caller's.
  assert.equal(frameCategory(frame('x', 'node:net')), undefined);
  assert.equal(frameCategory(frame('writeBuffer', '')), undefined);
  assert.equal(frameCategory(frame('x', `${SRC}/cli/node.js`)), undefined);
  assert.equal(frameCategory(frame('x', 'file:///a/node_modules/pkg/src/kv/y.js')), undefined);
});

test('analyseProfile: self time by the first categorised frame up the stack; socket writes by their caller', () => {
  const b = analyseProfile(profileOf([2, 3, 4, 5, 6, 7, 8, 9, 11, 11, 12, 15, 13, 14, 16, 17, 18, 10]), 1000, 2900);
  assert.equal(b.idleSamples, 1);
  assert.equal(b.busySamples, 17);
  assert.deepEqual(Object.fromEntries([...b.byCategory].sort()), {
    'GC': 1,
    'HTTP': 2, // serve (13), parserOnIncoming (10)
    'HTTP socket send': 1, // writev (14) under kv/http-*
    'KV commands/state machine': 2, // commit (6), sorted-btree insert (17) under it
    'Raft core': 1,
    'WAL/storage': 2, // fs/promises write (12) and the writeBuffer (15) under it: a file write
    'native, no JS on stack': 1,
    'other (node internals)': 2, // processTicksAndRejections (5), onStreamRead (16): nothing categorised above
    'other (tsraft)': 1, // cli/node (18)
    'transport': 2, // send (8), the stream's _write (9) under it
    'transport socket send': 2, // writeBuffer (11) under transport
  });
  // The same native under two callers: two entries.
  assert.equal(b.byFunction.get('writeBuffer  [transport socket send]')?.samples, 2);
  assert.equal(b.byFunction.get('writeBuffer  [WAL/storage]')?.samples, 1);
  assert.equal(b.byFunction.get('commit kv/replica:1 [KV commands/state machine]')?.samples, 1);
});

test('analyseProfile: only samples taken inside [from, to) count', () => {
  // Times: 1100 (idle), 1200 GC, 1300 raft, 1400 raft, 1500 transport socket, 1600 HTTP, 1700 GC.
  const p = profileOf([3, 4, 7, 7, 11, 13, 4]);
  const b = analyseProfile(p, 1300, 1700);
  assert.deepEqual(Object.fromEntries([...b.byCategory].sort()), { 'HTTP': 1, 'Raft core': 2, 'transport socket send': 1 });
  assert.equal(b.busySamples, 4);
  assert.equal(b.idleSamples, 0);
  assert.equal(b.windowUs, 400);
  assert.equal(analyseProfile(p, 1000, 1150).idleSamples, 1);
  // A window outside the profile means the clocks do not match: refused.
  assert.throws(() => analyseProfile(p, 500, 1500), /not inside the profile/);
  assert.throws(() => analyseProfile(p, 1500, 9999), /not inside the profile/);
  assert.throws(() => analyseProfile(p, 1500, 1500), /empty window/);
});

test('profile file names and /proc thread names', () => {
  assert.equal(pidOfProfileFile('CPU.20261202.052424.10329.0.001.cpuprofile'), 10329);
  assert.equal(pidOfProfileFile('Heap.20261202.052424.10329.0.001.heapprofile'), undefined);
  assert.equal(threadName('4242 (v8:ProfEvntProc) S 1 2 3'), 'v8:ProfEvntProc');
  assert.equal(threadName('4242 (a (b) c) S 1 2 3'), 'a (b) c');
});
