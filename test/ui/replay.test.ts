/**
 * The replay page in a real browser (playwright-core driving Debian's chromium), opened from a
 * file:// URL as the explorer prints it (dist/ui/replay/index.html#explore/...), so the simulator
 * runs in the browser:
 *
 * - a passing explorer seed ends in exactly the final state `npm run explore -- --seed S` prints;
 * - the keyboard drives the timeline: space pauses, the arrows step from event to event, Home and
 *   End go to the ends, and a click on the scrubber moves the shown time;
 * - a seed with an injected bug shows the broken invariant in a banner, a marker on the timeline and
 *   a button that jumps there; the CLI agrees on its final state too (with TSRAFT_SCREENSHOTS=1 the
 *   page is saved, messages in flight and the violation shown, as docs/images/replay.png);
 * - a suite test replays too;
 * - a bad fragment (or an unknown bug) shows an error, never a blank page.
 *
 * Skipped when no chromium is installed (.ci/run installs it with apt-get).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { findChromium } from './chromium.js';

const PAGE = fileURLToPath(new URL('../../ui/replay/index.html', import.meta.url));
const EXPLORE_CLI = fileURLToPath(new URL('../../scripts/explore.js', import.meta.url));
const SCREENSHOT = fileURLToPath(new URL('../../../docs/images/replay.png', import.meta.url));

/** A seed that passes on 3 nodes with 5 s of faults. */
const PASSING = { seed: 7, args: ['--nodes', '3', '--seconds', '5'], fragment: '#explore/seed=7&nodes=3&seconds=5' };
/** commit-old-term breaks the commit rule on this seed of these small worlds (Figure 8; `npm run explore -- --nodes 3 --seconds 5 --bug commit-old-term` lists others). */
const FAILING = { seed: 4, args: ['--nodes', '3', '--seconds', '5', '--bug', 'commit-old-term'], fragment: '#explore/seed=4&nodes=3&seconds=5&bug=commit-old-term', invariant: 'commit rule' };
/** How long a run in the page may take (it takes a second or two). */
const RUN_TIMEOUT_MS = 30_000;

/** The explorer CLI's "final state:" line for a seed (it exits 1 for a failing seed: that is fine here). */
function cliFinalState(seed: number, args: readonly string[]): string {
  const run = spawnSync(process.execPath, [EXPLORE_CLI, '--seed', String(seed), ...args], { encoding: 'utf8', timeout: 60_000 });
  const match = /^\s*final state: (.*)$/m.exec(run.stdout);
  assert.ok(match !== null, `the explorer printed no "final state:" line (exit ${run.status}):\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-2000)}`);
  return match[1]!.trim();
}

/** The virtual time the page shows now (ms). */
async function shownTime(page: Page): Promise<number> {
  return Number(await page.getByTestId('current-time').getAttribute('data-ms'));
}

const executablePath = findChromium();

