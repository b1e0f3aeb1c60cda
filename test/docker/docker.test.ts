/**
 * The Dockerfile and compose.yaml. Their agreement with the package (the entry point, the built
 * directories, one member per service with its own id, volume and published port) is checked
 * everywhere; the image itself is built, and `tsraft --help` run in it, only where a Docker
 * daemon answers and the base image can be had: elsewhere that test is reported as skipped, with
 * the reason, never as passed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../process/npm-fixture.js';

const BASE_IMAGE = 'node:20-bookworm-slim';
const IMAGE_TAG = 'tsraft:test';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function docker(args: readonly string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile('docker', args, { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : null;
      resolve({ code, stdout, stderr: error !== null && stderr === '' ? String(error.message) : stderr });
    });
  });
}

const firstLine = (text: string): string => text.trim().split('\n')[0] ?? '';

/** Why the image cannot be built here, or undefined when it can. */
async function whyNoImageBuild(): Promise<string | undefined> {
  const info = await docker(['info', '--format', '{{.ServerVersion}}'], 20_000);
  if (info.code !== 0) return `no Docker daemon answers (docker info: ${firstLine(info.stderr) || `exit ${info.code}`})`;
  if ((await docker(['image', 'inspect', BASE_IMAGE], 20_000)).code === 0) return undefined;
  const pull = await docker(['pull', BASE_IMAGE], 300_000);
  if (pull.code !== 0) return `the base image ${BASE_IMAGE} is not available (docker pull: ${firstLine(pull.stderr) || `exit ${pull.code}`})`;
  return undefined;
}

describe('Docker', () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const compose = readFileSync(join(REPO_ROOT, 'compose.yaml'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };

  it('the Dockerfile runs the package bin and copies every built directory the package ships', () => {
    assert.match(dockerfile, new RegExp(`^FROM ${BASE_IMAGE.replace('.', '\\.')} AS build$`, 'm'));
    assert.match(dockerfile, /^RUN npm ci\b/m);
    const entrypoint = /^ENTRYPOINT \["node", "\/app\/([^"]+)"\]$/m.exec(dockerfile);
    assert.equal(entrypoint?.[1], pkg.bin['tsraft']);
    for (const dir of pkg.files.filter((f) => f.startsWith('dist/'))) {
      assert.match(dockerfile, new RegExp(`^COPY --from=build /src/${dir} \\./${dir}$`, 'm'), `the image lacks ${dir}`);
    }
  });

  it('compose.yaml runs three members, each with its id, the same peers, its own volume and its HTTP port published', () => {
    const peers = /^x-peers: &peers "([^"]+)"$/m.exec(compose)?.[1];
    assert.ok(peers !== undefined, 'a shared peers line');
    const members = peers.split(',');
    assert.equal(members.length, 3);
    members.forEach((member, id) => {
      const parsed = /^(\d+)=([\w.-]+):(\d+)\/http:\/\/127\.0\.0\.1:(\d+)$/.exec(member);
      assert.ok(parsed !== null, `peer entry ${member}`);
      const [, memberId, host, raftPort, httpPort] = parsed as unknown as [string, string, string, string, string];
      assert.equal(memberId, String(id));
      assert.equal(host, `tsraft-${id}`, 'peers reach each other by service name');
      const service = new RegExp(`^  tsraft-${id}:\\n((?:    .*\\n)+)`, 'm').exec(compose)?.[1];
      assert.ok(service !== undefined, `service tsraft-${id}`);
      assert.match(service, new RegExp(`"--id", "${id}", "--peers", \\*peers, "--listen", "0\\.0\\.0\\.0:${raftPort}", "--http", "0\\.0\\.0\\.0:${httpPort}", "--data-dir", "/data", "--insecure-peers"\\]`));
      assert.match(service, new RegExp(`ports: \\["127\\.0\\.0\\.1:${httpPort}:${httpPort}"\\]`));
      assert.match(service, new RegExp(`volumes: \\["tsraft-${id}-data:/data"\\]`));
      assert.match(compose, new RegExp(`^  tsraft-${id}-data:$`, 'm'));
    });
  });

  it('builds the image, whose tsraft answers --help', { timeout: 900_000 }, async (t) => {
    const reason = await whyNoImageBuild();
    if (reason !== undefined) {
      t.skip(`image not built: ${reason}`);
      return;
    }
    const build = await docker(['build', '-t', IMAGE_TAG, '.'], 840_000);
    assert.equal(build.code, 0, `docker build failed:\n${build.stdout}\n${build.stderr}`);
    const help = await docker(['run', '--rm', IMAGE_TAG, 'node', '--help'], 60_000);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: tsraft node /m);
  });
});
