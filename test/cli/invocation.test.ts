/** cliInvocation (src/cli/invocation.ts): the way start's banner tells a user to run the CLI again. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cliInvocation, shellQuote } from '../../src/cli/invocation.js';
import { MAIN } from './cli-fixture.js';

describe('cliInvocation', () => {
  it('launched through npm: npx tsraft, from the directory npm ran in', () => {
    assert.deepEqual(cliInvocation(MAIN, { npm_lifecycle_event: 'start', INIT_CWD: '/home/me/tsraft', PATH: '' }), {
      command: 'npx tsraft',
      directory: '/home/me/tsraft',
    });
  });

  it('a tsraft on PATH that is this entry point (global install, npm link): tsraft', () => {
    const bin = mkdtempSync(join(tmpdir(), 'tsraft-bin-'));
    try {
      symlinkSync(MAIN, join(bin, 'tsraft'));
      assert.deepEqual(cliInvocation(MAIN, { PATH: ['/nonexistent', bin].join(':') }), { command: 'tsraft', directory: undefined });
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('otherwise node with the absolute entry point, quoted for the shell when needed', () => {
    const invocation = cliInvocation(MAIN, { PATH: '/nonexistent' });
    assert.equal(invocation.directory, undefined);
    assert.match(invocation.command, /^node '?\/.*\/main\.js'?$/);
    assert.equal(shellQuote('/a b/it\'s'), `'/a b/it'\\''s'`);
    assert.equal(shellQuote('/plain/path-1.js'), '/plain/path-1.js');
  });
});
