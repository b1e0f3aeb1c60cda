/**
 * The timeline: play/pause, speed, step to the previous/next event, and a scrubber over the run's
 * virtual time, with a marker where the violation was seen. The keys (space, arrows, Home, End) are
 * handled by the page (app.tsx), so they work wherever the focus is.
 */
import { formatMs } from './model.js';

export const SPEEDS: readonly number[] = [0.01, 0.1, 1, 10];
export const DEFAULT_SPEED = 0.1;

export interface TimelineProps {
  readonly t: number;
  readonly end: number;
  readonly playing: boolean;
  readonly speed: number;
  readonly inFlight: number;
  readonly violationAt: number | undefined;
  readonly onPlay: () => void;
  readonly onSpeed: (speed: number) => void;
  readonly onStep: (direction: 1 | -1) => void;
  readonly onSeek: (t: number) => void;
}

export function Timeline(props: TimelineProps) {
  const percent = (ms: number) => `${props.end <= 0 ? 0 : (100 * ms) / props.end}%`;
  return (
    <section class="timeline" aria-labelledby="timeline-title">
      <h2 id="timeline-title" class="visually-hidden">
        Timeline
      </h2>
      <div class="timeline-controls">
        <button type="button" class="play" onClick={props.onPlay} aria-label={props.playing ? 'Pause' : 'Play'} data-testid="play" title="Play or pause (space)">
          {props.playing ? '❚❚ Pause' : '▶ Play'}
        </button>
        <button type="button" onClick={() => props.onStep(-1)} aria-label="Previous event" title="Previous event (←)">
          ← Prev
        </button>
        <button type="button" onClick={() => props.onStep(1)} aria-label="Next event" title="Next event (→)">
          Next →
        </button>
        <label for="speed">Speed</label>
        <select id="speed" value={String(props.speed)} onChange={(e) => props.onSpeed(Number((e.target as HTMLSelectElement).value))}>
          {SPEEDS.map((s) => (
            <option value={String(s)}>{s}× virtual time</option>
          ))}
        </select>
        <output class="now" data-testid="current-time" data-ms={props.t} aria-live="off">
          t = {formatMs(props.t)}
        </output>
        <span class="muted">of {formatMs(props.end)}</span>
        <span class="muted" data-testid="in-flight" data-count={props.inFlight}>
          · {props.inFlight} message{props.inFlight === 1 ? '' : 's'} shown
        </span>
      </div>
      <div class="scrubber">
        <input
          type="range"
          id="scrubber"
          aria-label="Virtual time (ms)"
          aria-valuetext={formatMs(props.t)}
          min="0"
          max={String(props.end)}
          step="any"
          value={String(props.t)}
          onInput={(e) => props.onSeek(Number((e.target as HTMLInputElement).value))}
          data-testid="scrubber"
        />
        {props.violationAt !== undefined && (
          <span class="violation-marker" style={{ left: percent(props.violationAt) }} data-testid="violation-marker" title={`violation at ${formatMs(props.violationAt)}`} aria-hidden="true" />
        )}
      </div>
      <p class="hint muted">Keys: space plays or pauses; ← → step to the previous or next event; Home and End go to the start and the end.</p>
    </section>
  );
}
