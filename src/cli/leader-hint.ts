/**
 * The CLI remembers, per cluster, which endpoint answered last (normally the leader), so the next
 * command starts there: one command that found node 0 hung and the leader elsewhere spares the
 * next command that node's attempt deadline, and a follower's redirect.
 *
 * The hints live in one small JSON file in the user's cache directory
 * ($XDG_CACHE_HOME/tsraft/leader-hints.json, else ~/.cache/tsraft/...), keyed by the --endpoints
 * list as given. A hint is only ever one of those endpoints (KvClient ignores any other), so a
 * stale or tampered file can cost a redirect, never send a request elsewhere. The file is best
 * effort: unreadable, malformed or unwritable, it is ignored. TSRAFT_LEADER_CACHE=off turns it off.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KvClient, type KvClientOptions } from '../kv/client.js';

/** A hint older than this is not used: the cluster may have moved on (it would cost a redirect only). */
export const LEADER_HINT_TTL_MS = 60 * 60 * 1000;
/** At most this many clusters are remembered; the oldest hints go first. */
const HINTS_MAX = 32;

interface Hint {
  url: string;
  at: number;
}

/** The hints file, or undefined when hints are off or there is no cache directory. */
export function leaderHintFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const setting = env['TSRAFT_LEADER_CACHE']?.toLowerCase();
  if (setting === 'off' || setting === '0' || setting === 'false' || setting === 'no') return undefined;
  const base = env['XDG_CACHE_HOME'] || (homedir() === '' ? undefined : join(homedir(), '.cache'));
  return base === undefined ? undefined : join(base, 'tsraft', 'leader-hints.json');
}

function keyOf(endpoints: readonly string[]): string {
  return endpoints.map((e) => e.replace(/\/+$/, '')).join(',');
}

function readHints(file: string): Record<string, Hint> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    const hints: Record<string, Hint> = {};
    for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
      const hint = value as Partial<Hint> | null;
      if (hint !== null && typeof hint === 'object' && typeof hint.url === 'string' && typeof hint.at === 'number' && Number.isFinite(hint.at)) {
        hints[key] = { url: hint.url, at: hint.at };
      }
    }
    return hints;
  } catch {
    return {};
  }
}

/** The endpoint to try first for this --endpoints list, if a fresh hint names one of them. */
export function readLeaderHint(endpoints: readonly string[], file = leaderHintFile(), now = Date.now()): string | undefined {
  if (file === undefined) return undefined;
  const hint = readHints(file)[keyOf(endpoints)];
  if (hint === undefined || now - hint.at > LEADER_HINT_TTL_MS || hint.at > now + 60_000) return undefined;
  const normalized = endpoints.map((e) => e.replace(/\/+$/, ''));
  return normalized.includes(hint.url) ? hint.url : undefined;
}

/** Remembers `url` as where this --endpoints list was last answered. Never throws. */
export function saveLeaderHint(endpoints: readonly string[], url: string, file = leaderHintFile(), now = Date.now()): void {
  if (file === undefined) return;
  try {
    const hints = readHints(file);
    const key = keyOf(endpoints);
    if (hints[key]?.url === url && now - hints[key]!.at < LEADER_HINT_TTL_MS / 4) return; // fresh enough: spare the write
    hints[key] = { url, at: now };
    const kept = Object.entries(hints)
      .sort((a, b) => b[1].at - a[1].at)
      .slice(0, HINTS_MAX);
    mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(Object.fromEntries(kept), null, 1)}\n`, { mode: 0o600 });
    renameSync(temporary, file);
  } catch {
    // A read-only home or a full disk: the hint is an optimization only.
  }
}

/**
 * A KvClient for a CLI command that starts at the remembered endpoint for its --endpoints list and,
 * when the process exits (whatever the outcome: a failed command may still have found the leader),
 * remembers where it was last answered.
 */
export function clientRememberingLeader(options: KvClientOptions): KvClient {
  const file = leaderHintFile();
  const hint = readLeaderHint(options.endpoints, file);
  const client = new KvClient({ ...options, ...(hint === undefined ? {} : { preferredEndpoint: hint }) });
  const startedAt = client.preferredEndpoint;
  process.once('exit', () => {
    // Only what this run learned is written: a command that answered where it started, from a
    // fresh hint, leaves the file alone.
    if (client.preferredEndpoint !== startedAt || hint === undefined) saveLeaderHint(options.endpoints, client.preferredEndpoint, file);
  });
  return client;
}
