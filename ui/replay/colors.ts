/** The page's colours: roles, message types, log terms (each with dark text or strokes on white, WCAG AA). */

const ROLE_COLORS: Readonly<Record<string, string>> = {
  leader: '#0b6b2f',
  candidate: '#b35c00',
  'pre-candidate': '#7a5c00',
  precandidate: '#7a5c00',
  follower: '#2f4f7f',
};

export function roleColor(role: string): string {
  return ROLE_COLORS[role] ?? '#4d5560';
}

const MESSAGE_COLORS: Readonly<Record<string, string>> = {
  AppendEntries: '#1c6ed6',
  AppendEntriesReply: '#0c8599',
  RequestVote: '#d9480f',
  RequestVoteReply: '#e67700',
  PreVote: '#9c36b5',
  PreVoteReply: '#c255d8',
  InstallSnapshot: '#5f3dc4',
  InstallSnapshotReply: '#7950f2',
  TimeoutNow: '#c2255c',
};

const SPARE_COLORS = ['#2b8a3e', '#5c940d', '#1864ab', '#862e9c', '#a61e4d', '#e8590c', '#087f5b', '#364fc7'];

/** A message type's colour: fixed for Raft's messages, a stable pick for others (suite RPC names). */
export function messageColor(type: string): string {
  const fixed = MESSAGE_COLORS[type];
  if (fixed !== undefined) return fixed;
  let hash = 0;
  for (let i = 0; i < type.length; i++) hash = (hash * 31 + type.charCodeAt(i)) >>> 0;
  return SPARE_COLORS[hash % SPARE_COLORS.length]!;
}

/** The colour of dropped messages' marks. */
export const DROPPED_COLOR = '#c92a2a';

const TERM_FILLS = ['#d0ebff', '#d3f9d8', '#fff3bf', '#ffe3e3', '#e5dbff', '#c5f6fa', '#ffe8cc', '#f3d9fa', '#e9fac8', '#dee2e6'];

/** A log entry's fill by its term (dark text reads on each). */
export function termFill(term: number): string {
  return TERM_FILLS[((term % TERM_FILLS.length) + TERM_FILLS.length) % TERM_FILLS.length]!;
}
