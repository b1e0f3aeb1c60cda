/** The replay page's entry point: renders the app into #app (see app.tsx), or says why it cannot. */
import './fail-safe.js';
import { render } from 'preact';
import { App } from './app.js';

const root = document.getElementById('app');
if (root !== null) {
  root.textContent = '';
  render(<App />, root);
}
