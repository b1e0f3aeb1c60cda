/**
 * The cluster as a ring (SVG): each node coloured by role with its term and commit/applied, dimmed
 * when down; the links between them, cut ones drawn broken; and the messages on their way as dots
 * moving from sender to receiver. The dots are drawn as one <path> per message type (and a few for
 * the dropped marks), so a frame of the animation changes a handful of DOM nodes, however many
 * messages are in flight.
 */
import { memo } from 'preact/compat';
import type { MessageSpan, NodeFrame } from '../../src/sim/replay/recording.js';
import { DROPPED_COLOR, messageColor, roleColor } from './colors.js';
import type { LinkState } from './model.js';

const SIZE = 520;
const CENTER = SIZE / 2;
const RING_RADIUS = 185;
const NODE_RADIUS_MAX = 56;
const DOT_RADIUS = 6;
/** Messages one way and the other between two nodes are drawn this far apart. */
const LANE_OFFSET = 6;
const DROP_LEVELS = 4;

interface Point {
  readonly x: number;
  readonly y: number;
}

function positions(count: number): Point[] {
  return Array.from({ length: count }, (_, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(count, 1);
    return { x: CENTER + RING_RADIUS * Math.cos(angle), y: CENTER + RING_RADIUS * Math.sin(angle) };
  });
}

/** The nodes' radius: as large as fits between neighbours on the ring. */
function nodeRadius(count: number): number {
  return count <= 2 ? NODE_RADIUS_MAX : Math.min(NODE_RADIUS_MAX, 0.85 * RING_RADIUS * Math.sin(Math.PI / count));
}

/** The point a fraction p along the lane from one node's rim to the other's. */
function along(from: Point, to: Point, p: number, lane: number, radius: number): Point {
  const dx = to.x - from.x;
  const dy = to.y - from.y;
  const length = Math.hypot(dx, dy) || 1;
  const ux = dx / length;
  const uy = dy / length;
  const start = radius + DOT_RADIUS;
  const travel = Math.max(0, length - 2 * start);
  const d = start + travel * Math.min(1, Math.max(0, p));
  return { x: from.x + ux * d - uy * lane, y: from.y + uy * d + ux * lane };
}

const dot = (p: Point): string => `M${(p.x - DOT_RADIUS).toFixed(1)},${p.y.toFixed(1)}a${DOT_RADIUS},${DOT_RADIUS} 0 1,0 ${2 * DOT_RADIUS},0a${DOT_RADIUS},${DOT_RADIUS} 0 1,0 ${-2 * DOT_RADIUS},0`;
const cross = (p: Point, s = 6): string => `M${(p.x - s).toFixed(1)},${(p.y - s).toFixed(1)}l${2 * s},${2 * s}m0,${-2 * s}l${-2 * s},${2 * s}`;

export interface RingProps {
  readonly nodeIds: readonly number[];
  /** Each node's frame now (null before it started), in nodeIds order. */
  readonly frames: readonly (NodeFrame | null)[];
  readonly linksDown: readonly LinkState[];
  readonly messages: readonly MessageSpan[];
  readonly t: number;
  readonly lingerMs: number;
  readonly violationNode: number | undefined;
}

export function Ring(props: RingProps) {
  const points = positions(props.nodeIds.length);
  const at = new Map(props.nodeIds.map((id, i) => [id, points[i]!]));
  return (
    <svg class="ring" viewBox={`0 0 ${SIZE} ${SIZE}`} role="img" aria-label={describe(props)} data-testid="ring">
      <Links nodeIds={props.nodeIds} linksDown={props.linksDown} />
      <Nodes nodeIds={props.nodeIds} frames={props.frames} violationNode={props.violationNode} />
      <Dots messages={props.messages} t={props.t} lingerMs={props.lingerMs} at={at} radius={nodeRadius(props.nodeIds.length)} />
    </svg>
  );
}

function describe(props: RingProps): string {
  const nodes = props.nodeIds.map((id, i) => {
    const f = props.frames[i];
    return f === null || f === undefined ? `node ${id} not started` : `node ${id} ${f.alive ? f.role : 'down'} term ${f.term}`;
  });
  return `${nodes.join(', ')}; ${props.messages.length} messages shown${props.linksDown.length > 0 ? `; ${props.linksDown.length} links cut` : ''}`;
}

