/**
 * The replay page: reads what to run from the fragment (#explore/seed=7&nodes=3 or
 * #suite/seed=3&part=2A&test=InitialElection), runs that simulation here in the browser (engine.ts),
 * showing the simulated time done, then replays the recording: the ring (ring.tsx), the logs
 * (logs.tsx), a timeline (timeline.tsx), the trace (trace.tsx), the broken invariant if any, and the
 * run's final state line (the one `npm run explore -- --seed S` prints). Changing the fragment runs
 * again.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { finalStateLine, parseReplayFragment, type Recording, type ReplaySource } from '../../src/sim/replay/recording.js';
import { DROPPED_COLOR, messageColor, roleColor } from './colors.js';
import { BUG_NAMES, record, SUITE_TESTS } from './engine.js';
import { SourceForm } from './form.js';
import { Logs } from './logs.js';
import { DROP_LINGER_MAX_MS, formatMs, RecordingIndex } from './model.js';
import { Ring } from './ring.js';
import { DEFAULT_SPEED, SPEEDS, Timeline } from './timeline.js';
import { Trace } from './trace.js';

/** Progress is shown at most this often (wall ms), so the run is not slowed by rendering. */
const PROGRESS_EVERY_MS = 100;
/** A dropped message's mark stays this many wall ms at the current speed (within 1..DROP_LINGER_MAX_MS virtual ms). */
const DROP_LINGER_WALL_MS = 400;

type RunState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'running'; readonly source: ReplaySource; readonly virtualMs: number; readonly startedAt: number }
  | { readonly kind: 'done'; readonly source: ReplaySource; readonly recording: Recording; readonly index: RecordingIndex; readonly wallMs: number }
  | { readonly kind: 'error'; readonly source: ReplaySource | null; readonly message: string };

/** The command that runs the same thing in a terminal. */
export function reproduceCommand(source: ReplaySource): string {
  if (source.kind === 'suite') return `npm run suite -- --part ${source.part} --run ${source.name} --seed ${source.seed}`;
  const parts = [`npm run explore -- --seed ${source.seed}`];
  if (source.nodeCounts !== undefined) parts.push(`--nodes ${source.nodeCounts.join(',')}`);
  if (source.faultSeconds !== undefined) parts.push(`--seconds ${source.faultSeconds}`);
  if (source.bugs !== undefined && source.bugs.length > 0) parts.push(`--bug ${source.bugs.join(',')}`);
  if (source.changeRefusals === false) parts.push('--no-refusal-check');
  return parts.join(' ');
}

function describeSource(source: ReplaySource): string {
  if (source.kind === 'suite') return `suite test ${source.part} ${source.name}, seed ${source.seed}`;
  const bugs = source.bugs !== undefined && source.bugs.length > 0 ? `, bug ${source.bugs.join(', ')}` : '';
  return `explorer seed ${source.seed}${source.nodeCounts === undefined ? '' : `, cluster sizes ${source.nodeCounts.join(',')}`}${source.faultSeconds === undefined ? '' : `, ${source.faultSeconds} s of faults`}${bugs}`;
}

