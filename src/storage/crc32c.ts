// The checksum lives in the core, which needs it for snapshot transfers and may import nothing
// from storage; storage keeps this path so its modules read as before.
export { crc32c } from '../core/crc32c.js';
