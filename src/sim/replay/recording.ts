/**
 * A recording of one deterministic run (an explorer seed or a 6.824 suite test on one seed), made
 * while the run happens, for the replay page (ui/replay) to show: nodes on a ring, messages as
 * moving dots, logs as columns, a timeline to pause, step and scrub, and the broken invariant.
 *
 * It is plain data (JSON-safe: numbers, strings, arrays), so the page can make it itself by running
 * the simulator in the browser, and a test can compare what the page made with what Node made.
 * Times are the run's virtual milliseconds.
 */
import type { NodeId } from '../../core/messages.js';

/** What to run: everything needed to reproduce the run exactly. */
export type ReplaySource =
  | {
      readonly kind: 'explore';
      readonly seed: number;
      /** Cluster sizes to draw from (explorer default 3,5,7). */
      readonly nodeCounts?: readonly number[];
      /** Simulated seconds of faults (explorer default 20). */
      readonly faultSeconds?: number;
      /** Injected bugs, core and driver ones by name (as `npm run explore -- --bug`). */
      readonly bugs?: readonly string[];
      /** False as `--no-refusal-check`. */
      readonly changeRefusals?: boolean;
    }
  | {
      readonly kind: 'suite';
      /** The lab part, e.g. "2B". */
      readonly part: string;
      /** The Go test's name without the part suffix, e.g. "FailAgree". */
      readonly name: string;
      readonly seed: number;
    };

/** A node's state from time `t` until its next frame. */
export interface NodeFrame {
  readonly t: number;
  readonly node: NodeId;
  /** False while the node is crashed or stopped (the other fields then keep their last values). */
  readonly alive: boolean;
  /** A core Role: 'follower', 'precandidate', 'candidate' or 'leader'. */
  readonly role: string;
  readonly term: number;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  /** The terms of the log's last entries (at most TAIL_ENTRIES), the last one at lastIndex. */
  readonly tail: readonly number[];
}

/** At most this many trailing entries per node are recorded for the log columns. */
export const TAIL_ENTRIES = 16;

/** One message, from the moment it was sent to the moment it was delivered or dropped. */
export interface MessageSpan {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The message type (RequestVote, AppendEntries, ...), or an RPC name in suite runs. */
  readonly type: string;
  readonly term: number;
  readonly bytes: number;
  readonly sentAt: number;
  /** When it was delivered or dropped; the run's end for a message still in flight then. */
  readonly endAt: number;
  readonly outcome: 'delivered' | 'dropped' | 'in-flight';
  /** Why it was dropped (loss, linkDown, closed, ...), when it was. */
  readonly why?: string;
}

/**
 * A link going down or up (partitions, disconnects): from → to carries messages while up. Every
 * link is up until its first change (suite runs: servers are connected at time 0).
 */
export interface LinkChange {
  readonly t: number;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly up: boolean;
}

/** One line of the run's own trace (faults, crashes, restarts, elections, client operations). */
export interface TraceLine {
  readonly t: number;
  readonly line: string;
}

/** How the run ended: what a replay must reproduce exactly. */
export interface RunOutcome {
  /** The broken property ('liveness', 'linearizability', 'election safety', ...; a suite test's failure is 'test'), or undefined. */
  readonly invariant?: string;
  readonly message?: string;
  /** When the violation was seen. */
  readonly violationAt?: number;
  /** The node the violation names, when one does. */
  readonly violationNode?: NodeId;
  /** Virtual milliseconds at the end of the run. */
  readonly virtualMs: number;
  /** The run's digest: explorer runs, the digest of the whole event trace (ExploreResult.digest); suite runs, a digest of the recording. */
  readonly digest: number;
  /** Every node's last frame. */
  readonly finalNodes: readonly NodeFrame[];
}

