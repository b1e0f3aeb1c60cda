import { assert } from '../core/assert.js';
import type { Entry, HardState, PersistentState } from '../core/messages.js';
import { NO_VOTE } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import { entrySize, hardStateSize, varintSize } from '../codec/index.js';

/**
 * The simulated disk of one server, the equivalent of 6.824's Persister: it holds the durable
 * state a restarted server starts from. Writes are applied as the core's Ready describes them
 * (hard state, log suffix), and the size of the raft state is what the project's codec would write.
 *
 * `copy()` gives the crash semantics of the 6.824 harness: a crashed instance keeps writing to the
 * old object, which nobody reads again, while its successor starts from a copy of what was saved.
 */
export class Persister {
  private hardState: HardState = { term: 0, votedFor: NO_VOTE };
  private entries: Entry[] = [];
  private entriesBytes = 0;
  private writes = 0;

  /** Applies one Ready's durable part. */
  save(hardState: HardState | null, logWrite: LogWrite | null): void {
    if (hardState !== null) {
      assert(hardState.term >= this.hardState.term, () => `durable term would go back from ${this.hardState.term} to ${hardState.term}`);
      this.hardState = hardState;
    }
    if (logWrite !== null) {
      const keep = logWrite.fromIndex - 1;
      assert(keep <= this.entries.length, () => `log write from ${logWrite.fromIndex} leaves a gap after ${this.entries.length}`);
      for (let i = keep; i < this.entries.length; i++) this.entriesBytes -= entrySize(this.entries[i]!);
      this.entries.length = keep;
      for (const entry of logWrite.entries) {
        this.entries.push(entry);
        this.entriesBytes += entrySize(entry);
      }
    }
    if (hardState !== null || logWrite !== null) this.writes++;
  }

  /** The state a restarted server begins with, or undefined for a server that never saved anything. */
  read(): PersistentState | undefined {
    if (this.writes === 0) return undefined;
    return { hardState: this.hardState, entries: this.entries.slice() };
  }

  /** Bytes of the encoded raft state (hard state and log), as 6.824's RaftStateSize(). */
  raftStateSize(): number {
    return hardStateSize(this.hardState) + varintSize(this.entries.length) + this.entriesBytes;
  }

  /** An independent copy holding everything saved so far. Entries are immutable, so sharing them is safe. */
  copy(): Persister {
    const twin = new Persister();
    twin.hardState = this.hardState;
    twin.entries = this.entries.slice();
    twin.entriesBytes = this.entriesBytes;
    twin.writes = this.writes;
    return twin;
  }
}
