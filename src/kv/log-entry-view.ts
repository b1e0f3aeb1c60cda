/**
 * An applied log entry as the dashboard lists it (dashboard-feed.ts): its index, term, operation,
 * key (shortened, as text) and size — never the value, which may be large or secret.
 */
import type { Entry } from '../core/messages.js';
import { decodeKvCommand } from './commands.js';
import type { LogEntryView } from './dashboard-feed.js';

const KEY_CHARS_MAX = 64;
const utf8Lenient = new TextDecoder('utf-8', { fatal: false });

export function entryView(entry: Entry): LogEntryView {
  const base = { index: entry.index, term: entry.term, bytes: entry.command.length };
  if (entry.membership !== undefined) return { ...base, op: 'config', key: null };
  // A new leader's first entry carries no command.
  if (entry.command.length === 0) return { ...base, op: 'noop', key: null };
  try {
    const command = decodeKvCommand(entry.command);
    if (command.op === 'txn') return { ...base, op: 'txn', key: null };
    if (command.op === 'lease-grant') return { ...base, op: 'lease-grant', key: null };
    // The lease's id where a key would go: which lease was revoked, and whether it expired.
    if (command.op === 'lease-revoke') return { ...base, op: command.expired === true ? 'lease-expire' : 'lease-revoke', key: `lease ${command.id}` };
    const key = utf8Lenient.decode(command.key);
    return { ...base, op: command.op, key: key.length > KEY_CHARS_MAX ? `${key.slice(0, KEY_CHARS_MAX)}…` : key };
  } catch {
    return { ...base, op: 'undecodable', key: null };
  }
}
