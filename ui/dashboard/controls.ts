/**
 * The controls `tsraft start` serves (src/cli/start-controls.ts), reached at the URL the feed
 * names. Only shown when the feed names one: a node started otherwise has no controls.
 */
import type { ControlledNode, NodeAction } from '../../src/cli/start-controls.js';

export type { ControlledNode, NodeAction };

const TIMEOUT_MS = 8000;

export interface SupervisorState {
  readonly nodes: readonly ControlledNode[];
  readonly cuts: readonly (readonly [number, number])[];
}

/** The supervisor's view of its processes (running, paused, held, down) and of the network cuts. */
export async function fetchState(controlsUrl: string): Promise<SupervisorState> {
  const response = await fetch(`${controlsUrl}/v1/state`, { signal: AbortSignal.timeout(TIMEOUT_MS), cache: 'no-store' });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return (await response.json()) as SupervisorState;
}

/** Runs one control; resolves with the supervisor's line, rejects with its refusal. */
export async function runControl(controlsUrl: string, path: string): Promise<string> {
  const response = await fetch(`${controlsUrl}${path}`, { method: 'POST', headers: { 'X-Tsraft-Control': '1' }, signal: AbortSignal.timeout(TIMEOUT_MS) });
  const body = (await response.json().catch(() => ({}))) as { message?: string; error?: { message?: string } };
  if (!response.ok) throw new Error(body.error?.message ?? `HTTP ${response.status}`);
  return body.message ?? 'done';
}

export function nodeActionPath(id: number, action: NodeAction): string {
  return `/v1/nodes/${id}/${action}`;
}
