/**
 * What the FileStorage tests share: temporary directories removed when the test file ends, copies
 * of a storage directory, and the record layout of the write-ahead log's segments.
 */
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

export interface TempDirs {
  /** A new empty directory. */
  tempDir(): Promise<string>;
  /** A new directory holding a copy of every file in `dir`. */
  copyDir(dir: string): Promise<string>;
}

/**
 * Temporary directories named `prefix`..., every one removed once the test file's tests are done.
 * Call it at the top level of a test file (it registers that file's `after` hook).
 */
export function tempDirs(prefix: string): TempDirs {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const tempDir = async (): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  const copyDir = async (dir: string): Promise<string> => {
    const copy = await tempDir();
    for (const name of await readdir(dir)) await copyFile(join(dir, name), join(copy, name));
    return copy;
  };
  return { tempDir, copyDir };
}

/** The log's segment files in `dir`, oldest first. */
export const walFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => n.startsWith('wal-')).sort();

/** Where one record stands: bytes [start, end) of segment `file`. */
export interface RecordSpan {
  readonly file: string;
  readonly start: number;
  readonly end: number;
}

/** Walks the record headers (u32 length | u32 crc | payload) of every segment, oldest first. */
export async function recordSpans(dir: string): Promise<RecordSpan[]> {
  const spans: RecordSpan[] = [];
  for (const file of await walFiles(dir)) {
    const buf = await readFile(join(dir, file));
    for (let at = 0; at < buf.length; ) {
      const end = at + 8 + buf.readUInt32LE(at);
      spans.push({ file, start: at, end });
      at = end;
    }
  }
  return spans;
}
