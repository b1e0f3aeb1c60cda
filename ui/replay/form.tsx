/**
 * Choose another run: an explorer seed (cluster sizes, seconds of faults, injected bugs) or a suite
 * test on a seed. Running one sets the page's fragment, which starts the run (app.tsx).
 */
import { useState } from 'preact/hooks';
import { replayFragment, type ReplaySource } from '../../src/sim/replay/recording.js';
import type { SuiteEntry } from './engine.js';

export function SourceForm(props: { readonly source: ReplaySource | null; readonly suiteTests: readonly SuiteEntry[]; readonly bugNames: readonly string[]; readonly onRun: (fragment: string) => void }) {
  const s = props.source;
  const [kind, setKind] = useState<'explore' | 'suite'>(s?.kind ?? 'explore');
  const [seed, setSeed] = useState(String(s?.seed ?? 1));
  const [nodes, setNodes] = useState(s?.kind === 'explore' ? (s.nodeCounts?.join(',') ?? '') : '3');
  const [seconds, setSeconds] = useState(s?.kind === 'explore' ? String(s.faultSeconds ?? '') : '5');
  const [bugs, setBugs] = useState<readonly string[]>(s?.kind === 'explore' ? (s.bugs ?? []) : []);
  const [refusals, setRefusals] = useState(s?.kind !== 'explore' || s.changeRefusals !== false);
  const firstTest = props.suiteTests[0];
  const [test, setTest] = useState(s?.kind === 'suite' ? `${s.part}/${s.name}` : firstTest === undefined ? '' : `${firstTest.part}/${firstTest.name}`);
  const [problem, setProblem] = useState('');

  const submit = (event: Event): void => {
    event.preventDefault();
    const seedNumber = Number(seed);
    if (!Number.isSafeInteger(seedNumber) || seedNumber < 0) return setProblem('The seed is a whole number ≥ 0.');
    let source: ReplaySource;
    if (kind === 'explore') {
      const nodeCounts = nodes.trim() === '' ? undefined : nodes.split(',').map((n) => Number(n.trim()));
      const faultSeconds = seconds.trim() === '' ? undefined : Number(seconds);
      source = { kind: 'explore', seed: seedNumber, ...(nodeCounts === undefined ? {} : { nodeCounts }), ...(faultSeconds === undefined ? {} : { faultSeconds }), ...(bugs.length === 0 ? {} : { bugs }), ...(refusals ? {} : { changeRefusals: false }) };
    } else {
      const slash = test.indexOf('/');
      source = { kind: 'suite', seed: seedNumber, part: test.slice(0, slash), name: test.slice(slash + 1) };
    }
    setProblem('');
    props.onRun(replayFragment(source));
  };

  const parts = [...new Set(props.suiteTests.map((t) => t.part))];
  return (
    <section aria-labelledby="form-title">
      <h2 id="form-title">Replay another run</h2>
      <form class="source-form" onSubmit={submit} data-testid="source-form">
        <fieldset class="kind">
          <legend>Run</legend>
          <label>
            <input type="radio" name="kind" value="explore" checked={kind === 'explore'} onChange={() => setKind('explore')} /> an explorer seed
          </label>
          <label>
            <input type="radio" name="kind" value="suite" checked={kind === 'suite'} onChange={() => setKind('suite')} /> a 6.824 suite test
          </label>
        </fieldset>
        <div class="fields">
          <label>
            Seed <input type="number" min="0" step="1" value={seed} onInput={(e) => setSeed((e.target as HTMLInputElement).value)} required data-testid="form-seed" />
          </label>
          {kind === 'explore' ? (
            <>
              <label>
                Cluster sizes <input type="text" value={nodes} placeholder="3,5,7" size={7} onInput={(e) => setNodes((e.target as HTMLInputElement).value)} />
              </label>
              <label>
                Seconds of faults <input type="number" min="1" max="600" value={seconds} placeholder="20" onInput={(e) => setSeconds((e.target as HTMLInputElement).value)} />
              </label>
              <details class="bugs">
                <summary>Injected bugs ({bugs.length})</summary>
                {props.bugNames.map((bug) => (
                  <label class="bug">
                    <input
                      type="checkbox"
                      checked={bugs.includes(bug)}
                      onChange={(e) => setBugs((e.target as HTMLInputElement).checked ? [...bugs, bug] : bugs.filter((b) => b !== bug))}
                    />{' '}
                    {bug}
                  </label>
                ))}
              </details>
              <label title="Off as --no-refusal-check: a membership change accepted while another is under way does not fail the run by itself">
                <input type="checkbox" checked={refusals} onChange={(e) => setRefusals((e.target as HTMLInputElement).checked)} /> refusal check
              </label>
            </>
          ) : (
            <label>
              Test{' '}
              <select value={test} onChange={(e) => setTest((e.target as HTMLSelectElement).value)}>
                {parts.map((part) => (
                  <optgroup label={part}>
                    {props.suiteTests
                      .filter((t) => t.part === part)
                      .map((t) => (
                        <option value={`${t.part}/${t.name}`}>
                          {t.part} {t.name}
                        </option>
                      ))}
                  </optgroup>
                ))}
              </select>
            </label>
          )}
          <button type="submit">Run</button>
        </div>
        {problem !== '' && <p class="error">{problem}</p>}
      </form>
    </section>
  );
}