export function App() {
  const [hash, setHash] = useState(location.hash);
  const [attempt, setAttempt] = useState(0);
  const [run, setRun] = useState<RunState>({ kind: 'idle' });
  const running = useRef(false);

  useEffect(() => {
    const onHash = (): void => {
      // A run cannot be stopped half way (it holds the simulator): start afresh with the new fragment.
      if (running.current) location.reload();
      else setHash(location.hash);
    };
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    if (hash === '' || hash === '#') {
      setRun({ kind: 'idle' });
      return undefined;
    }
    const parsed = parseReplayFragment(hash);
    if (typeof parsed === 'string') {
      setRun({ kind: 'error', source: null, message: `Cannot replay ${hash}: ${parsed}.` });
      return undefined;
    }
    let cancelled = false;
    const startedAt = performance.now();
    setRun({ kind: 'running', source: parsed, virtualMs: 0, startedAt });
    running.current = true;
    let shownAt = 0;
    // Started after a short pause, so the page shows "running" before the simulator takes the thread.
    const timer = setTimeout(() => {
      record(parsed, (virtualMs) => {
        const now = performance.now();
        if (cancelled || now - shownAt < PROGRESS_EVERY_MS) return;
        shownAt = now;
        setRun({ kind: 'running', source: parsed, virtualMs, startedAt });
      })
        .then((recording) => {
          if (!cancelled) setRun({ kind: 'done', source: parsed, recording, index: new RecordingIndex(recording), wallMs: performance.now() - startedAt });
        })
        .catch((error: unknown) => {
          if (!cancelled) setRun({ kind: 'error', source: parsed, message: `The run failed: ${error instanceof Error ? error.message : String(error)}` });
          console.warn(error);
        })
        .finally(() => {
          running.current = false;
        });
    }, 30);
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, [hash, attempt]);

  const onRun = useCallback((fragment: string) => {
    if (fragment !== location.hash) location.hash = fragment;
    else if (running.current) location.reload();
    else setAttempt((n) => n + 1);
  }, []);

  const source = run.kind === 'idle' ? null : run.source;
  const linked = useMemo(() => {
    const parsed = parseReplayFragment(hash);
    return typeof parsed === 'string' ? null : parsed;
  }, [hash]);
  const status = run.kind === 'idle' ? 'waiting' : run.kind;
  return (
    <>
      <header>
        <h1>
          tsraft replay <span class={`status status-${status}`} data-testid="replay-status" role="status">{status}</span>
        </h1>
        <p class="muted">
          {run.kind === 'done' ? run.recording.title : source === null ? 'A deterministic run, re-run here in the browser and replayed step by step.' : describeSource(source)}
        </p>
        {source !== null && (
          <p class="muted">
            In a terminal: <code data-testid="command">{reproduceCommand(source)}</code>
          </p>
        )}
      </header>
      <main>
        {run.kind === 'idle' && (
          <section>
            <p>
              Nothing to replay yet: the page replays the run its link names, e.g. <code>#explore/seed=7&amp;nodes=3&amp;seconds=5</code> or{' '}
              <code>#suite/seed=3&amp;part=2A&amp;test=InitialElection</code>. Choose one below.
            </p>
          </section>
        )}
        {run.kind === 'error' && (
          <section class="error-panel" role="alert" data-testid="replay-error">
            <h2>Nothing to show</h2>
            <p>{run.message}</p>
            <p class="muted">A link looks like #explore/seed=7&amp;nodes=3&amp;seconds=5&amp;bug=commit-old-term, or #suite/seed=3&amp;part=2A&amp;test=InitialElection.</p>
          </section>
        )}
        {run.kind === 'running' && <Progress run={run} />}
        {run.kind === 'done' && <Replay recording={run.recording} index={run.index} wallMs={run.wallMs} />}
        <SourceForm key={hash} source={linked} suiteTests={SUITE_TESTS} bugNames={BUG_NAMES} onRun={onRun} />
      </main>
    </>
  );
}

function Progress(props: { readonly run: Extract<RunState, { kind: 'running' }> }) {
  const { source, virtualMs } = props.run;
  const faultMs = source.kind === 'explore' ? (source.faultSeconds ?? 20) * 1000 : undefined;
  return (
    <section aria-labelledby="progress-title">
      <h2 id="progress-title">Running the simulation in this browser…</h2>
      <p data-testid="progress" aria-live="polite">
        simulated {(virtualMs / 1000).toFixed(1)} s
        {faultMs !== undefined && (virtualMs < faultMs ? ` of ${faultMs / 1000} s of faults` : ' (faults over: recovery and final checks)')}
      </p>
      {faultMs !== undefined && virtualMs < faultMs ? <progress max={faultMs} value={virtualMs} aria-label="simulated time" /> : <progress aria-label="simulated time" />}
    </section>
  );
}

function Replay(props: { readonly recording: Recording; readonly index: RecordingIndex; readonly wallMs: number }) {
  const { recording, index } = props;
  const { outcome } = recording;
  const end = index.end;
  const [t, setT] = useState(0);
  const [playing, setPlaying] = useState(true);
  const [speed, setSpeed] = useState(DEFAULT_SPEED);
  const now = useRef(0);

  const seek = useCallback(
    (to: number) => {
      const clamped = Math.min(end, Math.max(0, to));
      now.current = clamped;
      setT(clamped);
    },
    [end],
  );
  const playingNow = useRef(playing);
  playingNow.current = playing;
  /** Pauses at once, not at the next render: a frame already scheduled must see it. */
  const pause = useCallback(() => {
    playingNow.current = false;
    setPlaying(false);
  }, []);
  const toggle = useCallback(() => {
    // Play from the start again once at the end.
    if (!playingNow.current && now.current >= end) seek(0);
    // Set at once, not at the next render: a frame already scheduled must see the pause.
    playingNow.current = !playingNow.current;
    setPlaying(playingNow.current);
  }, [end, seek]);
  const step = useCallback(
    (direction: 1 | -1) => {
      pause();
      seek(direction > 0 ? index.nextEvent(now.current) : index.previousEvent(now.current));
    },
    [index, seek],
  );

  useEffect(() => {
    if (!playing) return undefined;
    let frame = 0;
    let last = performance.now();
    const tick = (wall: number): void => {
      // Preact runs this effect's cleanup after the next paint: a frame may come in between.
      if (!playingNow.current) return;
      const next = Math.min(end, now.current + Math.max(0, wall - last) * speed);
      last = wall;
      seek(next);
      if (next >= end) pause();
      else frame = requestAnimationFrame(tick);
    };
    frame = requestAnimationFrame(tick);
    return () => cancelAnimationFrame(frame);
  }, [playing, speed, end, seek]);

  useEffect(() => {
    let swallowSpaceUp = false;
    const onKey = (event: KeyboardEvent): void => {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      const target = event.target as HTMLElement | null;
      const tag = target?.tagName ?? '';
      const type = tag === 'INPUT' ? (target as HTMLInputElement).type : '';
      if ((tag === 'INPUT' && type !== 'range') || tag === 'SELECT' || tag === 'TEXTAREA' || target?.isContentEditable === true || target?.closest('form') !== null) return;
      if (event.key === ' ') {
        event.preventDefault();
        swallowSpaceUp = true;
        if (!event.repeat) toggle();
      } else if (event.key === 'ArrowRight' || event.key === 'ArrowLeft') {
        event.preventDefault();
        step(event.key === 'ArrowRight' ? 1 : -1);
      } else if (event.key === 'Home' || event.key === 'End') {
        event.preventDefault();
        pause();
        seek(event.key === 'Home' ? 0 : end);
      }
    };
    // A button that has the focus would take the space bar as a click when it comes up.
    const onKeyUp = (event: KeyboardEvent): void => {
      if (event.key === ' ' && swallowSpaceUp) {
        event.preventDefault();
        swallowSpaceUp = false;
      }
    };
    addEventListener('keydown', onKey);
    addEventListener('keyup', onKeyUp);
    return () => {
      removeEventListener('keydown', onKey);
      removeEventListener('keyup', onKeyUp);
    };
  }, [toggle, step, seek, end]);

  const frameKey = index.frameKey(t);
  const frames = useMemo(() => index.nodesAt(t), [index, frameKey]);
  const linkKey = index.linkKey(t);
  const linksDown = useMemo(() => index.linksDownAt(t), [index, linkKey]);
  const lingerMs = Math.min(DROP_LINGER_MAX_MS, Math.max(1, DROP_LINGER_WALL_MS * speed));
  const messages = index.messagesAt(t, lingerMs);
  const traceIndex = index.traceIndexAt(t);
  const violationAt = outcome.violationAt;
  const finalLine = useMemo(() => finalStateLine(outcome), [outcome]);
  const jump = (): void => {
    pause();
    if (violationAt !== undefined) seek(violationAt);
  };

  return (
    <>
      {outcome.invariant !== undefined ? (
        <section class="violation" role="alert" data-testid="violation" data-at={violationAt} data-node={outcome.violationNode}>
          <h2>
            Invariant broken: <span data-testid="violation-invariant">{outcome.invariant}</span>
          </h2>
          {outcome.message !== undefined && <p class="violation-message">{outcome.message}</p>}
          <p>
            Seen at {violationAt === undefined ? 'an unknown time' : formatMs(violationAt)}
            {outcome.violationNode !== undefined && <> on node {outcome.violationNode} (ringed in red)</>}.{' '}
            {violationAt !== undefined && (
              <button type="button" onClick={jump} data-testid="jump-violation">
                Jump to the violation
              </button>
            )}
          </p>
        </section>
      ) : (
        <p class="verdict ok" data-testid="verdict">
          No invariant broken: the run passed its checks.
        </p>
      )}
      <Timeline
        t={t}
        end={end}
        playing={playing}
        speed={speed}
        inFlight={messages.length}
        violationAt={violationAt}
        onPlay={toggle}
        onSpeed={(s) => setSpeed(SPEEDS.includes(s) ? s : DEFAULT_SPEED)}
        onStep={step}
        onSeek={(to) => {
          pause();
          seek(to);
        }}
      />
      <div class="stage">
        <section aria-labelledby="ring-title" class="ring-section">
          <h2 id="ring-title">Cluster</h2>
          <Ring nodeIds={recording.nodeIds} frames={frames} linksDown={linksDown} messages={messages} t={t} lingerMs={lingerMs} violationNode={outcome.violationNode} />
          <Legend types={index.messageTypes} />
        </section>
        <section aria-labelledby="logs-title" class="logs-section">
          <h2 id="logs-title">Logs (last entries)</h2>
          <Logs nodeIds={recording.nodeIds} frames={frames} violationNode={outcome.violationNode} />
        </section>
      </div>
      <Trace trace={recording.trace} current={traceIndex} truncated={recording.traceTruncated} onSeek={(to) => (pause(), seek(to))} />
      <section aria-labelledby="final-title">
        <h2 id="final-title">Final state</h2>
        <p class="muted">
          {recording.frames.length} node states, {recording.messages.length} messages, {formatMs(end)} simulated in {(props.wallMs / 1000).toFixed(1)} s here.
          {recording.source.kind === 'explore' && (
            <>
              {' '}
              The same line as <code>npm run explore</code> prints as “final state”:
            </>
          )}
        </p>
        <pre class="final-state" data-testid="final-state">{finalLine}</pre>
      </section>
    </>
  );
}

function Legend(props: { readonly types: readonly { readonly type: string; readonly count: number }[] }) {
  return (
    <ul class="legend" aria-label="legend">
      {props.types.map(({ type, count }) => (
        <li>
          <svg width="12" height="12" aria-hidden="true">
            <circle cx="6" cy="6" r="5" fill={messageColor(type)} />
          </svg>{' '}
          {type} <span class="muted">({count})</span>
        </li>
      ))}
      <li>
        <span style={{ color: DROPPED_COLOR, fontWeight: 700 }}>✕</span> dropped
      </li>
      {['leader', 'candidate', 'pre-candidate', 'follower'].map((role) => (
        <li>
          <span class="role-swatch" style={{ borderColor: roleColor(role) }} /> {role}
        </li>
      ))}
      <li>
        <span class="role-swatch down" /> down
      </li>
      <li>
        <span style={{ color: DROPPED_COLOR }}>– ✕ –</span> link cut
      </li>
    </ul>
  );
}
