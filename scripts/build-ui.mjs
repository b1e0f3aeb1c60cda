#!/usr/bin/env node
// Builds the web UI (ui/) into dist/ui: bundles each page with esbuild (Preact included: nothing is
// fetched at run time) and copies its HTML and CSS. esbuild does not type-check: `npm run build`
// runs `tsc -p ui/tsconfig.json` (a browser project apart from the Node one) before this. Each page is a directory: ui/<page>/ → dist/ui/<page>/, with
// main.tsx as its entry point (ui/dashboard, ui/replay).
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

/**
 * The replay page opens from a file:// URL too (the explorer prints such links), where Chrome
 * refuses module scripts: it is built as a classic script (IIFE) with relative paths. The dashboard
 * is only served by nodes and stays a module.
 */
const CLASSIC_PAGES = new Set(['replay']);

const PAGES = readdirSync('ui').filter((name) => statSync(join('ui', name)).isDirectory() && existsSync(join('ui', name, 'main.tsx')));

rmSync('dist/ui', { recursive: true, force: true });
for (const page of PAGES) {
  const out = join('dist/ui', page);
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join('ui', page, 'main.tsx')],
    outfile: join(out, 'app.js'),
    bundle: true,
    format: CLASSIC_PAGES.has(page) ? 'iife' : 'esm',
    platform: 'browser',
    target: ['es2022'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const name of readdirSync(join('ui', page))) {
    if (name.endsWith('.html') || name.endsWith('.css')) copyFileSync(join('ui', page, name), join(out, name));
  }
}
console.log(`build-ui: ${PAGES.join(', ')} → dist/ui`);