describe('replay page in a browser', { skip: executablePath === null ? 'chromium is not installed (apt-get install chromium)' : false, timeout: 120_000 }, () => {
  let browser: Browser | null = null;
  const pageErrors: string[] = [];

  /** A new page on the replay of `fragment`, once its run is done (or failed, when `expect` says so). */
  async function open(fragment: string, expect: 'done' | 'error' = 'done'): Promise<Page> {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (error) => pageErrors.push(`${fragment}: ${error.message}`));
    page.on('console', (message) => message.type() === 'error' && pageErrors.push(`${fragment}: ${message.text()}`));
    await page.goto(`${pathToFileURL(PAGE).href}${fragment}`);
    const status = page.getByTestId('replay-status');
    await page.waitForFunction(`['done', 'error'].includes(document.querySelector('[data-testid="replay-status"]')?.textContent ?? '')`, null, { timeout: RUN_TIMEOUT_MS });
    const shown = await status.textContent();
    if (shown !== expect) assert.fail(`${fragment}: the page says ${shown}, not ${expect}:\n${await page.locator('body').innerText()}`);
    return page;
  }

  before(async () => {
    assert.ok(existsSync(PAGE), `${PAGE} is missing: run npm run build:ui`);
    browser = await chromium.launch({ executablePath: executablePath!, headless: true, args: ['--no-sandbox'], timeout: 20_000 });
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
  });

  let passing: Page;

  it('replays a passing explorer seed from a file:// URL to the final state the CLI prints', async () => {
    const started = Date.now();
    passing = await open(PASSING.fragment);
    const pageMs = Date.now() - started;
    const shown = (await passing.getByTestId('final-state').textContent())!;
    const fromCli = cliFinalState(PASSING.seed, PASSING.args);
    assert.equal(shown, fromCli, 'the page and the CLI disagree on the final state');
    assert.equal(JSON.parse(shown).invariant, null);
    await passing.getByTestId('verdict').waitFor();
    assert.equal(await passing.getByTestId('violation').count(), 0);
    assert.equal(await passing.getByTestId('ring-node').count(), 3);
    assert.equal(await passing.getByTestId('log').count(), 3);
    assert.match((await passing.getByTestId('command').textContent())!, /npm run explore -- --seed 7 --nodes 3 --seconds 5/);
    process.stdout.write(`# seed ${PASSING.seed} recorded in the browser in ${pageMs} ms\n`);
  });

  it('pauses with space, steps with the arrows, and moves to where the scrubber is clicked', async () => {
    const page = passing;
    const play = page.getByTestId('play');
    // The replay starts playing: space pauses it.
    await page.locator('h1').click();
    if ((await play.getAttribute('aria-label')) === 'Pause') await page.keyboard.press(' ');
    assert.equal(await play.getAttribute('aria-label'), 'Play');
    const paused = await shownTime(page);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await shownTime(page), paused, 'time moved while paused');

    await page.keyboard.press('Home');
    assert.equal(await shownTime(page), 0);
    await page.keyboard.press('ArrowRight');
    const first = await shownTime(page);
    assert.ok(first > 0, 'ArrowRight stepped to the first event');
    await page.keyboard.press('ArrowRight');
    const second = await shownTime(page);
    assert.ok(second > first, `ArrowRight stepped on (${first} → ${second})`);
    await page.keyboard.press('ArrowLeft');
    assert.equal(await shownTime(page), first, 'ArrowLeft stepped back');

    // Space plays (time moves), space pauses again.
    await page.keyboard.press(' ');
    assert.equal(await play.getAttribute('aria-label'), 'Pause');
    await page.waitForFunction(`Number(document.querySelector('[data-testid="current-time"]')?.getAttribute('data-ms')) > ${first}`, null, { timeout: 5000 });
    await page.keyboard.press(' ');
    assert.equal(await play.getAttribute('aria-label'), 'Play');

    // The scrubber: a click at three quarters of its width shows about three quarters of the run.
    const end = Number(await page.getByTestId('scrubber').getAttribute('max'));
    const box = (await page.getByTestId('scrubber').boundingBox())!;
    await page.mouse.click(box.x + box.width * 0.75, box.y + box.height / 2);
    const scrubbed = await shownTime(page);
    assert.ok(Math.abs(scrubbed - 0.75 * end) < 0.05 * end, `scrubbed to ${scrubbed} of ${end}`);
    assert.match((await page.getByTestId('current-time').textContent())!, /^t = /);
    // The arrows work from the focused scrubber too.
    await page.getByTestId('scrubber').focus();
    await page.keyboard.press('ArrowRight');
    assert.ok((await shownTime(page)) > scrubbed, 'ArrowRight on the scrubber steps to the next event');
    await page.keyboard.press('End');
    assert.equal(await shownTime(page), end);
    await page.close();
  });

  it('names the invariant an injected bug breaks, marks it on the timeline and jumps there', async () => {
    const page = await open(FAILING.fragment);
    const banner = page.getByTestId('violation');
    assert.equal(await page.getByTestId('violation-invariant').textContent(), FAILING.invariant);
    assert.match((await banner.textContent())!, /Invariant broken: commit rule/);
    const at = Number(await banner.getAttribute('data-at'));
    assert.ok(at > 0, 'the violation has a time');
    await page.getByTestId('violation-marker').waitFor();
    const shown = (await page.getByTestId('final-state').textContent())!;
    assert.equal(JSON.parse(shown).invariant, FAILING.invariant);
    assert.equal(shown, cliFinalState(FAILING.seed, FAILING.args), 'the page and the CLI disagree on the failing run');

    await page.locator('h1').click();
    await page.keyboard.press('Home');
    await page.getByTestId('jump-violation').click();
    assert.equal(await shownTime(page), at, 'the jump goes to the violation');
    assert.equal(await page.getByTestId('play').getAttribute('aria-label'), 'Play', 'the jump pauses');

    // Back from the violation to a moment with messages in flight (for the screenshot).
    await page.locator('h1').click();
    for (let i = 0; i < 400 && Number(await page.getByTestId('in-flight').getAttribute('data-count')) < 3; i++) await page.keyboard.press('ArrowLeft');
    assert.ok(Number(await page.getByTestId('in-flight').getAttribute('data-count')) > 0, 'some messages in flight before the violation');
    if (process.env['TSRAFT_SCREENSHOTS'] === '1') {
      // Played on a little (0.1×), so that the dots are on their way rather than at their senders.
      await page.keyboard.press(' ');
      await new Promise((resolve) => setTimeout(resolve, 60));
      await page.keyboard.press(' ');
      mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }
    await page.close();
  });

  it('replays a 6.824 suite test', async () => {
    const page = await open('#suite/seed=1&part=2A&test=InitialElection');
    const final = JSON.parse((await page.getByTestId('final-state').textContent())!) as { invariant: string | null; nodes: unknown[] };
    assert.equal(final.invariant, null);
    assert.equal(final.nodes.length, 3);
    await page.close();
  });

  it('shows an error, not a blank page, for a bad link', async () => {
    for (const [fragment, says] of [
      ['#explore/seed=abc', /seed/],
      ['#replay-everything/seed=1', /unknown replay kind/],
      ['#explore/seed=1&nodes=3&seconds=1&bug=no-such-bug', /unknown bug "no-such-bug"/],
      ['#suite/seed=1&part=2A&test=NoSuchTest', /no test "NoSuchTest" in part 2A/],
    ] as const) {
      const page = await open(fragment, 'error');
      assert.match((await page.getByTestId('replay-error').textContent())!, says, fragment);
      // The form to choose another run is still there.
      await page.getByTestId('source-form').waitFor();
      await page.close();
    }
    assert.deepEqual(pageErrors, [], 'the page logged errors');
  });
});
