/**
 * The live dashboard: the cluster as the node serving this page sees it, from its event feed
 * (feed.ts), and — under `tsraft start` — the controls that act on the node processes (controls.ts).
 */
import { useEffect, useState } from 'preact/hooks';
import type { DashboardSnapshot, LeaderChange, MemberSnapshot } from '../../src/kv/dashboard-feed.js';
import { LineChart } from './chart.js';
import { type ControlledNode, fetchState, nodeActionPath, runControl, type SupervisorState } from './controls.js';
import { type FeedState, followFeed } from './feed.js';
import { NetworkControls } from './network.js';

const CONTROLS_POLL_MS = 1000;

export function App() {
  const [token, setToken] = useState('');
  const [snapshot, setSnapshot] = useState<DashboardSnapshot | null>(null);
  const [feed, setFeed] = useState<FeedState>({ kind: 'connecting' });
  const [supervisor, setSupervisor] = useState<SupervisorState | null>(null);
  const [notice, setNotice] = useState('');

  useEffect(
    () =>
      followFeed(token, {
        snapshot: setSnapshot,
        leader: (change: LeaderChange) => setNotice(change.leaderId === null ? `node lost its leader (term ${change.term})` : `leader: node ${change.leaderId} (term ${change.term})`),
        state: setFeed,
      }),
    [token],
  );

  const controlsUrl = snapshot?.devControlsUrl ?? null;
  useEffect(() => {
    if (controlsUrl === null) return undefined;
    let stopped = false;
    const poll = (): void => {
      fetchState(controlsUrl)
        .then((state) => !stopped && setSupervisor(state))
        .catch(() => !stopped && setSupervisor(null));
    };
    poll();
    const timer = setInterval(poll, CONTROLS_POLL_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [controlsUrl]);

  const act = (label: string, path: string): void => {
    if (controlsUrl === null) return;
    setNotice(`${label}…`);
    runControl(controlsUrl, path)
      .then((message) => setNotice(message))
      .catch((error: unknown) => setNotice(`${label} failed: ${error instanceof Error ? error.message : String(error)}`));
  };

  const leader = snapshot === null ? null : clusterLeader(snapshot.members);
  return (
    <>
      <header>
        <h1>tsraft cluster</h1>
        <p class="muted">
          served by node {snapshot?.node ?? '?'} · <FeedBadge state={feed} /> · updated {snapshot === null ? 'never' : new Date(snapshot.at).toLocaleTimeString()}
        </p>
        <TokenForm onToken={setToken} needed={feed.kind === 'unauthorized'} />
      </header>
      <main>
        <p class="notice" role="status" aria-live="polite">
          {notice}
        </p>
        {feed.kind === 'unauthorized' && <p class="error">The node refused the feed: {feed.reason}. Give a token with the read role.</p>}
        {snapshot !== null && (
          <>
            <section aria-labelledby="summary-title">
              <h2 id="summary-title">Leader</h2>
              <p class="leader" data-testid="leader">
                {leader === null ? 'no leader known (an election is under way, or a majority is down)' : `node ${leader.id} leads, term ${leader.status!.term}`}
              </p>
              {controlsUrl !== null && <TransferForm members={snapshot.members} onTransfer={(to) => act('transfer leadership', `/v1/leader/transfer${to === null ? '' : `?to=${to}`}`)} />}
            </section>
            <MembersTable snapshot={snapshot} leader={leader} processes={supervisor?.nodes ?? null} controls={controlsUrl !== null} onAct={act} />
            {controlsUrl !== null && supervisor !== null && <NonMembers snapshot={snapshot} processes={supervisor.nodes} onAct={act} />}
            {controlsUrl !== null && supervisor !== null && (
              <NetworkControls
                ids={supervisor.nodes.map((n) => n.id)}
                cuts={supervisor.cuts}
                onCut={(a, b, cut) => act(`${cut ? 'cut' : 'heal'} the network between node ${a} and node ${b}`, `/v1/network/${cut ? 'cut' : 'heal'}?a=${a}&b=${b}`)}
              />
            )}
            <div class="columns">
              <Traffic snapshot={snapshot} />
              <LeaderHistory history={snapshot.leaderHistory} />
            </div>
            <div class="columns">
              <LogTail snapshot={snapshot} />
              <Snapshots members={snapshot.members} />
            </div>
          </>
        )}
      </main>
    </>
  );
}

/** The leader the cluster has now: a reachable member that says it leads, in the highest term. */
function clusterLeader(members: readonly MemberSnapshot[]): MemberSnapshot | null {
  let best: MemberSnapshot | null = null;
  for (const m of members) {
    if (m.status?.role === 'leader' && !m.status.stopped && (best === null || m.status.term > best.status!.term)) best = m;
  }
  return best;
}

function FeedBadge(props: { readonly state: FeedState }) {
  const s = props.state;
  if (s.kind === 'live') return <span class="ok">live</span>;
  if (s.kind === 'connecting') return <span class="warn">connecting…</span>;
  if (s.kind === 'unauthorized') return <span class="bad">needs a token</span>;
  return <span class="bad">connection lost ({s.reason}); retrying</span>;
}

/** The bearer token, for a cluster with --auth: held in memory only, sent in a header, never in a URL. */
function TokenForm(props: { readonly onToken: (token: string) => void; readonly needed: boolean }) {
  const [value, setValue] = useState('');
  return (
    <form
      class="token"
      onSubmit={(event) => {
        event.preventDefault();
        props.onToken(value.trim());
      }}
    >
      <label for="token">Bearer token {props.needed ? '(required)' : '(only with --auth)'}</label>
      <input id="token" type="password" autocomplete="off" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
      <button type="submit">Connect</button>
    </form>
  );
}

function TransferForm(props: { readonly members: readonly MemberSnapshot[]; readonly onTransfer: (to: number | null) => void }) {
  const [to, setTo] = useState('');
  return (
    <form
      class="inline"
      onSubmit={(event) => {
        event.preventDefault();
        props.onTransfer(to === '' ? null : Number(to));
      }}
    >
      <label for="transfer-to">Transfer leadership to</label>
      <select id="transfer-to" value={to} onChange={(e) => setTo((e.target as HTMLSelectElement).value)}>
        <option value="">the most up-to-date follower</option>
        {props.members.map((m) => (
          <option value={String(m.id)}>node {m.id}</option>
        ))}
      </select>
      <button type="submit">Transfer</button>
    </form>
  );
}

function MembersTable(props: {
  readonly snapshot: DashboardSnapshot;
  readonly leader: MemberSnapshot | null;
  readonly processes: readonly ControlledNode[] | null;
  readonly controls: boolean;
  readonly onAct: (label: string, path: string) => void;
}) {
  const leaderStatus = props.leader?.status ?? null;
  const progress = new Map((leaderStatus?.peers ?? []).map((p) => [p.id, p]));
  return (
    <section aria-labelledby="members-title">
      <h2 id="members-title">Members</h2>
      <table>
        <caption class="muted">Match, next and lag are the leader's view of each follower (lag: entries behind the leader's last index).</caption>
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Role</th>
            <th scope="col">Term</th>
            <th scope="col">Commit</th>
            <th scope="col">Applied</th>
            <th scope="col">Last</th>
            <th scope="col">Match / next</th>
            <th scope="col">Lag</th>
            {props.controls && <th scope="col">Process</th>}
            {props.controls && <th scope="col">Controls</th>}
          </tr>
        </thead>
        <tbody>
          {props.snapshot.members.map((m) => {
            const s = m.status;
            const p = progress.get(m.id);
            const role = s === null ? 'unreachable' : s.role;
            const proc = props.processes?.find((n) => n.id === m.id) ?? null;
            const isLeader = props.leader?.id === m.id;
            return (
              <tr data-testid="member-row" data-node={m.id} data-role={isLeader ? 'leader' : role}>
                <th scope="row">node {m.id}</th>
                <td>
                  <span class={`role role-${role}`}>{role}</span>
                  {s === null && m.error !== null && <span class="muted"> ({m.error})</span>}
                </td>
                <td>{s?.term ?? '–'}</td>
                <td>{s?.commitIndex ?? '–'}</td>
                <td>{s?.appliedIndex ?? '–'}</td>
                <td>{s?.lastIndex ?? '–'}</td>
                <td>{isLeader ? 'leader' : p === undefined ? '–' : `${p.match} / ${p.next}`}</td>
                <td>{isLeader || p === undefined || leaderStatus === null ? '–' : Math.max(0, leaderStatus.lastIndex - p.match)}</td>
                {props.controls && <td>{proc === null ? '–' : `${proc.state}${proc.pid === null ? '' : ` (pid ${proc.pid})`}`}</td>}
                {props.controls && (
                  <td class="buttons">
                    <NodeControls id={m.id} proc={proc} onAct={props.onAct} />
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

/** `tsraft start`'s nodes that the configuration no longer names (removed from the page): they can be added back. */
function NonMembers(props: { readonly snapshot: DashboardSnapshot; readonly processes: readonly ControlledNode[]; readonly onAct: (label: string, path: string) => void }) {
  const members = new Set(props.snapshot.members.map((m) => m.id));
  const outside = props.processes.filter((p) => !members.has(p.id));
  if (outside.length === 0) return null;
  return (
    <section aria-labelledby="outside-title">
      <h2 id="outside-title">Not members</h2>
      <ul class="cuts">
        {outside.map((p) => (
          <li data-testid="non-member" data-node={p.id}>
            node {p.id} ({p.state}){' '}
            <button type="button" aria-label={`Add back node ${p.id} as a voter`} onClick={() => props.onAct(`add node ${p.id}`, `/v1/members/${p.id}/add`)}>
              Add back
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** The buttons that fit the process's state: a control that would be refused is not offered. */
function NodeControls(props: { readonly id: number; readonly proc: ControlledNode | null; readonly onAct: (label: string, path: string) => void }) {
  const { id, proc } = props;
  if (proc === null) return <span class="muted">–</span>;
  // Each accessible name starts with the visible text (a speech user says what they see), then names the node.
  const button = (action: 'stop' | 'kill' | 'pause' | 'resume' | 'start', text: string, detail = '') => (
    <button type="button" aria-label={`${text} node ${id}${detail}`} data-action={action} onClick={() => props.onAct(`${text} node ${id}`, nodeActionPath(id, action))}>
      {text}
    </button>
  );
  if (proc.state === 'held' || proc.state === 'down') return button('start', 'Start');
  if (proc.state === 'paused') return button('resume', 'Resume');
  return (
    <>
      {button('stop', 'Stop', ' (SIGTERM)')}
      {button('kill', 'Kill -9', ' (SIGKILL)')}
      {button('pause', 'Pause', ' (SIGSTOP)')}
      <button type="button" aria-label={`Remove node ${id} from the configuration`} onClick={() => props.onAct(`remove node ${id}`, `/v1/members/${id}/remove`)}>
        Remove
      </button>
    </>
  );
}

function Traffic(props: { readonly snapshot: DashboardSnapshot }) {
  const samples = props.snapshot.traffic;
  return (
    <section aria-labelledby="traffic-title">
      <h2 id="traffic-title">Traffic on node {props.snapshot.node}</h2>
      <p class="muted">Last {samples.length} s. Writes are proposals this node led to commit; reads are those it served.</p>
      <LineChart
        title="Throughput"
        unit="op/s"
        series={[
          { name: 'writes', className: 'series-a', values: samples.map((s) => s.writesPerSecond) },
          { name: 'reads', className: 'series-b', values: samples.map((s) => s.readsPerSecond) },
        ]}
      />
      <LineChart
        title="Mean latency"
        unit="ms"
        series={[
          { name: 'writes', className: 'series-a', values: samples.map((s) => s.writeMs) },
          { name: 'linearizable reads', className: 'series-b', values: samples.map((s) => s.readMs) },
        ]}
      />
    </section>
  );
}

function LeaderHistory(props: { readonly history: readonly LeaderChange[] }) {
  const recent = [...props.history].reverse().slice(0, 12);
  return (
    <section aria-labelledby="history-title">
      <h2 id="history-title">Leader history</h2>
      {recent.length === 0 ? (
        <p class="muted">No change seen yet.</p>
      ) : (
        <ol class="history">
          {recent.map((c) => (
            <li>
              <time>{new Date(c.at).toLocaleTimeString()}</time> {c.leaderId === null ? 'leader lost' : `node ${c.leaderId} leads`} (term {c.term})
              {c.electionMs !== null && <span class="muted"> · {(c.electionMs / 1000).toFixed(2)} s without a leader</span>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function LogTail(props: { readonly snapshot: DashboardSnapshot }) {
  const entries = [...props.snapshot.entries].reverse();
  return (
    <section aria-labelledby="log-title">
      <h2 id="log-title">Recent log entries (applied on node {props.snapshot.node})</h2>
      {entries.length === 0 ? (
        <p class="muted">None applied since this node started.</p>
      ) : (
        <table class="compact">
          <thead>
            <tr>
              <th scope="col">Index</th>
              <th scope="col">Term</th>
              <th scope="col">Op</th>
              <th scope="col">Key</th>
              <th scope="col">Bytes</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr>
                <td>{e.index}</td>
                <td>{e.term}</td>
                <td>{e.op}</td>
                <td class="key">{e.key ?? '–'}</td>
                <td>{e.bytes}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Snapshots(props: { readonly members: readonly MemberSnapshot[] }) {
  return (
    <section aria-labelledby="snapshots-title">
      <h2 id="snapshots-title">Snapshots and state</h2>
      <table class="compact">
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Snapshot index</th>
            <th scope="col">Taken</th>
            <th scope="col">Keys</th>
            <th scope="col">State size</th>
          </tr>
        </thead>
        <tbody>
          {props.members.map((m) => (
            <tr>
              <th scope="row">node {m.id}</th>
              <td>{m.status?.snapshotIndex ?? '–'}</td>
              <td>{m.status?.snapshotsTaken ?? '–'}</td>
              <td>{m.status?.keys ?? '–'}</td>
              <td>{m.status === null ? '–' : bytes(m.status.bytes)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted">State size: keys plus values, about what the next snapshot holds.</p>
    </section>
  );
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
