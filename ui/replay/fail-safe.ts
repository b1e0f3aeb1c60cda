/**
 * Imported first by main.tsx, so it is in place before any other module of the bundle runs: an
 * error that stops the page before it renders (or that the page does not catch) is shown in the
 * page, instead of leaving "Loading…" or a blank page.
 */
function show(message: string): void {
  const root = document.getElementById('app');
  if (root === null) return;
  // A page that rendered shows its own errors; this is for one that never got that far.
  if (root.querySelector('[data-testid="replay-status"]') !== null) return;
  const status = document.createElement('p');
  status.className = 'error';
  status.setAttribute('role', 'alert');
  status.dataset['testid'] = 'replay-status';
  status.textContent = 'error';
  const text = document.createElement('p');
  text.className = 'error';
  text.dataset['testid'] = 'replay-error';
  text.textContent = `The replay page failed to start: ${message}`;
  root.replaceChildren(status, text);
}

addEventListener('error', (event) => show(event.message));
addEventListener('unhandledrejection', (event) => show(event.reason instanceof Error ? event.reason.message : String(event.reason)));

export {};
