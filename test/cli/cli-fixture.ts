/**
 * What the CLI tests share: running `tsraft ARGS` to its end, a running `tsraft start` (its output,
 * its exit, the pids of its nodes, and a stop that leaves no process behind), free ports for one,
 * and the checks every usage error gets.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPortRange } from '../../src/testing/ports.js';

/** The compiled CLI entry point. */
export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Added to this process's environment (TSRAFT_ENDPOINTS is always removed). */
  readonly env?: NodeJS.ProcessEnv;
  /** Killed after this long (default 30 s); its code is then null. */
  readonly timeoutMs?: number;
}

/** Runs `tsraft ARGS` in a child process to its end: its exit code (null if killed) and output. */
export function tsraft(args: readonly string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((resolve) => {
    const env = { ...process.env, ...options.env };
    delete env['TSRAFT_ENDPOINTS'];
    execFile(process.execPath, [MAIN, ...args], { timeout: options.timeoutMs ?? 30_000, env }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

export function assertNoStackTrace(text: string): void {
  assert.doesNotMatch(text, /^\s+at .+:\d+:\d+\)?$/m, `unexpected stack trace:\n${text}`);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends `sig` to `pid` if it is still there. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export interface StartPorts {
  /** The first raft port: node i listens on base + i. */
  readonly base: number;
  /** The first HTTP port: node i answers on httpBase + i. */
  readonly httpBase: number;
  /** `--base-port BASE --http-base-port HTTP_BASE`, for `tsraft start`. */
  readonly args: string[];
  /** Every node's HTTP URL, node 0 first. */
  readonly endpoints: string[];
}

/** Two ranges of `nodes` consecutive free ports on 127.0.0.1 (raft, then HTTP), apart from each other. */
export async function startPorts(nodes = 3): Promise<StartPorts> {
  const base = await freeLoopbackPortRange(nodes);
  const httpBase = await freeLoopbackPortRange(nodes, new Set(Array.from({ length: nodes }, (_, i) => base + i)));
  return {
    base,
    httpBase,
    args: ['--base-port', String(base), '--http-base-port', String(httpBase)],
    endpoints: Array.from({ length: nodes }, (_, i) => `http://127.0.0.1:${httpBase + i}`),
  };
}

/** A running `tsraft` child process: its output (stdout and stderr as they come) and its exit. */
export class TsraftProcess {
  output = '';
  /** Its exit code (null if a signal ended it). */
  readonly exit: Promise<number | null>;

  constructor(readonly proc: ChildProcess) {
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
    this.exit = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  }

  /** Waits until the output matches `pattern` (throws if the process exits first, or after `timeoutMs`). */
  async waitFor(what: string, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match !== null) return match;
      if (Date.now() > deadline || this.proc.exitCode !== null) throw new Error(`${what}: not seen; output so far:\n${this.output}`);
      await sleep(50);
    }
  }

  /** `signal`, then SIGKILL if it has not exited within 15 s. Its exit code. */
  async stopWith(signal: NodeJS.Signals): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill(signal);
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
      await this.exit;
      clearTimeout(timer);
    }
    return this.proc.exitCode;
  }
}

/** A running `tsraft start`: a TsraftProcess, and every node pid it printed. */
export class TsraftStart extends TsraftProcess {
  private constructor(proc: ChildProcess) {
    super(proc);
  }

  /** `tsraft start ARGS`, with `env` added to this process's environment. */
  static spawn(args: readonly string[], env: NodeJS.ProcessEnv = {}): TsraftStart {
    return new TsraftStart(spawn(process.execPath, [MAIN, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
  }

  /** Every node pid start has printed: the table, then "node N restarted (pid P)". */
  nodePids(): number[] {
    return [
      ...[...this.output.matchAll(/^\d+\s+127\.0\.0\.1:\d+\s+http:\/\/127\.0\.0\.1:\d+\s+(\d+)\s/gm)].map((m) => Number(m[1])),
      ...[...this.output.matchAll(/node \d+ restarted \(pid (\d+)\)/g)].map((m) => Number(m[1])),
    ];
  }

  /** SIGINT, then SIGKILL if it does not exit within 15 s; then SIGKILL to any node it left behind. Its exit code. */
  async stop(): Promise<number | null> {
    await this.stopWith('SIGINT');
    // Whatever start left behind (it should be nothing): its children, by the pids it printed.
    for (const pid of this.nodePids()) if (alive(pid)) signal(pid, 'SIGKILL');
    return this.proc.exitCode;
  }
}
