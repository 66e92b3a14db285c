/**
 * Static proof of the deploy configs (no Docker engine, no cluster here):
 * - every Kubernetes manifest against the Kubernetes schemas and types shipped in `kubernetes-models`, plus
 *   the cross-references kubectl would not catch (selectors, names, ports) and the relay's own config rules;
 * - the compose file parses the way compose reads it and every file it references exists or is made by
 *   make-dev-secrets.sh; its relay environment is a valid relay configuration; HAProxy accepts haproxy.cfg;
 * - the Dockerfiles are multi-stage, non-root, with a health check, copying only what exists;
 * - the systemd unit passes `systemd-analyze verify` and carries the hardening;
 * - the Grafana dashboard queries only metrics the relay exports.
 * The running proof of the same files is topology.test.ts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SETTINGS as GATEWAY_SETTINGS, mergeSettings, validateConfig } from '../../gateway-agent/src/config.js';
import { configFromEnv, LIMIT_ENV, resolveConfig } from '../../relay/src/config.js';
import { RelayMetrics } from '../../relay/src/observability/metrics.js';
import {
  COMPOSE_FILE,
  ComposeInterpolationError,
  DEPLOY_DIR,
  interpolate,
  loadCompose,
  REPO_ROOT,
  serviceCommand,
  serviceEnvironment,
  serviceMounts,
} from './helpers/compose.js';
import { validateComposeSchema } from './helpers/compose-schema.js';
import { copySources, expandArgs, parseDockerfile } from './helpers/dockerfile.js';
import { haveCommand, run, tempDir } from './helpers/exec.js';
import { type Manifest, readManifests, typeCheckManifests, validateWithSchema, yamlFiles } from './helpers/k8s.js';

const K8S_DIR = join(DEPLOY_DIR, 'k8s');
const manifestFiles = yamlFiles(K8S_DIR).filter((f) => basename(f) !== 'kustomization.yaml');
const manifests = readManifests(manifestFiles);

/** Settings the relay reads (DESIGN.md "Configuration" plus the limit settings of relay/src/config.ts). */
const RELAY_SETTINGS = new Set([
  'SCANRELAY_HOST',
  'SCANRELAY_PORT',
  'SCANRELAY_REDIS_URL',
  'SCANRELAY_MANAGE_JWKS',
  'SCANRELAY_MANAGE_ISSUER',
  'SCANRELAY_ALLOWED_ORIGINS',
  'SCANRELAY_DATA_DIR',
  'SCANRELAY_NODE_ID',
  'SCANRELAY_TRANSPORT',
  'SCANRELAY_LOG_LEVEL',
  'SCANRELAY_AUDIENCE',
  'SCANRELAY_TRUST_PROXY',
  ...Object.keys(LIMIT_ENV),
]);

function one(kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.name === name));
  expect(found, `exactly one ${kind}${name ? ` ${name}` : ''} in deploy/k8s`).toHaveLength(1);
  return found[0] as Manifest;
}

// biome-ignore lint/suspicious/noExplicitAny: manifests are schema-checked above; the cross-checks walk them freely.
type Loose = any;

