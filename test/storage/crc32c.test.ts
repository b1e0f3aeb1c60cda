/** CRC32C against the standard check value and the RFC 3720 (iSCSI) test vectors. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c } from '../../src/storage/crc32c.js';

/** The textbook bit-at-a-time definition, to check the sliced implementation against. */
function bitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

test('crc32c: standard vectors', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test('crc32c: matches the bitwise definition at every length and alignment, and continues', () => {
  const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) & 0xff);
  for (let start = 0; start < 9; start++) {
    for (let end = start; end <= data.length; end += 1 + (end % 5)) {
      const want = bitwise(data.subarray(start, end));
      assert.equal(crc32c(data, start, end), want, `[${start}, ${end})`);
      const mid = (start + end) >> 1;
      assert.equal(crc32c(data, mid, end, crc32c(data, start, mid)), want, `[${start}, ${mid}) + [${mid}, ${end})`);
    }
  }
});
