/**
 * The layers of src/, checked by reading the source: every import specifier (static `import ...
 * from`, `export ... from`, side-effect `import '...'`, dynamic `import()`, and
 * `new URL('...', import.meta.url)`, which is how a module names a script it spawns) of every .ts
 * file under src/ is resolved and held against the rules below. The core must also stay a pure,
 * synchronous, deterministic state machine: no clock, no timers, no randomness of its own, no async
 * code. Every violation is listed as `file: imports X (rule)`, and the test fails with all of them.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { test } from 'node:test';

const ROOT = process.cwd();

// ---------------------------------------------------------------- reading the source

/** A source file with its comments blanked out (line numbers kept) and its string literals found. */
export interface Scanned {
  /** The source with comments replaced by spaces; strings and line breaks kept. */
  readonly code: string;
  /** The source without comments, each string literal replaced by `"#<n>"`, n indexing `strings`. */
  readonly masked: string;
  /** The value (escapes left as written) of every string literal and substitution-free template. */
  readonly strings: readonly string[];
}

/** Keywords after which a `/` starts a regular expression rather than a division. */
const REGEX_AFTER = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

/**
 * A small lexer: enough of TypeScript to tell code from comments, strings, template literals
 * (with `${}` code inside) and regular expression literals, so that `from 'x'` in a string or a
 * comment is never taken for an import.
 */
export function scan(source: string): Scanned {
  let code = '';
  let masked = '';
  const strings: string[] = [];
  /** For each open `${`: the brace depth at which its `}` closes it and the template resumes. */
  const templates: number[] = [];
  let depth = 0;
  let last = ''; // the last significant code token (a word or a punctuation character)
  let i = 0;
  const n = source.length;
  const blank = (text: string): string => text.replace(/[^\n]/g, ' ');

  /** Scans a template literal's text from `i` (just after "`" or "}"); returns at "`" or "${". */
  const templatePart = (): { text: string; end: 'close' | 'substitution' } => {
    let text = '';
    while (i < n) {
      const c = source[i]!;
      if (c === '\\') {
        text += source.slice(i, i + 2);
        i += 2;
      } else if (c === '`') {
        i++;
        return { text, end: 'close' };
      } else if (c === '$' && source[i + 1] === '{') {
        i += 2;
        return { text, end: 'substitution' };
      } else {
        text += c;
        i++;
      }
    }
    return { text, end: 'close' };
  };

  const template = (start: number, opening: boolean): void => {
    const part = templatePart();
    const raw = source.slice(start, i);
    code += raw;
    if (opening && part.end === 'close') {
      masked += `"#${strings.length}"`;
      strings.push(part.text);
    } else {
      masked += opening ? '`' : '}';
      masked += blank(part.text).replace(/ /g, '_');
      masked += part.end === 'close' ? '`' : '${';
    }
    if (part.end === 'substitution') templates.push(depth);
    last = part.end === 'close' ? '"' : '{';
  };

  while (i < n) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end < 0 ? n : end;
      code += blank(source.slice(i, stop));
      masked += blank(source.slice(i, stop));
      i = stop;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      code += blank(source.slice(i, stop));
      masked += blank(source.slice(i, stop));
      i = stop;
    } else if (c === "'" || c === '"') {
      const start = i++;
      let text = '';
      while (i < n && source[i] !== c && source[i] !== '\n') {
        if (source[i] === '\\') {
          text += source.slice(i, i + 2);
          i += 2;
        } else text += source[i++];
      }
      i++;
      code += source.slice(start, i);
      masked += `"#${strings.length}"`;
      strings.push(text);
      last = '"';
    } else if (c === '`') {
      const start = i++;
      template(start, true);
    } else if (c === '}' && templates.length > 0 && templates[templates.length - 1] === depth) {
      templates.pop();
      const start = i++;
      template(start, false);
    } else if (c === '/' && (last === '' || (/[^\w$)\]}"]/.test(last) && last.length === 1) || REGEX_AFTER.has(last))) {
      // A regular expression literal: skip it whole (it may hold quotes or slashes).
      const start = i++;
      let inClass = false;
      while (i < n && source[i] !== '\n') {
        const r = source[i]!;
        if (r === '\\') i++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        i++;
      }
      i++;
      while (i < n && /[a-z]/i.test(source[i]!)) i++;
      code += source.slice(start, i);
      masked += `/${'_'.repeat(Math.max(0, i - start - 2))}/`;
      last = ')';
    } else if (/[\w$]/.test(c)) {
      const word = /^[\w$]+/.exec(source.slice(i, i + 200))![0];
      code += word;
      masked += word;
      i += word.length;
      last = word;
    } else {
      if (c === '{') depth++;
      else if (c === '}') depth--;
      code += c;
      masked += c;
      i++;
      if (!/\s/.test(c)) last = c;
    }
  }
  return { code, masked, strings };
}