export interface Recording {
  readonly source: ReplaySource;
  /** A one-line description (the explorer's world shape, or the suite test's title). */
  readonly title: string;
  readonly nodeIds: readonly NodeId[];
  /** Frames sorted by t (ties in the order they happened). */
  readonly frames: readonly NodeFrame[];
  /**
   * Messages sorted by sentAt. Explorer runs: every copy of every message (a duplicate is a span
   * of its own). Suite runs: each Raft RPC as two spans, the request and the server's reply (the
   * kvraft clerks' calls are not recorded: a clerk is no node).
   */
  readonly messages: readonly MessageSpan[];
  readonly links: readonly LinkChange[];
  /** Trace lines other than per-message ones, sorted by t (capped; see `traceTruncated`). */
  readonly trace: readonly TraceLine[];
  readonly traceTruncated: boolean;
  readonly outcome: RunOutcome;
}

/** The hash-part of a replay link for a source: `#explore/seed=4711&nodes=3,5&seconds=20&bug=a,b`. */
export function replayFragment(source: ReplaySource): string {
  const params = new URLSearchParams();
  params.set('seed', String(source.seed));
  if (source.kind === 'explore') {
    if (source.nodeCounts !== undefined) params.set('nodes', source.nodeCounts.join(','));
    if (source.faultSeconds !== undefined) params.set('seconds', String(source.faultSeconds));
    if (source.bugs !== undefined && source.bugs.length > 0) params.set('bug', source.bugs.join(','));
    if (source.changeRefusals === false) params.set('no-refusal-check', '1');
    return `#explore/${params.toString()}`;
  }
  params.set('part', source.part);
  params.set('test', source.name);
  return `#suite/${params.toString()}`;
}

/** The source a fragment names, or an error message for one that names none. */
export function parseReplayFragment(fragment: string): ReplaySource | string {
  const text = fragment.startsWith('#') ? fragment.slice(1) : fragment;
  const slash = text.indexOf('/');
  const kind = slash < 0 ? text : text.slice(0, slash);
  const params = new URLSearchParams(slash < 0 ? '' : text.slice(slash + 1));
  const seedText = params.get('seed');
  const seed = seedText === null ? NaN : Number(seedText);
  if (!Number.isSafeInteger(seed) || seed < 0) return `the link names no seed (seed=${seedText ?? ''}); seeds are whole numbers ≥ 0`;
  if (kind === 'explore') {
    const nodesText = params.get('nodes');
    const nodeCounts = nodesText === null ? undefined : nodesText.split(',').map(Number);
    if (nodeCounts !== undefined && nodeCounts.some((n) => !Number.isSafeInteger(n) || n < 1 || n > 9)) return `bad nodes=${nodesText}: cluster sizes 1..9, comma-separated`;
    const secondsText = params.get('seconds');
    const faultSeconds = secondsText === null ? undefined : Number(secondsText);
    if (faultSeconds !== undefined && (!Number.isSafeInteger(faultSeconds) || faultSeconds < 1 || faultSeconds > 600)) return `bad seconds=${secondsText}: 1..600`;
    const bugText = params.get('bug');
    return {
      kind: 'explore',
      seed,
      ...(nodeCounts === undefined ? {} : { nodeCounts }),
      ...(faultSeconds === undefined ? {} : { faultSeconds }),
      ...(bugText === null || bugText === '' ? {} : { bugs: bugText.split(',') }),
      ...(params.get('no-refusal-check') === '1' ? { changeRefusals: false } : {}),
    };
  }
  if (kind === 'suite') {
    const part = params.get('part');
    const name = params.get('test');
    if (part === null || name === null) return 'a suite link names part= and test=';
    return { kind: 'suite', part, name, seed };
  }
  return `unknown replay kind "${kind}": explore or suite`;
}

/**
 * The part of a run's end that a replay must reproduce, as one line of JSON: printed by
 * `npm run explore -- --seed S` ("final state: ...") and shown by the replay page, so a test can
 * compare the two byte for byte.
 */
export function finalStateLine(outcome: RunOutcome): string {
  return JSON.stringify({
    digest: outcome.digest,
    virtualMs: outcome.virtualMs,
    invariant: outcome.invariant ?? null,
    nodes: outcome.finalNodes.map((f) => ({ node: f.node, alive: f.alive, role: f.role, term: f.term, commit: f.commit, applied: f.applied, lastIndex: f.lastIndex })),
  });
}