describe('Kubernetes manifests (deploy/k8s)', () => {
  it('has the pieces of a relay deployment', () => {
    const kinds = manifests.map((m) => m.kind).sort();
    for (const kind of [
      'ConfigMap',
      'Deployment',
      'HorizontalPodAutoscaler',
      'Ingress',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Secret',
      'Service',
    ])
      expect(kinds).toContain(kind);
  });

  it.each(manifests.map((m) => [`${relative(REPO_ROOT, m.file)}#${m.index} ${m.kind}/${m.name}`, m] as const))(
    'validates against the Kubernetes schema: %s',
    async (_label, m) => {
      expect(await validateWithSchema(m)).toBeUndefined();
    },
  );

  it('has no unknown or misspelt fields (kubernetes-models types, excess-property check)', () => {
    expect(typeCheckManifests(manifests)).toEqual([]);
  });

  it('the two validators reject a broken Deployment (they can fail)', async () => {
    const misspelt = structuredClone(one('Deployment')) as Manifest;
    const c1 = (misspelt.doc as Loose).spec.template.spec.containers[0];
    c1.readinesProbe = c1.readinessProbe;
    expect(typeCheckManifests([misspelt]).join('\n')).toMatch(/'"readinesProbe"' does not exist/);
    const mistyped = structuredClone(one('Deployment')) as Manifest;
    (mistyped.doc as Loose).spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
    expect(await validateWithSchema(mistyped)).toMatch(/containerPort must be integer/);
  });

  it('kustomization.yaml lists exactly the manifest files', () => {
    const k = parse(readFileSync(join(K8S_DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    expect([...k.resources].sort()).toEqual(manifestFiles.map((f) => basename(f)).sort());
  });

  it('relay Deployment: probes, drain on shutdown, non-root read-only container, resources, spread', () => {
    const d = one('Deployment').doc as Loose;
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(d.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(d.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    // preStop runs before SIGTERM; the grace period must cover it plus the relay's own drain.
    const preStop = c.lifecycle.preStop.sleep.seconds as number;
    expect(preStop).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStop + 15);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.seccompProfile.type).toBe('RuntimeDefault');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.resources.requests.cpu).toBeDefined();
    expect(c.resources.requests.memory).toBeDefined();
    expect(c.resources.limits.memory).toBeDefined();
    const keys = pod.topologySpreadConstraints.map((t: Loose) => t.topologyKey);
    expect(keys).toEqual(expect.arrayContaining(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']));
    // Read-only root: every path the relay writes is a volume.
    const mounts = c.volumeMounts.map((v: Loose) => v.mountPath);
    expect(mounts).toEqual(expect.arrayContaining(['/tmp', '/var/lib/scanrelay']));
    const volumeNames = new Set(pod.volumes.map((v: Loose) => v.name));
    for (const m of c.volumeMounts) expect(volumeNames.has(m.name), `volume ${m.name}`).toBe(true);
  });

  it('Service, PDB, HPA, NetworkPolicy and Ingress point at the relay pods and at objects that exist', () => {
    const d = one('Deployment').doc as Loose;
    const podLabels = d.spec.template.metadata.labels as Record<string, string>;
    const matches = (selector: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => podLabels[k] === v);
    expect(Object.entries(d.spec.selector.matchLabels).every(([k, v]) => podLabels[k] === v)).toBe(true);

    const svc = one('Service', 'scanrelay-relay').doc as Loose;
    expect(matches(svc.spec.selector)).toBe(true);
    const portName = svc.spec.ports[0].targetPort;
    expect(d.spec.template.spec.containers[0].ports.map((p: Loose) => p.name)).toContain(portName);

    expect(matches((one('PodDisruptionBudget').doc as Loose).spec.selector.matchLabels)).toBe(true);
    const hpa = one('HorizontalPodAutoscaler').doc as Loose;
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);

    const np = one('NetworkPolicy').doc as Loose;
    expect(matches(np.spec.podSelector.matchLabels)).toBe(true);
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const ingressFrom = np.spec.ingress.flatMap((r: Loose) => r.from);
    expect(
      ingressFrom.some((f: Loose) => f.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'ingress-nginx'),
    ).toBe(true);
    const egressPorts = np.spec.egress.flatMap((r: Loose) => r.ports.map((p: Loose) => `${p.protocol}/${p.port}`));
    expect(egressPorts).toEqual(expect.arrayContaining(['TCP/6379', 'UDP/53', 'TCP/53']));

    const ing = one('Ingress').doc as Loose;
    const ann = ing.metadata.annotations as Record<string, string>;
    expect(Number(ann['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(60);
    expect(Number(ann['nginx.ingress.kubernetes.io/proxy-send-timeout'])).toBeGreaterThanOrEqual(60);
    expect(ann['nginx.ingress.kubernetes.io/proxy-buffering']).toBe('off');
    const paths = ing.spec.rules.flatMap((r: Loose) => r.http.paths);
    for (const p of paths) {
      expect(p.backend.service.name).toBe(svc.metadata.name);
      expect(svc.spec.ports.map((sp: Loose) => sp.name)).toContain(p.backend.service.port.name);
    }
    expect(paths.map((p: Loose) => p.path)).toContain('/v1/');
    expect(paths.map((p: Loose) => p.path)).not.toContain('/metrics');

    // Every ConfigMap/Secret the pod reads exists, with the key it reads.
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    for (const ref of c.envFrom) one('ConfigMap', ref.configMapRef.name);
    for (const e of c.env.filter((x: Loose) => x.valueFrom?.secretKeyRef)) {
      const sec = one('Secret', e.valueFrom.secretKeyRef.name).doc as Loose;
      expect(Object.keys(sec.stringData ?? sec.data ?? {})).toContain(e.valueFrom.secretKeyRef.key);
    }
    for (const v of pod.volumes.filter((x: Loose) => x.secret)) {
      const sec = one('Secret', v.secret.secretName).doc as Loose;
      for (const item of v.secret.items ?? []) expect(Object.keys(sec.stringData ?? sec.data)).toContain(item.key);
    }
    one('ServiceAccount', pod.serviceAccountName);
  });

  it('ConfigMap + Secrets make a configuration the relay accepts, naming only settings it reads', () => {
    const d = one('Deployment').doc as Loose;
    const c = d.spec.template.spec.containers[0];
    const cm = one('ConfigMap', c.envFrom[0].configMapRef.name).doc as Loose;
    const env: Record<string, string> = { ...cm.data, SCANRELAY_NODE_ID: 'scanrelay-relay-7d9c5b6f4-x2x9q' };
    for (const e of c.env.filter((x: Loose) => x.valueFrom?.secretKeyRef)) {
      const sec = one('Secret', e.valueFrom.secretKeyRef.name).doc as Loose;
      env[e.name] = sec.stringData[e.valueFrom.secretKeyRef.key];
    }
    for (const name of Object.keys(env)) expect(RELAY_SETTINGS.has(name), `${name} is not a relay setting`).toBe(true);
    const config = resolveConfig(configFromEnv(env));
    expect(config.redisUrl).toMatch(/^rediss:\/\//);
    expect(config.trustProxy, 'behind the ingress, per-IP caps need the forwarded address').toBe(true);
    expect(config.port).toBe(d.spec.template.spec.containers[0].ports[0].containerPort);
    // The JWKS path is where the Secret volume is mounted.
    const jwksMount = c.volumeMounts.find((m: Loose) => config.manageJwks.startsWith(`${m.mountPath}/`));
    expect(jwksMount, 'SCANRELAY_MANAGE_JWKS lies inside a mounted volume').toBeDefined();
    const jwks = JSON.parse((one('Secret', 'scanrelay-manage-jwks').doc as Loose).stringData['jwks.json']);
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const k of jwks.keys) expect(k.d, 'a JWKS here holds public keys only').toBeUndefined();
  });
});

describe('docker compose (deploy/compose)', () => {
  const vars = { SCANRELAY_REDIS_PASSWORD: 'compose-test-password' };
  let secretsDir = '';

  beforeAll(async () => {
    secretsDir = await tempDir('secrets');
    const made = await run('sh', [join(DEPLOY_DIR, 'compose/make-dev-secrets.sh'), '--out', secretsDir]);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
  });
  afterAll(async () => {
    if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
  });

  it('interpolates like compose and refuses to start without a Redis password', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose syntax, not a template literal.
    expect(interpolate('a${X:-d}b${Y-e}$$', { X: '', Y: '' })).toBe('adb$');
    expect(() => loadCompose({})).toThrow(ComposeInterpolationError);
    expect(() => loadCompose({})).toThrow(/SCANRELAY_REDIS_PASSWORD/);
  });

  it('follows the Compose Specification schema (no unknown keys, right types)', () => {
    const doc = parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as Record<string, Loose>;
    expect(validateComposeSchema(doc)).toEqual([]);
    // The schema check can fail: a misspelt key is reported.
    doc.services.relay1.readonly = true;
    expect(validateComposeSchema(doc).join('\n')).toMatch(
      /\/services\/relay1 must NOT have additional properties.*readonly/,
    );
  });

  it('has Redis, two relays, HAProxy and the demo app, each image built from a Dockerfile that exists', () => {
    const compose = loadCompose(vars);
    for (const name of ['redis', 'relay1', 'relay2', 'haproxy', 'demo'])
      expect(compose.services[name], name).toBeDefined();
    for (const [name, s] of Object.entries(compose.services)) {
      if (!s.build) continue;
      const b = typeof s.build === 'string' ? { context: s.build } : s.build;
      const context = resolve(compose.dir, b.context);
      expect(context, `${name} build context`).toBe(REPO_ROOT);
      expect(existsSync(join(context, b.dockerfile ?? 'Dockerfile')), `${name} dockerfile`).toBe(true);
    }
  });

  it('every bind mount exists, and every secret file is one make-dev-secrets.sh writes', () => {
    const compose = loadCompose(vars);
    const made = new Set(readdirSync(secretsDir));
    for (const [name, sec] of Object.entries(compose.secrets ?? {})) {
      expect(sec.file, `secret ${name}`).toBeDefined();
      const file = resolve(compose.dir, sec.file as string);
      expect(relative(compose.dir, file)).toMatch(/^secrets\//);
      expect(made.has(basename(file)), `make-dev-secrets.sh writes ${basename(file)}`).toBe(true);
    }
    for (const name of Object.keys(compose.services)) {
      for (const [target, host] of serviceMounts(compose, name)) {
        if (host === undefined) continue;
        if (relative(compose.dir, host).startsWith('secrets/')) continue;
        expect(existsSync(host), `${name}: ${host} → ${target}`).toBe(true);
      }
    }
    expect(readFileSync(join(compose.dir, '.gitignore'), 'utf8')).toMatch(/^secrets\/$/m);
  });

  it('Redis runs with AOF on from the mounted redis.conf, with a health check and no password on its command line for the check', () => {
    const compose = loadCompose(vars);
    const cmd = serviceCommand(compose, 'redis');
    expect(cmd[0]).toBe('redis-server');
    const conf = serviceMounts(compose, 'redis').get(cmd[1] as string);
    expect(conf && readFileSync(conf, 'utf8')).toMatch(/^appendonly yes$/m);
    expect(readFileSync(conf as string, 'utf8')).toMatch(/^maxmemory-policy noeviction$/m);
    expect(compose.services.redis?.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
    expect(serviceEnvironment(compose, 'redis').REDISCLI_AUTH).toBe(vars.SCANRELAY_REDIS_PASSWORD);
  });

  it('each relay environment is a configuration the relay accepts, on its own node id', () => {
    const compose = loadCompose(vars);
    const ids = new Set<string>();
    for (const name of ['relay1', 'relay2']) {
      const env = serviceEnvironment(compose, name);
      for (const k of Object.keys(env)) expect(RELAY_SETTINGS.has(k), `${name}: ${k}`).toBe(true);
      const config = resolveConfig(configFromEnv(env));
      expect(config.redisUrl).toBe(`redis://:${vars.SCANRELAY_REDIS_PASSWORD}@redis:6379/0`);
      expect(config.trustProxy).toBe(true);
      expect(compose.services[name]?.ports, `${name} must be reachable only through HAProxy`).toBeUndefined();
      expect(serviceMounts(compose, name).get(config.manageJwks), 'JWKS is a mounted secret').toBeDefined();
      ids.add(config.nodeId);
      // HAProxy sends to the port the relay listens on.
      expect(serviceEnvironment(compose, 'haproxy')[`RELAY${name.slice(-1)}_ADDR`]).toBe(`${name}:${config.port}`);
    }
    expect(ids.size).toBe(2);
  });

  it('the gateway service (profile "site") has a configuration the agent accepts', () => {
    const compose = loadCompose(vars);
    const env = serviceEnvironment(compose, 'gateway');
    for (const k of Object.keys(env))
      if (k.startsWith('SCANRELAY_')) expect(Object.hasOwn(GATEWAY_SETTINGS, k), k).toBe(true);
    const config = validateConfig(mergeSettings({}, env), 'run');
    expect(serviceMounts(compose, 'gateway').get(config.manageJwks)).toBeDefined();
    expect(serviceMounts(compose, 'gateway').get(env.NODE_EXTRA_CA_CERTS as string)).toBeDefined();
  });

  it('HAProxy accepts haproxy.cfg with the compose environment (haproxy -c)', async () => {
    const compose = loadCompose(vars);
    const env = serviceEnvironment(compose, 'haproxy');
    const certTarget = env.SCANRELAY_TLS_CERT as string;
    expect(basename(hostPath(compose, 'haproxy', certTarget))).toBe('tls.pem');
    const cfg = serviceMounts(compose, 'haproxy').get('/usr/local/etc/haproxy/haproxy.cfg');
    expect(cfg).toBe(join(DEPLOY_DIR, 'proxy/haproxy.cfg'));
    // Container names do not resolve here; `init-addr none` lets HAProxy start anyway, as it must in compose.
    const checked = await run('haproxy', ['-c', '-f', cfg as string], {
      env: { PATH: process.env.PATH, ...env, SCANRELAY_TLS_CERT: join(secretsDir, 'tls.pem') },
    });
    expect(checked.stdout + checked.stderr).not.toMatch(/ALERT/);
    expect(checked.code).toBe(0);
  });

  it('haproxy.cfg balances by least connections, health-checks /readyz and keeps WebSocket tunnels open', () => {
    const cfg = readFileSync(join(DEPLOY_DIR, 'proxy/haproxy.cfg'), 'utf8');
    const relay = /^backend be_relay\n([\s\S]*?)(?=^\S)/m.exec(cfg)?.[1] ?? '';
    expect(relay).toMatch(/^\s+balance leastconn$/m);
    expect(relay).toMatch(/^\s+http-check send meth GET uri \/readyz/m);
    expect(relay).toMatch(/^\s+server relay1 "\$\{RELAY1_ADDR\}" check$/m);
    expect(cfg).toMatch(/^\s+timeout tunnel /m);
    expect(cfg).toMatch(/bind "\$\{HAPROXY_BIND\}" ssl crt "\$\{SCANRELAY_TLS_CERT\}"/);
    expect(cfg).toMatch(/http-request deny deny_status 404 if \{ path -m beg \/metrics \}/);
  });
});

function hostPath(compose: ReturnType<typeof loadCompose>, name: string, target: string): string {
  const host = serviceMounts(compose, name).get(target);
  if (!host) throw new Error(`${name} mounts nothing at ${target}`);
  return host;
}

describe('Dockerfiles (deploy/docker)', () => {
  const dockerDir = join(DEPLOY_DIR, 'docker');
  const files = readdirSync(dockerDir).filter((f) => f.endsWith('.Dockerfile'));

  it('there is one for the relay, the gateway agent and the demo app', () => {
    expect(files.sort()).toEqual(['demo.Dockerfile', 'gateway.Dockerfile', 'relay.Dockerfile']);
  });

  it.each(files)(
    '%s: multi-stage on Node 24 trixie, npm ci + build, slim non-root runtime with a health check',
    (f) => {
      const path = join(dockerDir, f);
      const df = parseDockerfile(path);
      expect(df.stages.length).toBeGreaterThanOrEqual(2);
      for (const s of df.stages) expect(expandArgs(s.from, df.globalArgs)).toBe('node:24-trixie-slim');
      const build = df.stages.find((s) => s.name === 'build');
      const runtime = df.stages[df.stages.length - 1];
      expect(build).toBeDefined();
      const buildRuns = build?.instructions.filter((i) => i.op === 'RUN').map((i) => i.args) ?? [];
      expect(buildRuns.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
      expect(buildRuns.some((r) => /\bnpm run build\b/.test(r))).toBe(true);
      const ops = runtime?.instructions ?? [];
      expect(ops.some((i) => i.op === 'RUN' && /npm ci --omit=dev .*--workspace/.test(i.args))).toBe(true);
      const user = ops.filter((i) => i.op === 'USER').pop()?.args;
      expect(user).toBeDefined();
      expect(user).not.toMatch(/^(root|0)(:|$)/);
      expect(ops.some((i) => i.op === 'HEALTHCHECK')).toBe(true);
      // Only compiled output crosses from the build stage.
      for (const i of ops.filter((x) => x.op === 'COPY' && /--from=/.test(x.args)))
        expect(i.args).toMatch(/--from=build \S+\/dist \S+\/dist$/);
      // Every COPY source exists in the build context (the repository root).
      for (const s of df.stages)
        for (const i of s.instructions)
          for (const src of copySources(i) ?? [])
            expect(existsSync(join(REPO_ROOT, src)), `${f}: COPY ${src}`).toBe(true);
      // The entrypoint is a file the build produces from a source that exists.
      const entry = ops.find((i) => i.op === 'ENTRYPOINT')?.args ?? '';
      const script = (JSON.parse(entry) as string[]).find((a) => /\.m?js$/.test(a)) as string;
      const source = script.replace('/dist/', '/').replace(/\.js$/, '.ts');
      const candidates = [
        join(REPO_ROOT, script.endsWith('.mjs') ? script : source),
        join(REPO_ROOT, source.replace(/^([^/]+)\//, '$1/src/')),
      ];
      expect(
        candidates.some((c) => existsSync(c)),
        `${f}: source of ${script}`,
      ).toBe(true);
      expect(existsSync(`${path}.dockerignore`), `${f}.dockerignore`).toBe(true);
    },
  );
});

describe('systemd unit (deploy/systemd/scanrelay-gateway.service)', () => {
  const unit = join(DEPLOY_DIR, 'systemd/scanrelay-gateway.service');
  const text = readFileSync(unit, 'utf8');
  const keys = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) keys.set(m[1] as string, [...(keys.get(m[1] as string) ?? []), m[2] as string]);
  }
  const value = (k: string) => keys.get(k)?.at(-1);

  it('carries the hardening and restart policy', () => {
    expect(value('User')).toBe('scanrelay-gateway');
    expect(value('ProtectSystem')).toBe('strict');
    expect(value('ReadWritePaths')).toBe('/var/lib/scanrelay-gateway');
    expect(value('StateDirectory')).toBe('scanrelay-gateway');
    expect(text).toMatch(/^Environment=SCANRELAY_GATEWAY_STATE_DIR=\/var\/lib\/scanrelay-gateway$/m);
    for (const k of ['NoNewPrivileges', 'PrivateTmp', 'ProtectHome', 'PrivateDevices', 'ProtectKernelTunables'])
      expect(value(k), k).toBe('yes');
    expect(value('CapabilityBoundingSet')).toBe('');
    expect(value('RestrictAddressFamilies')).toBe('AF_INET AF_INET6 AF_UNIX');
    expect(value('Restart')).toBe('on-failure');
    expect(value('RestartSec')).toBeDefined();
    expect(value('StartLimitIntervalSec')).toBeDefined();
    expect(value('StartLimitBurst')).toBeDefined();
    expect(value('EnvironmentFile')).toBe('/etc/scanrelay-gateway/gateway.env');
    expect(value('ExecStart')).toMatch(/gateway-agent\/dist\/cli\.js run$/);
  });

  it("gateway.env.example with the unit's Environment= is a configuration the agent accepts", () => {
    const env: Record<string, string> = {};
    const example = readFileSync(join(DEPLOY_DIR, 'systemd/gateway.env.example'), 'utf8');
    for (const line of example.split('\n')) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      if (m) env[m[1] as string] = m[2] as string;
    }
    for (const e of keys.get('Environment') ?? []) {
      const [k = '', ...v] = e.split('=');
      env[k] = v.join('=');
    }
    for (const k of Object.keys(env))
      if (k.startsWith('SCANRELAY_'))
        expect(Object.hasOwn(GATEWAY_SETTINGS, k), `${k} is a gateway setting`).toBe(true);
    const config = validateConfig(mergeSettings({}, env), 'run');
    expect(config.stateDir).toBe(value('ReadWritePaths'));
    // No capability to bind below 1024 is granted, so the DICOM port must be above it.
    expect(config.dicomPort).toBeGreaterThan(1024);
    expect(config.relayUrls.every((u) => u.startsWith('wss://'))).toBe(true);
  });

  it('passes systemd-analyze verify and scores as well hardened', async () => {
    // A missing tool is a failure, not a pass: install it (Debian package `systemd`, in .ci/run's apt list).
    expect(await haveCommand('systemd-analyze'), 'systemd-analyze must be installed (apt-get install systemd)').toBe(
      true,
    );
    // verify checks that ExecStart's binary exists; point it at this machine's node when /usr/bin/node is absent.
    let path = unit;
    let dir: string | undefined;
    if (!existsSync('/usr/bin/node')) {
      dir = await tempDir('unit');
      path = join(dir, 'scanrelay-gateway.service');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(path, text.replace('/usr/bin/node', process.execPath));
    }
    try {
      const verified = await run('systemd-analyze', ['verify', path]);
      expect(verified.stdout + verified.stderr).toBe('');
      expect(verified.code).toBe(0);
      const security = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', path]);
      const score = /Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout + security.stderr)?.[1];
      expect(score, security.stdout + security.stderr).toBeDefined();
      expect(Number(score)).toBeLessThanOrEqual(2.5);
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Grafana dashboard and Prometheus example (deploy/grafana)', () => {
  const dashboard = JSON.parse(readFileSync(join(DEPLOY_DIR, 'grafana/scanrelay-dashboard.json'), 'utf8')) as {
    uid: string;
    panels: { id: number; type: string; title: string; targets?: { expr: string }[] }[];
  };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  it('queries only metrics the relay exports', async () => {
    const names = new Set<string>();
    for (const m of await new RelayMetrics().registry.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    }
    const used = new Set(exprs.flatMap((e) => e.match(/\bscanrelay_[a-z0-9_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(names.has(name), `${name} is not exported by RelayMetrics`).toBe(true);
    // And the other way round: every relay-specific metric has a panel (process defaults are optional).
    const own = [...names].filter((n) => !/_(bucket|sum|count)$/.test(n) && !n.startsWith('scanrelay_process_'));
    const relaySpecific = own.filter((n) => !/^scanrelay_nodejs_/.test(n));
    for (const name of relaySpecific)
      expect(
        exprs.some((e) => e.includes(name)),
        `${name} has no dashboard panel`,
      ).toBe(true);
  });

  it('covers connections by role, traffic, command states, fan-out quantiles, auth rejections and Redis', () => {
    const all = exprs.join('\n');
    expect(all).toMatch(/sum by \(instance, role\) \(scanrelay_connections/);
    expect(all).toMatch(/scanrelay_messages_in_total/);
    expect(all).toMatch(/scanrelay_messages_out_total/);
    expect(all).toMatch(/sum by \(state\) \(rate\(scanrelay_commands_total/);
    expect(all).toMatch(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(scanrelay_event_fanout_lag_seconds_bucket/);
    expect(all).toMatch(/sum by \(role, reason\) \(rate\(scanrelay_auth_rejections_total/);
    expect(all).toMatch(/redis_up/);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('the Prometheus example scrapes the jobs the dashboard reads', () => {
    const prom = parse(readFileSync(join(DEPLOY_DIR, 'grafana/prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string }[];
    };
    const jobs = prom.scrape_configs.map((s) => s.job_name);
    expect(jobs).toEqual(expect.arrayContaining(['scanrelay-relay', 'scanrelay-redis']));
    for (const e of exprs) for (const [, job] of e.matchAll(/job="([^"]+)"/g)) expect(jobs).toContain(job);
  });
});

// Keep the compose path referenced so a rename of the file fails here first.
it('compose.yaml is where the tests read it', () => {
  expect(existsSync(COMPOSE_FILE)).toBe(true);
});
