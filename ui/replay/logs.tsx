/**
 * Each node's log as a column of its last entries (at most TAIL_ENTRIES), oldest at the top, each
 * entry labelled and coloured by its term; committed entries are solid, the others dashed, and a
 * bar marks the commit index.
 */
import { memo } from 'preact/compat';
import { TAIL_ENTRIES, type NodeFrame } from '../../src/sim/replay/recording.js';
import { termFill } from './colors.js';

export const Logs = memo(function Logs(props: { readonly nodeIds: readonly number[]; readonly frames: readonly (NodeFrame | null)[]; readonly violationNode: number | undefined }) {
  return (
    <div class="logs" style={{ gridTemplateColumns: `repeat(${props.nodeIds.length}, minmax(64px, 1fr))` }}>
      {props.nodeIds.map((id, i) => (
        <LogColumn id={id} frame={props.frames[i] ?? null} violated={props.violationNode === id} />
      ))}
    </div>
  );
});

function LogColumn(props: { readonly id: number; readonly frame: NodeFrame | null; readonly violated: boolean }) {
  const f = props.frame;
  const tail = f?.tail ?? [];
  const first = f === null ? 1 : f.lastIndex - tail.length + 1;
  const rows = [];
  for (let k = 0; k < TAIL_ENTRIES - tail.length; k++) rows.push(<li class="entry empty" aria-hidden="true" />);
  tail.forEach((term, k) => {
    const index = first + k;
    const committed = f !== null && index <= f.commit;
    const marked = f !== null && index === f.commit;
    rows.push(
      <li class={`entry${committed ? ' committed' : ''}${marked ? ' commit-mark' : ''}`} style={{ background: termFill(term) }} title={`index ${index}, term ${term}${committed ? ', committed' : ''}`}>
        <span class="entry-index">{index}</span>
        <span class="entry-term">t{term}</span>
      </li>,
    );
  });
  return (
    <section class={`log${f !== null && !f.alive ? ' log-down' : ''}${props.violated ? ' log-violation' : ''}`} aria-label={`log of node ${props.id}`} data-testid="log" data-node={props.id}>
      <h3>node {props.id}</h3>
      <ol class="entries">{rows}</ol>
      <p class="log-figures">
        {f === null ? (
          'not started'
        ) : (
          <>
            last {f.lastIndex}
            <br />
            commit {f.commit}
            {f.commit < first && tail.length > 0 ? ' ↑' : ''}
            <br />
            applied {f.applied}
            {f.snapshotIndex > 0 && (
              <>
                <br />
                snap {f.snapshotIndex}
              </>
            )}
          </>
        )}
      </p>
    </section>
  );
}