/** What a module imports: specifiers as written; `undefined` for a dynamic import of a computed value. */
export function importSpecifiers(source: string): (string | undefined)[] {
  const { masked, strings } = scan(source);
  const found: { at: number; specifier: string | undefined }[] = [];
  const literal = (ref: string): string => strings[Number(ref)]!;
  const patterns = [
    // import x from '...', import { x } from '...', import type ..., export { x } from '...', export * from '...'
    /\b(?:import|export)\b[^;"]*?\bfrom\s*"#(\d+)"/g,
    // import '...' (side effects only)
    /\bimport\s*"#(\d+)"/g,
    // import('...')
    /\bimport\s*\(\s*"#(\d+)"\s*[,)]/g,
    // new URL('...', import.meta.url): a module or script named relative to this one
    /\bnew\s+URL\s*\(\s*"#(\d+)"\s*,\s*import\s*\.\s*meta\s*\.\s*url\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of masked.matchAll(pattern)) found.push({ at: match.index, specifier: literal(match[1]!) });
  }
  for (const match of masked.matchAll(/\bimport\s*\((?!\s*"#\d+"\s*[,)])/g)) found.push({ at: match.index, specifier: undefined });
  return found.sort((a, b) => a.at - b.at).map((f) => f.specifier);
}

/**
 * The repository-relative path (`src/sim/prng.ts`) a relative specifier of `file` names, with the
 * emitted `.js` mapped back to the `.ts` source; undefined for packages and node: modules.
 */
export function resolveSpecifier(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return undefined;
  return posix.join(posix.dirname(file), specifier).replace(/\.js$/, '.ts');
}

// ---------------------------------------------------------------- the rules

interface ImportRule {
  readonly name: string;
  /** Whether the rule applies to the (repository-relative) file. */
  readonly appliesTo: (file: string) => boolean;
  /** Whether the rule forbids this import; `target` is undefined for packages and node: modules. */
  readonly forbids: (specifier: string, target: string | undefined) => boolean;
  /** Checks everything reachable through src/ imports too, not only the file's own imports. */
  readonly transitive?: boolean;
}

const under = (...dirs: string[]) => (path: string | undefined): boolean => path !== undefined && dirs.some((dir) => path.startsWith(`${dir}/`));
const ADAPTERS = ['src/runtime', 'src/storage', 'src/transport', 'src/codec', 'src/kv'];
const TEST_TOOLING = ['src/sim', 'src/harness', 'src/testing', 'src/linearizability', 'src/cli'];
const KV_SERVER_CODE = ['server.ts', 'http-api.ts', 'http-server.ts', 'http-kv-routes.ts', 'http-cluster-routes.ts', 'http-raft-errors.ts', 'http-io.ts', 'http-limits.ts', 'state-machine.ts', 'metrics.ts'].map((name) => `src/kv/${name}`);

export const RULES: readonly ImportRule[] = [
  {
    name: 'src/core imports only src/core',
    appliesTo: under('src/core'),
    forbids: (_, target) => !under('src/core')(target),
  },
  {
    name: 'the Ready driver imports only src/core (it is shared by the runtime and the simulator)',
    appliesTo: under('src/driver'),
    forbids: (_, target) => !under('src/core', 'src/driver')(target),
  },
  {
    name: 'runtime, storage, transport, codec and kv import nothing from sim, harness, testing, linearizability or cli',
    appliesTo: under(...ADAPTERS),
    forbids: (_, target) => under(...TEST_TOOLING)(target),
  },
  {
    name: 'the KV client imports no KV server code',
    appliesTo: (file) => file === 'src/kv/client.ts',
    forbids: (_, target) => target !== undefined && KV_SERVER_CODE.includes(target),
    transitive: true,
  },
  {
    name: 'src imports nothing from test/',
    appliesTo: under('src'),
    forbids: (_, target) => under('test')(target),
  },
];

const COMPUTED_RULE = 'import specifiers in src are string literals, so that these rules can check them';

/**
 * Every import-rule violation in `files` (repository-relative path → source), as
 * `file: imports X (rule)`; transitive ones name the chain of imports that leads there.
 */
export function layerProblems(files: ReadonlyMap<string, string>): string[] {
  const imports = new Map<string, { specifier: string | undefined; target: string | undefined }[]>();
  const importsOf = (file: string) => {
    let list = imports.get(file);
    if (list === undefined) {
      const source = files.get(file);
      list = source === undefined ? [] : importSpecifiers(source).map((specifier) => ({ specifier, target: specifier === undefined ? undefined : resolveSpecifier(file, specifier) }));
      imports.set(file, list);
    }
    return list;
  };
  const problems: string[] = [];
  for (const file of [...files.keys()].sort()) {
    if (!file.startsWith('src/')) continue;
    for (const { specifier } of importsOf(file)) {
      if (specifier === undefined) problems.push(`${file}: imports a computed specifier (${COMPUTED_RULE})`);
    }
    for (const rule of RULES) {
      if (!rule.appliesTo(file)) continue;
      for (const { specifier, target } of importsOf(file)) {
        if (specifier !== undefined && rule.forbids(specifier, target)) problems.push(`${file}: imports ${specifier} (${rule.name})`);
      }
      if (rule.transitive !== true) continue;
      // Breadth first through src/, so each forbidden module is reported once, by a shortest chain.
      const via = new Map<string, string[]>([[file, []]]);
      const queue = [file];
      while (queue.length > 0) {
        const from = queue.shift()!;
        for (const { specifier, target } of importsOf(from)) {
          if (target === undefined || via.has(target)) continue;
          const chain = [...via.get(from)!, target];
          via.set(target, chain);
          if (from !== file && specifier !== undefined && rule.forbids(specifier, target)) {
            problems.push(`${file}: imports ${target} via ${chain.join(' -> ')} (${rule.name})`);
          } else if (!rule.forbids(specifier ?? '', target)) queue.push(target);
        }
      }
    }
  }
  return problems;
}

const BANNED: ReadonlyArray<[RegExp, string]> = [
  [/\bDate\b/, 'Date (a clock)'],
  [/\bperformance\b/, 'performance (a clock)'],
  [/\bprocess\b/, 'process (Node runtime)'],
  [/\bMath\.random\b/, 'Math.random (unseeded randomness)'],
  [/\bcrypto\b/, 'crypto (randomness)'],
  [/\bset(Timeout|Interval|Immediate)\b/, 'timers'],
  [/\bqueueMicrotask\b/, 'queueMicrotask'],
  [/\basync\b/, 'async functions'],
  [/\bawait\b/, 'await'],
  [/\bPromise\b/, 'promises'],
  [/\brequire\s*\(/, 'require()'],
  [/\bWeakRef\b|\bFinalizationRegistry\b/, 'GC-dependent behaviour'],
];

const PURITY_RULE = 'src/core uses no clock, timer, randomness or async code';

/**
 * Every problem in one core file (`file` is its repository-relative path, e.g. src/core/raft.ts):
 * imports from outside src/core and uses of the banned globals. Comments do not count; string
 * literals do (a banned word in a string is as suspect as in code).
 */
export function purityProblems(file: string, source: string): string[] {
  const problems = layerProblems(new Map([[file, source]])).filter((problem) => problem.startsWith(`${file}: imports`));
  scan(source)
    .code.split('\n')
    .forEach((line, i) => {
      for (const [pattern, what] of BANNED) {
        if (pattern.test(line)) problems.push(`${file}:${i + 1}: uses ${what} (${PURITY_RULE}): ${line.trim()}`);
      }
    });
  return problems;
}

// ---------------------------------------------------------------- the repository

/** Every .ts file under `dir` (repository-relative, recursive), sorted. */
function tsFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) found.push(...tsFiles(path));
    else if (entry.name.endsWith('.ts')) found.push(path);
  }
  return found.sort();
}

