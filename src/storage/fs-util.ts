/** Small file-system helpers for FileStorage: the directory lock and complete writes. */
import type { FileHandle } from 'node:fs/promises';
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError } from './storage.js';

export const LOCK_FILE = 'LOCK';

/**
 * Takes `dir`/LOCK: created exclusively ('wx') and holding this process's pid. If it exists and its
 * pid is alive (process.kill(pid, 0)), the directory is in use: TSRAFT_STORAGE_LOCKED. Otherwise the
 * lock is stale (its owner died, or died before writing its pid) and is taken over. Advisory only:
 * it keeps a second tsraft process, or a second FileStorage in this one, off the directory.
 */
export async function acquireLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx');
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error;
      const text = await readFile(path, 'utf8').catch(() => '');
      const pid = Number(text.trim());
      if (Number.isSafeInteger(pid) && pid > 0 && processAlive(pid)) {
        throw new StorageError(`data directory ${dir} is in use by process ${pid} (${path})`, 'TSRAFT_STORAGE_LOCKED');
      }
      await unlink(path).catch(ignoreMissing);
      continue;
    }
    try {
      await writeAll(fh, new TextEncoder().encode(`${process.pid}\n`), 0);
      await fh.close();
    } catch (error) {
      await fh.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw error;
    }
    return;
  }
  throw new StorageError(`data directory ${dir}: could not take ${path}, other processes keep taking it`, 'TSRAFT_STORAGE_LOCKED');
}

export async function releaseLock(dir: string): Promise<void> {
  await unlink(join(dir, LOCK_FILE)).catch(ignoreMissing);
}

/** Whether process `pid` exists (signal 0 succeeds, or is refused because another user owns it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM'; // exists, owned by someone else
  }
}

/** Writes all of `buf` at `position`: one write call unless the OS writes less. */
export async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}

/** The `code` of a Node system error (ENOENT, EEXIST, ...), if it has one. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function ignoreMissing(error: unknown): void {
  if (errorCode(error) !== 'ENOENT') throw error;
}
