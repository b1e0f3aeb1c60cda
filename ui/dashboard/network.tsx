/** The network controls (`tsraft start` only): cut the network between two nodes, heal a cut. */
import { useState } from 'preact/hooks';

export function NetworkControls(props: {
  readonly ids: readonly number[];
  readonly cuts: readonly (readonly [number, number])[];
  readonly onCut: (a: number, b: number, cut: boolean) => void;
}) {
  const [a, setA] = useState(String(props.ids[0] ?? 0));
  const [b, setB] = useState(String(props.ids[1] ?? 1));
  const select = (id: string, label: string, value: string, set: (v: string) => void) => (
    <>
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
        {props.ids.map((n) => (
          <option value={String(n)}>node {n}</option>
        ))}
      </select>
    </>
  );
  return (
    <section aria-labelledby="network-title">
      <h2 id="network-title">Network</h2>
      <form
        class="inline"
        onSubmit={(event) => {
          event.preventDefault();
          props.onCut(Number(a), Number(b), true);
        }}
      >
        {select('cut-a', 'Cut the network between', a, setA)}
        {select('cut-b', 'and', b, setB)}
        <button type="submit" disabled={a === b}>
          Cut
        </button>
      </form>
      {props.cuts.length === 0 ? (
        <p class="muted">No cuts: every node reaches every other.</p>
      ) : (
        <ul class="cuts">
          {props.cuts.map(([x, y]) => (
            <li data-testid="network-cut">
              node {x} ✕ node {y}{' '}
              <button type="button" aria-label={`Heal the network between node ${x} and node ${y}`} onClick={() => props.onCut(x, y, false)}>
                Heal
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