function readSources(files: readonly string[]): Map<string, string> {
  return new Map(files.map((file) => [file, readFileSync(join(ROOT, file), 'utf8')]));
}

test('src/core imports nothing outside itself and uses no clock, timer, randomness or async code', () => {
  const files = tsFiles('src/core');
  assert.ok(files.includes('src/core/raft.ts'), `expected to find the core in ${join(ROOT, 'src/core')}`);
  const problems = files.flatMap((file) => purityProblems(file, readFileSync(join(ROOT, file), 'utf8')));
  assert.deepEqual(problems, [], `\n${problems.join('\n')}\n`);
});

test('every import in src/ keeps to the layers', () => {
  const files = tsFiles('src');
  assert.ok(files.includes('src/kv/client.ts') && files.includes('src/runtime/node.ts'), `expected to find the sources in ${join(ROOT, 'src')}`);
  const problems = layerProblems(readSources(files));
  if (problems.length > 0) assert.fail(`${problems.length} layer violation${problems.length === 1 ? '' : 's'}:\n${problems.join('\n')}`);
});

test('the purity check catches what it is meant to catch', () => {
  assert.equal(purityProblems('src/core/x.ts', "import { readFileSync } from 'node:fs';").length, 1);
  assert.equal(purityProblems('src/core/x.ts', "import { Network } from '../sim/network.js';").length, 1);
  assert.equal(purityProblems('src/core/x.ts', 'const t = Date.now();').length, 1);
  assert.equal(purityProblems('src/core/x.ts', 'const r = Math.random();').length, 1);
  assert.equal(purityProblems('src/core/x.ts', 'setTimeout(() => 1, 5);').length, 1);
  assert.equal(purityProblems('src/core/x.ts', 'async function f() { await g(); }').length, 2);
  assert.equal(purityProblems('src/core/x.ts', '// a comment about Date.now() is fine').length, 0);
  assert.equal(purityProblems('src/core/x.ts', "import { assert } from './assert.js';").length, 0);
  assert.deepEqual(purityProblems('src/core/x.ts', "export * from 'node:fs';"), ['src/core/x.ts: imports node:fs (src/core imports only src/core)']);
  assert.equal(purityProblems('src/core/sub/x.ts', "import { assert } from '../assert.js';").length, 0);
  assert.equal(purityProblems('src/core/x.ts', "const s = 'see http://example.com'; // Date").length, 0);
});

