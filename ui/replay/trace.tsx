/**
 * The run's trace around the current time: a window of lines before and after it (never the whole
 * trace in the DOM), the last line at or before the current time highlighted and kept in view.
 * Clicking a line's time goes there.
 */
import { useLayoutEffect, useRef } from 'preact/hooks';
import { memo } from 'preact/compat';
import type { TraceLine } from '../../src/sim/replay/recording.js';
import { formatMs } from './model.js';

const WINDOW = 60;

export const Trace = memo(function Trace(props: { readonly trace: readonly TraceLine[]; readonly current: number; readonly truncated: boolean; readonly onSeek: (t: number) => void }) {
  const list = useRef<HTMLOListElement>(null);
  const from = Math.max(0, props.current - WINDOW);
  const to = Math.min(props.trace.length, Math.max(props.current, 0) + WINDOW);
  useLayoutEffect(() => {
    const box = list.current;
    const here = box?.querySelector<HTMLElement>('[aria-current="true"]');
    if (box === null || box === undefined) return;
    if (here === null || here === undefined) box.scrollTop = 0;
    // The list is positioned, so a line's offsetTop is measured from the list's top.
    else box.scrollTop = here.offsetTop - box.clientHeight / 2 + here.clientHeight / 2;
  }, [props.current, props.trace]);
  return (
    <section aria-labelledby="trace-title" class="trace-section">
      <h2 id="trace-title">
        Trace <span class="muted">({props.trace.length} lines{props.truncated ? ', capped: later lines were not recorded' : ''})</span>
      </h2>
      {props.trace.length === 0 ? (
        <p class="muted">This run recorded no trace lines.</p>
      ) : (
        <ol class="trace" ref={list} start={from + 1} data-testid="trace">
          {props.trace.slice(from, to).map((line, k) => {
            const i = from + k;
            return (
              <li class={i === props.current ? 'current' : i > props.current ? 'future' : ''} aria-current={i === props.current ? 'true' : undefined}>
                <button type="button" class="trace-time" onClick={() => props.onSeek(line.t)} aria-label={`go to ${formatMs(line.t)}`}>
                  {formatMs(line.t)}
                </button>{' '}
                <span class="trace-line">{line.line}</span>
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
});
