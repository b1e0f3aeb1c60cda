/**
 * The web UI's routes (see the API reference in http-api.ts): the dashboard's static bundle under
 * /ui (built into dist/ui by scripts/build-ui.mjs from ui/) and its live feed, GET /v1/events
 * (Server-Sent Events, dashboard-feed.ts).
 *
 *     GET /ui, /ui/                 the dashboard page (index.html)
 *     GET /ui/<file>                a file of the bundle (app.js, app.css, ...): only names the build
 *                                   made, never a path outside dist/ui
 *     GET /ui/replay/               the replay page (dist/ui/replay/index.html; /ui/replay redirects
 *                                   there, as its files are named relative to it)
 *     GET /ui/replay/<file>         a file of the replay bundle
 *     GET /v1/events                text/event-stream; 503 too-many-streams past STREAMS_MAX
 *
 * Each page is a directory under dist/ui: the dashboard's files are served at /ui/<file>, every
 * other page's (SUB_PAGES) at /ui/<page>/<file>. A missing bundle (the
 * TypeScript build ran without the UI build) answers 503 ui-not-built; an unknown file 404.
 */
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { HttpError } from './http-io.js';

export const UI_PREFIX = '/ui';
export const EVENTS_PATH = '/v1/events';

/** dist/ui, seen from dist/src/kv/. */
export const UI_ROOT = fileURLToPath(new URL('../../ui/', import.meta.url));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  map: 'application/json; charset=utf-8',
};

/** The pages served under /ui/<page>/ (the dashboard is at /ui itself). */
export const SUB_PAGES: readonly string[] = ['replay'];

/** Names a bundle file may have: no directories, no dot files, a known extension. */
const FILE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}\.(html|js|css|svg|map)$/;

/** Whether `rawPath` is one of the UI's static routes. */
export function isUiPath(rawPath: string): boolean {
  return rawPath === UI_PREFIX || rawPath.startsWith(`${UI_PREFIX}/`);
}

export class UiRoutes {
  constructor(private readonly root: string = UI_ROOT) {}

  /** GET /ui[/file]. */
  async serveStatic(res: ServerResponse, method: string, rawPath: string): Promise<void> {
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rawPath}; use GET`, { Allow: 'GET, HEAD' });
    let rest = rawPath.slice(UI_PREFIX.length).replace(/^\/+/, '');
    let page = 'dashboard';
    const slash = rest.indexOf('/');
    const sub = slash < 0 ? rest : rest.slice(0, slash);
    if (SUB_PAGES.includes(sub)) {
      if (slash < 0) {
        // The page names its files relative to itself: /ui/replay would load the dashboard's.
        res.writeHead(308, { Location: `${UI_PREFIX}/${sub}/`, 'Content-Length': 0 });
        res.end();
        return;
      }
      page = sub;
      rest = rest.slice(slash + 1);
    }
    const name = rest === '' ? 'index.html' : rest;
    if (!FILE_NAME.test(name)) throw new HttpError(404, 'no-route', `no such file in the web UI: ${rawPath.slice(0, 200)}`);
    let body: Buffer;
    try {
      body = await readFile(`${this.root}${page}/${name}`);
    } catch {
      // Told apart: a bundle that is not there at all, or one file it does not have.
      let built = true;
      try {
        await readFile(`${this.root}${page}/index.html`);
      } catch {
        built = false;
      }
      if (!built) throw new HttpError(503, 'ui-not-built', 'the web UI is not built on this node: run `npm run build` (it bundles ui/ into dist/ui)');
      throw new HttpError(404, 'no-route', `no such file in the web UI: ${rawPath.slice(0, 200)}`);
    }
    const extension = name.slice(name.lastIndexOf('.') + 1);
    res.writeHead(200, {
      'Content-Type': CONTENT_TYPES[extension] ?? 'application/octet-stream',
      'Content-Length': body.length,
      // The page itself is revalidated so a new build shows at once; its assets may be kept a little.
      'Cache-Control': name === 'index.html' ? 'no-cache' : 'public, max-age=300',
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': "default-src 'self'; connect-src 'self' http://127.0.0.1:* http://localhost:* https://127.0.0.1:* https://localhost:*; img-src 'self' data:; frame-ancestors 'none'",
      'Referrer-Policy': 'no-referrer',
    });
    res.end(method === 'HEAD' ? undefined : body);
  }
}