test('the layer check catches what it is meant to catch', () => {
  const check = (file: string, source: string): string[] => layerProblems(new Map([[file, source]]));
  // Each kind of import, in a layer that must not have it.
  assert.deepEqual(check('src/runtime/x.ts', "import { Prng } from '../sim/prng.js';"), [
    'src/runtime/x.ts: imports ../sim/prng.js (runtime, storage, transport, codec and kv import nothing from sim, harness, testing, linearizability or cli)',
  ]);
  assert.equal(check('src/storage/x.ts', "export { Cluster } from '../harness/cluster.js';").length, 1);
  assert.equal(check('src/transport/x.ts', "import type {\n  History,\n} from '../linearizability/history.js';").length, 1);
  assert.equal(check('src/codec/x.ts', "const m = await import('../testing/index.js');").length, 1);
  assert.equal(check('src/kv/x.ts', "import '../cli/common.js';").length, 1);
  assert.equal(check('src/kv/x.ts', "import('../' + name)").length, 1);
  // src must not reach into test/, not even to spawn a script from there.
  assert.equal(check('src/testing/x.ts', "import { f } from '../../test/unit/core-fixtures.js';").length, 1);
  assert.equal(check('src/testing/x.ts', "const ENTRY = new URL('../../test/process/raft-process.js', import.meta.url);").length, 1);
  // The client, directly or through another module.
  assert.equal(check('src/kv/client.ts', "import type { KvServerStatus } from './server.js';").length, 1);
  const tree = new Map([
    ['src/kv/client.ts', "import { a } from './commands.js';"],
    ['src/kv/commands.ts', "import { b } from './http-io.js';"],
    ['src/kv/http-io.ts', "import { c } from './metrics.js';"],
  ]);
  assert.deepEqual(layerProblems(tree), ['src/kv/client.ts: imports src/kv/http-io.ts via src/kv/commands.ts -> src/kv/http-io.ts (the KV client imports no KV server code)']);
  // Every violation is listed, not only the first.
  assert.equal(check('src/runtime/x.ts', "import '../sim/a.js';\nimport '../harness/b.js';\nimport '../../test/c.js';").length, 3);
  // Allowed imports, and look-alikes in strings, comments and regular expressions.
  assert.deepEqual(check('src/runtime/x.ts', "import { RaftCore } from '../core/raft.js';\nimport { open } from 'node:fs/promises';"), []);
  assert.deepEqual(check('src/testing/x.ts', "import { Prng } from '../sim/prng.js';\nimport { formatPeers } from '../cli/common.js';"), []);
  assert.deepEqual(check('src/kv/client.ts', "import type { KvServerStatus } from './api-types.js';"), []);
  assert.deepEqual(check('src/kv/x.ts', "const help = `copied from '../sim/prng.js'`;"), []);
  assert.deepEqual(check('src/kv/x.ts', "const help = \"export x from '../cli/main.js'\";"), []);
  assert.deepEqual(check('src/kv/x.ts', "// import { Prng } from '../sim/prng.js';\n/* export * from '../cli/common.js'; */"), []);
  assert.deepEqual(check('src/kv/x.ts', "const re = /from '..\\/sim\\/prng.js'/;\nconst t = `${a}${`b ${c}`}`;"), []);
  assert.deepEqual(check('src/kv/x.ts', 'const half = total / 2; const quarter = half / 2;'), []);
});