const Links = memo(function Links(props: { readonly nodeIds: readonly number[]; readonly linksDown: readonly LinkState[] }) {
  const points = positions(props.nodeIds.length);
  const index = new Map(props.nodeIds.map((id, i) => [id, i]));
  const down = new Map(props.linksDown.map((l) => [`${l.a}-${l.b}`, l]));
  const lines = [];
  for (let i = 0; i < props.nodeIds.length; i++) {
    for (let j = i + 1; j < props.nodeIds.length; j++) {
      const a = props.nodeIds[i]!;
      const b = props.nodeIds[j]!;
      const cut = down.get(`${Math.min(a, b)}-${Math.max(a, b)}`);
      const p = points[index.get(a)!]!;
      const q = points[index.get(b)!]!;
      if (cut === undefined) {
        lines.push(<line class="link" x1={p.x} y1={p.y} x2={q.x} y2={q.y} />);
        continue;
      }
      const mid = { x: (p.x + q.x) / 2, y: (p.y + q.y) / 2 };
      const what = !cut.abUp && !cut.baUp ? 'cut both ways' : !cut.abUp ? `cut from node ${cut.a} to node ${cut.b}` : `cut from node ${cut.b} to node ${cut.a}`;
      lines.push(
        <g class="link-cut" data-testid="link-cut" data-link={`${cut.a}-${cut.b}`}>
          <title>
            node {cut.a} – node {cut.b}: {what}
          </title>
          <line x1={p.x} y1={p.y} x2={mid.x - (q.x - p.x) * 0.06} y2={mid.y - (q.y - p.y) * 0.06} />
          <line x1={mid.x + (q.x - p.x) * 0.06} y1={mid.y + (q.y - p.y) * 0.06} x2={q.x} y2={q.y} />
          <path d={cross(mid, 5)} class="cut-mark" />
        </g>,
      );
    }
  }
  return <g>{lines}</g>;
});

const Nodes = memo(function Nodes(props: { readonly nodeIds: readonly number[]; readonly frames: readonly (NodeFrame | null)[]; readonly violationNode: number | undefined }) {
  const points = positions(props.nodeIds.length);
  const r = nodeRadius(props.nodeIds.length);
  return (
    <g>
      {props.nodeIds.map((id, i) => {
        const f = props.frames[i] ?? null;
        const p = points[i]!;
        const alive = f !== null && f.alive;
        const role = f === null ? 'not started' : f.alive ? f.role : 'down';
        const color = f === null ? '#4d5560' : roleColor(f.role);
        const violated = props.violationNode === id;
        return (
          <g class={`node${alive ? '' : ' node-down'}${violated ? ' node-violation' : ''}`} data-testid="ring-node" data-node={id} data-role={role}>
            {violated && <circle cx={p.x} cy={p.y} r={r + 9} class="violation-ring" />}
            <circle cx={p.x} cy={p.y} r={r} fill="#fff" stroke={color} stroke-width={f?.role === 'leader' && alive ? 6 : 3} stroke-dasharray={alive ? undefined : '6 4'} />
            <text x={p.x} y={p.y - 24} class="node-name">
              node {id}
            </text>
            <text x={p.x} y={p.y - 4} fill={color} class="node-role">
              {role}
            </text>
            {f !== null && (
              <>
                <text x={p.x} y={p.y + 14}>term {f.term}</text>
                <text x={p.x} y={p.y + 32} class="node-small">
                  c {f.commit} · a {f.applied}
                </text>
              </>
            )}
            {violated && (
              <text x={p.x} y={p.y + r + 24} class="violation-label">
                ⚠ violation
              </text>
            )}
          </g>
        );
      })}
    </g>
  );
});

function Dots(props: { readonly messages: readonly MessageSpan[]; readonly t: number; readonly lingerMs: number; readonly at: ReadonlyMap<number, Point>; readonly radius: number }) {
  const byType = new Map<string, string[]>();
  const dropped: string[][] = Array.from({ length: DROP_LEVELS }, () => []);
  for (const m of props.messages) {
    const from = props.at.get(m.from);
    const to = props.at.get(m.to);
    if (from === undefined || to === undefined) continue;
    const lane = m.from < m.to ? LANE_OFFSET : -LANE_OFFSET;
    const span = m.endAt - m.sentAt;
    const done = span <= 0 ? 1 : (props.t - m.sentAt) / span;
    if (m.outcome === 'dropped') {
      // Lost on the way: it travels half way, then its red mark fades out.
      const p = along(from, to, 0.5 * Math.min(1, done), lane, props.radius);
      if (props.t < m.endAt) push(byType, m.type, dot(p));
      else {
        const fade = props.lingerMs <= 0 ? 1 : (props.t - m.endAt) / props.lingerMs;
        dropped[Math.min(DROP_LEVELS - 1, Math.max(0, Math.floor(fade * DROP_LEVELS)))]!.push(cross(p));
      }
    } else {
      push(byType, m.type, dot(along(from, to, done, lane, props.radius)));
    }
  }
  return (
    <g class="dots" aria-hidden="true">
      {[...byType].map(([type, ds]) => (
        <path key={type} d={ds.join('')} fill={messageColor(type)} stroke="#fff" stroke-width="1" />
      ))}
      {dropped.map((ds, level) => ds.length > 0 && <path key={`dropped-${level}`} d={ds.join('')} stroke={DROPPED_COLOR} stroke-width="3" fill="none" opacity={1 - level / DROP_LEVELS} />)}
    </g>
  );
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
