import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { API_ERRORS } from '../cloud/api/api-errors.ts';
import { CLOUD_NODE_FLAGS, CloudEnv } from '../cloud/config.ts';
import { EdgeEnv } from '../edge/config.ts';
import { FLEET_ENV_KEYS } from '../edge/fleet-config.ts';
import { DROP_REASONS } from '../edge/outbox/outbox.ts';
import { REJECTION_REASONS } from '../cloud/ingest/classify.ts';
import { SIMULATOR_ENV_KEYS } from '../simulators/simulator-config.ts';
import { ROOT } from './support/cloud-harness.ts';

/** What the README and the compose file promise must match what the code does. */
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
// A CommonJS module whose typings declare an ES default export: load it as what it is (module.exports).
const dockerignore = createRequire(import.meta.url)('@balena/dockerignore') as typeof import('@balena/dockerignore').default;
const cloudKeys = Object.keys(CloudEnv.shape);

describe('README', () => {
  it('documents every cloud and simulator setting', () => {
    expect(cloudKeys.filter((k) => !readme.includes(`\`${k}\``))).toEqual([]);
    expect(SIMULATOR_ENV_KEYS.filter((k) => !readme.includes(`\`${k}\``))).toEqual([]);
  });

  it('documents every edge agent setting and every outbox drop reason in edge/README.md', () => {
    const edgeReadme = fs.readFileSync(path.join(ROOT, 'edge/README.md'), 'utf8');
    expect(Object.keys(EdgeEnv.shape).filter((k) => !edgeReadme.includes(`\`${k}\``))).toEqual([]);
    expect(DROP_REASONS.filter((r) => r !== 'quarantined' && !edgeReadme.includes(`\`${r}\``))).toEqual([]);
  });

  it('documents every API error code and every rejection reason', () => {
    expect(Object.keys(API_ERRORS).filter((c) => !readme.includes(`\`${c}\``))).toEqual([]);
    expect(REJECTION_REASONS.filter((r) => !readme.includes(`\`${r}\``))).toEqual([]);
  });

  it('shows the two commands: run and test', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm test');
    expect(fs.readFileSync(path.join(ROOT, '.ci/run'), 'utf8')).toMatch(/^npm test$/m);
  });
});

describe('docker-compose.yml', () => {
  const config = (): string =>
    execFileSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), '--env-file', path.join(ROOT, '.env.example'), 'config'], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });

  it('is accepted by docker-compose config with the secrets of .env.example', () => {
    expect(config()).toMatch(/services:/);
  });

  it('sets only variables the cloud and simulator really read', () => {
    const compose = fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
    const section = (name: string) => compose.slice(compose.indexOf(`  ${name}:\n`)).split(/\n {2}\w/)[0]!;
    const envKeys = (s: string) => [...s.slice(s.indexOf('environment:')).matchAll(/^ {6}([A-Z_]+):/gm)].map((m) => m[1]!);
    expect(envKeys(section('cloud')).filter((k) => !cloudKeys.includes(k))).toEqual([]);
    expect(envKeys(section('simulator')).filter((k) => !SIMULATOR_ENV_KEYS.includes(k))).toEqual([]);
    expect(envKeys(section('cloud')).length).toBeGreaterThan(5);
  });

  it('keeps secrets and Node-RED runtime files out of the build context, and every tracked source in it', () => {
    // What `docker build .` would send, decided by Docker's own .dockerignore rules (a port of its Go matcher).
    const ig = dockerignore({ ignorecase: false }).add(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
    // Files Node-RED 4 writes into its userDir (`npm run flows` uses flows/): the runtime config with the
    // generated credential secret, users, node credentials, sessions, backups, context and library.
    const runtime = [
      'flows/.config.runtime.json', 'flows/.config.users.json', 'flows/.config.nodes.json', 'flows/.config.projects.json', 'flows/flows_cred.json',
      'flows/.flows.json.backup', 'flows/.flows_cred.json.backup', 'flows/.sessions.json', 'flows/context/global/global.json', 'flows/lib/flows/x.json',
      'flows/node_modules/x/index.js', 'flows/package.json',
    ];
    const secrets = ['.env', '.env.local', 'flows/.env', 'cloud/.env', 'data/credentials.json', 'data/operational.db', 'data/edge/nomi-terai/device-credentials.json'];
    expect([...runtime, ...secrets].filter((f) => !ig.ignores(f))).toEqual([]);
    const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
    const needed = tracked.filter((f) => /^(contract|shared|cloud|edge|simulators|config|flows)\//.test(f) || ['package.json', 'package-lock.json', 'tsconfig.json'].includes(f));
    expect(needed.length).toBeGreaterThan(50);
    expect(needed.filter((f) => ig.ignores(f))).toEqual([]);
  });

  it('builds an image that runs as a non-root user with a health check', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK /m);
    for (const dir of dockerfile.matchAll(/^COPY (\w+) /gm)) expect(fs.existsSync(path.join(ROOT, dir[1]!))).toBe(true);
  });

  it('starts the cloud with the Node flags it is measured with, in the image as with npm run cloud and npm start', () => {
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))![1]!) as string[];
    const script = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.cloud!;
    expect(cmd).toEqual(['node', ...CLOUD_NODE_FLAGS, '--import', 'tsx', 'cloud/main.ts']);
    expect(script).toBe(['node', ...CLOUD_NODE_FLAGS, '--import', 'tsx', 'cloud/main.ts'].join(' '));
  });
});

describe('docker-compose.yml: the full stack', () => {
  const composeFile = path.join(ROOT, 'docker-compose.yml');
  const composeText = fs.readFileSync(composeFile, 'utf8');
  const region = JSON.parse(fs.readFileSync(path.join(ROOT, 'config/regions/ishikawa-nomi.json'), 'utf8')) as { id: string; hubs: { id: string }[] };
  const OUR_IMAGE = 'chiiki-drone-logistics:latest';
  const OURS = ['cloud', 'node-red', 'edge', 'simulator'];
  /** Profile `cluster` (issue 15): three nodes of our image, Redis, HAProxy. */
  const NODES = ['cloud-1', 'cloud-2', 'cloud-3'];
  const CLUSTER_ONLY = [...NODES, 'haproxy', 'redis'];

  type Service = {
    image: string;
    build?: { context: string };
    user?: string;
    command?: string[];
    environment?: Record<string, string | null>;
    ports?: (string | { target: number; published?: number | string; host_ip?: string })[];
    volumes?: (string | { type: string; source: string; target: string })[];
    healthcheck?: { test?: string[]; disable?: boolean };
    depends_on?: Record<string, { condition: string }>;
    profiles?: string[];
    ulimits?: { nofile?: { soft: number; hard: number } };
    sysctls?: Record<string, string | number>;
  };
  type Resolved = { services: Record<string, Service>; volumes: Record<string, unknown> };

  /** `docker-compose config` (Debian's 1.29) with the given env file, its output parsed by PyYAML (docker-compose's own dependency). */
  const resolve = (envFile: string): Resolved => {
    const yaml = execFileSync('docker-compose', ['-f', composeFile, '--env-file', envFile, 'config'], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    const json = execFileSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: yaml, encoding: 'utf8' });
    return JSON.parse(json) as Resolved;
  };
  /** The secrets `docker-compose.yml` requires (`${VAR:?…}`): nothing starts while one is missing or empty. */
  const REQUIRED_SECRETS = ['POSTGRES_PASSWORD', 'INFLUX_TOKEN', 'INFLUX_ADMIN_PASSWORD', 'GRAFANA_ADMIN_PASSWORD', 'NODE_RED_CREDENTIAL_SECRET', 'NODE_RED_ADMIN_USER', 'NODE_RED_ADMIN_PASSWORD_HASH', 'CLOUD_API_TOKEN'];
  const envDir = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-'));
  const emptyEnv = path.join(envDir, 'empty.env');
  fs.writeFileSync(emptyEnv, '');
  // Only the required secrets (placeholders): every other variable takes the compose file's default.
  const secretsOnlyEnv = path.join(envDir, 'secrets-only.env');
  fs.writeFileSync(secretsOnlyEnv, REQUIRED_SECRETS.map((k) => `${k}=placeholder-${k.toLowerCase()}`).join('\n'));
  const bare = resolve(secretsOnlyEnv);
  const withEnv = resolve(path.join(ROOT, '.env.example'));
  const svc = (name: string): Service => bare.services[name]!;
  const env = (name: string): Record<string, string | null> => svc(name).environment ?? {};
  const num = (v: string | null | undefined): number => Number(v);
  const containerPorts = (s: Service): number[] =>
    (s.ports ?? []).map((p) => (typeof p === 'string' ? Number(p.replace(/\/\w+$/, '').split(':').at(-1)) : p.target));
  const mounts = (s: Service) =>
    (s.volumes ?? []).map((v) => {
      if (typeof v !== 'string') return { source: v.source, target: v.target, named: v.type === 'volume' };
      const [source, target] = v.split(':') as [string, string];
      return { source, target, named: !source.startsWith('/') && !source.startsWith('.') };
    });
  const dataVolumeAt = (s: Service, dir: string) => mounts(s).find((m) => m.named && m.target === dir);

  it('refuses to start without a .env, or with an empty secret, naming the missing variable', () => {
    const fails = (envFile: string): string => {
      try {
        resolve(envFile);
      } catch (err) {
        return String((err as { stderr?: string }).stderr ?? err);
      }
      return 'accepted';
    };
    expect(fails(emptyEnv)).toMatch(/set [A-Z_]+ in \.env/);
    for (const secret of REQUIRED_SECRETS) {
      const f = path.join(envDir, `without-${secret}.env`);
      fs.writeFileSync(f, REQUIRED_SECRETS.map((k) => `${k}=${k === secret ? '' : 'x'}`).join('\n'));
      expect({ secret, out: fails(f) }).toEqual({ secret, out: expect.stringContaining(`set ${secret} in .env`) });
    }
  });

  it('keeps the demo accounts (public passwords) off unless .env turns them on', () => {
    expect(env('cloud').DEMO_ACCOUNTS).toBe('false');
    expect(withEnv.services.cloud!.environment?.DEMO_ACCOUNTS).toBe('false');
    const on = path.join(envDir, 'demo-on.env');
    fs.writeFileSync(on, [...REQUIRED_SECRETS.map((k) => `${k}=x`), 'DEMO_ACCOUNTS=true'].join('\n'));
    expect(resolve(on).services.cloud!.environment?.DEMO_ACCOUNTS).toBe('true');
  });

  it('pins every image to an exact version (ours from a pinned Node base)', () => {
    for (const name of Object.keys(bare.services).filter((n) => !OURS.includes(n) && !NODES.includes(n))) {
      // PostgreSQL's releases are major.minor (17.9): that is its exact version.
      const exact = name === 'postgres' ? /^postgres:\d+\.\d+$/ : /^[\w./-]+:\d+\.\d+\.\d+$/;
      expect({ name, image: svc(name).image }).toEqual({ name, image: expect.stringMatching(exact) });
    }
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!);
    expect(bases.length).toBeGreaterThan(0);
    for (const b of bases) expect(b).toMatch(/^node:\d+\.\d+\.\d+-[\w-]+$/);
  });

  it('is accepted by docker-compose config with .env.example, and takes the secrets from it', () => {
    // Debian's docker-compose 1.29 lists every service in `config`, whatever the profiles; the default
    // profile (`docker compose up`) is those without any.
    const byDefault = Object.entries(bare.services).filter(([, s]) => !s.profiles).map(([n]) => n);
    expect(byDefault.sort()).toEqual(['cloud', 'edge', 'grafana', 'influxdb', 'node-red', 'postgres', 'simulator']);
    expect(Object.entries(bare.services).filter(([, s]) => s.profiles).map(([n, s]) => [n, s.profiles])).toEqual(CLUSTER_ONLY.map((n) => [n, ['cluster']]));
    const example = Object.fromEntries(
      fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8').split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/^'(.*)'$/, '$1')]),
    );
    const e = (name: string) => withEnv.services[name]!.environment ?? {};
    expect(e('cloud').INFLUX_TOKEN).toBe(example.INFLUX_TOKEN);
    expect(e('grafana').INFLUX_TOKEN).toBe(example.INFLUX_TOKEN);
    expect(e('influxdb').DOCKER_INFLUXDB_INIT_ADMIN_TOKEN).toBe(example.INFLUX_TOKEN);
    expect(e('influxdb').DOCKER_INFLUXDB_INIT_PASSWORD).toBe(example.INFLUX_ADMIN_PASSWORD);
    expect(e('grafana').GF_SECURITY_ADMIN_PASSWORD).toBe(example.GRAFANA_ADMIN_PASSWORD);
    expect(e('node-red').NODE_RED_CREDENTIAL_SECRET).toBe(example.NODE_RED_CREDENTIAL_SECRET);
    expect(e('postgres').POSTGRES_PASSWORD).toBe(example.POSTGRES_PASSWORD);
    expect(new URL(e('cloud').DATABASE_URL!).password).toBe(example.POSTGRES_PASSWORD);
    // Every variable .env.example offers is one the compose file reads.
    expect(Object.keys(example).filter((k) => !composeText.includes(`\${${k}:-`) && !composeText.includes(`\${${k}:?`) && !new RegExp(`^ {6}${k}:\\s*$`, 'm').test(composeText))).toEqual([]);
  });

  it('gives every process that accepts hub connections (the cloud, the cluster nodes, HAProxy in front of them) a kernel accept queue that holds the default MQTT_LISTEN_BACKLOG', () => {
    // Linux caps any backlog at net.core.somaxconn (4096 on most hosts and in a new container): 13,800 hubs reconnecting at once need more (issue 17).
    const backlog = CloudEnv.shape.MQTT_LISTEN_BACKLOG.parse(undefined);
    expect(backlog).toBeGreaterThan(13_800);
    for (const n of ['cloud', ...NODES, 'haproxy']) {
      const sysctls = svc(n).sysctls ?? {};
      expect({ n, somaxconn: Number(sysctls['net.core.somaxconn']), synBacklog: Number(sysctls['net.ipv4.tcp_max_syn_backlog']) }).toEqual({ n, somaxconn: backlog, synBacklog: backlog });
    }
  });

  it('has no secret in the file: passwords, tokens and secrets come only from the environment, with no default', () => {
    const secretLines = [...composeText.matchAll(/^ +([A-Z_]*(?:PASSWORD|TOKEN|SECRET)[A-Z_]*): *(.*)$/gm)];
    expect(secretLines.length).toBeGreaterThan(4);
    for (const [, key, value] of secretLines) expect({ key, value }).toEqual({ key, value: expect.stringMatching(/^\$\{[A-Z_]+:\?set [A-Z_]+ in \.env \(see \.env\.example\)\}$/) });
    for (const [, v] of Object.entries(fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8').matchAll(/^[A-Z_]*(?:PASSWORD|TOKEN|SECRET)[A-Z_]*=(.*)$/gm))) expect(v![1]).toMatch(/change-me/);
    expect(fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8')).toMatch(/^\.env$/m);
  });

  it('names only images the project uses: ours built from the Dockerfile, InfluxDB 2, Grafana of the dashboards SDK major version', () => {
    for (const name of [...OURS, ...NODES]) expect({ name, image: svc(name).image, build: svc(name).build?.context }).toEqual({ name, image: OUR_IMAGE, build: ROOT });
    expect(svc('influxdb').image).toMatch(/^influxdb:2\.7(\.\d+)?$/);
    // The official image; a major version the tests' PostgreSQL (Debian's 15) is not newer than.
    expect(Number(/^postgres:(\d+)\./.exec(svc('postgres').image)?.[1])).toBeGreaterThanOrEqual(15);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string>; dependencies: Record<string, string> };
    const sdk = pkg.devDependencies['@grafana/grafana-foundation-sdk'] ?? pkg.dependencies['@grafana/grafana-foundation-sdk'];
    expect(sdk, 'dashboards are built with @grafana/grafana-foundation-sdk').toBeDefined();
    const grafana = /^grafana\/grafana:(\d+)\.\d+\.\d+$/.exec(svc('grafana').image);
    expect(grafana, 'grafana/grafana pinned to a version').not.toBeNull();
    expect(grafana![1]).toBe(/^\D*(\d+)\./.exec(sdk!)![1]);
    expect(pkg.dependencies['node-red'], 'the node-red service runs the node-red dependency of our image').toBeDefined();
  });

  it('sets on our services only variables their config schemas read', () => {
    const unknown = (name: string, keys: readonly string[]) => Object.keys(env(name)).filter((k) => !keys.includes(k));
    expect(unknown('cloud', cloudKeys)).toEqual([]);
    for (const n of NODES) expect({ n, unknown: unknown(n, cloudKeys) }).toEqual({ n, unknown: [] });
    expect(unknown('simulator', SIMULATOR_ENV_KEYS)).toEqual([]);
    expect(unknown('edge', FLEET_ENV_KEYS)).toEqual([]);
    // The fleet's required settings are all set.
    expect(Object.keys(env('edge'))).toEqual(expect.arrayContaining(['CLOUD_MQTT_URL', 'CREDENTIALS_FILE']));
  });

  const nodeRedFiles = ['flows/settings.cjs', 'flows/flows.json'].map((f) => path.join(ROOT, f));
  it.skipIf(!nodeRedFiles.every((f) => fs.existsSync(f)))('sets on node-red only variables flows/settings.cjs or flows/flows.json read (skipped while the flows are not built)', () => {
    const text = nodeRedFiles.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
    expect(Object.keys(env('node-red')).filter((k) => !new RegExp(`\\b${k}\\b`).test(text))).toEqual([]);
    expect(text).toMatch(/CLOUD_API_URL/);
  });

  it('sets on InfluxDB and Grafana only variables their images or our provisioning files read', () => {
    const influxInit = ['MODE', 'USERNAME', 'PASSWORD', 'ORG', 'BUCKET', 'RETENTION', 'ADMIN_TOKEN'].map((k) => `DOCKER_INFLUXDB_INIT_${k}`);
    expect(Object.keys(env('influxdb')).filter((k) => !influxInit.includes(k))).toEqual([]);
    expect(env('influxdb').DOCKER_INFLUXDB_INIT_BUCKET).toBe(env('cloud').INFLUX_DB);
    const grafanaOwn = Object.keys(env('grafana')).filter((k) => k.startsWith('GF_'));
    for (const k of grafanaOwn) expect(k).toMatch(/^GF_[A-Z]+_[A-Z_]+$/); // GF_<SECTION>_<KEY> of grafana.ini
    const forProvisioning = Object.keys(env('grafana')).filter((k) => !k.startsWith('GF_'));
    expect(forProvisioning.sort()).toEqual(['INFLUX_DB', 'INFLUX_TOKEN', 'INFLUX_URL']);
    expect(env('grafana').INFLUX_DB).toBe(env('cloud').INFLUX_DB);
    expect(env('grafana').INFLUX_URL).toBe(env('cloud').INFLUX_URL);
  });

  // Issue 14, item 5: the cloud's operational state in the postgres service, its password from .env only.
  it('gives the cloud the postgres service as its database (DATABASE_URL), with the password from .env and none in the file', () => {
    const pg = env('postgres');
    expect(Object.keys(pg).sort()).toEqual(['POSTGRES_DB', 'POSTGRES_PASSWORD', 'POSTGRES_USER']);
    const url = new URL(env('cloud').DATABASE_URL!);
    expect({ protocol: url.protocol, host: url.host, user: url.username, password: url.password, db: url.pathname })
      .toEqual({ protocol: 'postgres:', host: 'postgres:5432', user: pg.POSTGRES_USER, password: pg.POSTGRES_PASSWORD, db: `/${pg.POSTGRES_DB}` });
    expect(pg.POSTGRES_PASSWORD).toBe('placeholder-postgres_password');
    const databaseUrlLine = /^ +DATABASE_URL: *(.*)$/m.exec(composeText)![1]!;
    expect(databaseUrlLine).toContain('${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env (see .env.example)}');
    expect(databaseUrlLine.replace(/\$\{[^}]+\}/g, '')).toBe('postgres://:@postgres:5432/');
    expect(svc('cloud').depends_on?.postgres).toEqual({ condition: 'service_healthy' });
    expect(svc('postgres').healthcheck?.test?.slice(0, 2)).toEqual(['CMD', 'pg_isready']);
    expect(svc('postgres').ports ?? []).toEqual([]);
  });

  const datasource = path.join(ROOT, 'dashboards/provisioning/datasources/influxdb.yaml');
  it.skipIf(!fs.existsSync(datasource))('passes Grafana exactly the variables its provisioned data source reads (skipped while dashboards/provisioning/datasources/influxdb.yaml is not built)', () => {
    const text = fs.readFileSync(datasource, 'utf8').replace(/^\s*#.*$/gm, '');
    const read = [...text.matchAll(/\$\{?([A-Z_][A-Z0-9_]*)\}?/g)].map((m) => m[1]!);
    expect([...new Set(read)].sort()).toEqual(Object.keys(env('grafana')).filter((k) => !k.startsWith('GF_')).sort());
  });

  it('publishes only ports the services listen on, and wires the services to each other on those ports', () => {
    const cloud = env('cloud');
    expect(containerPorts(svc('cloud')).sort()).toEqual([cloud.HTTP_PORT, cloud.MQTT_PORT, cloud.MQTT_WS_PORT, cloud.MQTTS_PORT].map(num).sort());
    expect(JSON.stringify(svc('cloud').healthcheck?.test)).toContain(`127.0.0.1:${cloud.HTTP_PORT}/healthz`);
    expect(cloud.INFLUX_URL).toBe(`http://influxdb:${containerPorts(svc('influxdb'))[0]}`);
    expect(containerPorts(svc('influxdb'))).toEqual([8086]);
    expect(containerPorts(svc('grafana'))).toEqual([3000]);

    const edge = env('edge');
    expect(edge.CLOUD_MQTT_URL).toBe(`mqtt://cloud:${cloud.MQTT_PORT}`);
    expect(edge.REGION_FILE).toBe(cloud.REGION_FILE);
    // Hub i's staff endpoint listens on EDGE_BASE_HTTP_PORT + i: one published port per hub of the region.
    expect(containerPorts(svc('edge'))).toEqual(region.hubs.map((_, i) => num(edge.EDGE_BASE_HTTP_PORT) + i));
    expect(JSON.stringify(svc('edge').healthcheck?.test)).toContain(`127.0.0.1:${edge.EDGE_BASE_HTTP_PORT}/status`);
    // The simulator publishes each hub's devices to that hub's agent: EDGE_BASE_MQTT_PORT + i.
    expect(env('simulator').REGION_FILE).toBe(cloud.REGION_FILE);
    expect(JSON.parse(env('simulator').SIM_LOCAL_BROKERS!)).toEqual(Object.fromEntries(region.hubs.map((h, i) => [h.id, `mqtt://edge:${num(edge.EDGE_BASE_MQTT_PORT) + i}`])));

    const nodeRed = env('node-red');
    expect(containerPorts(svc('node-red'))).toEqual([num(nodeRed.NODE_RED_PORT)]);
    expect(JSON.stringify(svc('node-red').healthcheck?.test)).toContain(`connect(${nodeRed.NODE_RED_PORT},`);
    expect(nodeRed.CLOUD_API_URL).toBe(`http://cloud:${cloud.HTTP_PORT}`);
    expect(nodeRed.REGION_ID).toBe(region.id);
  });

  it('keeps every piece of state in a named volume, and every named volume is used', () => {
    const declared = Object.keys(bare.volumes ?? {});
    const used = Object.values(bare.services).flatMap((s) => mounts(s).filter((m) => m.named).map((m) => m.source));
    expect([...new Set(used)].sort()).toEqual(declared.sort());
    expect(dataVolumeAt(svc('cloud'), env('cloud').DATA_DIR!)?.source).toBe('cloud-data');
    expect(dataVolumeAt(svc('edge'), env('edge').DATA_DIR!)?.source).toBe('edge-data');
    const userDir = svc('node-red').command![svc('node-red').command!.indexOf('--userDir') + 1]!;
    expect(dataVolumeAt(svc('node-red'), userDir)?.source).toBe('node-red-data');
    expect(dataVolumeAt(svc('postgres'), '/var/lib/postgresql/data')?.source).toBe('postgres-data');
    expect(dataVolumeAt(svc('influxdb'), '/var/lib/influxdb2')?.source).toBe('influx-data');
    expect(dataVolumeAt(svc('influxdb'), '/etc/influxdb2')?.source).toBe('influx-config');
    expect(dataVolumeAt(svc('grafana'), '/var/lib/grafana')?.source).toBe('grafana-data');
    // The edge reads the demo hub logins the cloud wrote, read-only.
    const creds = mounts(svc('edge')).find((m) => env('edge').CREDENTIALS_FILE!.startsWith(`${m.target}/`));
    expect(creds?.source).toBe('cloud-data');
    expect(composeText).toMatch(/- cloud-data:\/cloud:ro/);
  });

  it('bind-mounts only paths that exist in the repository (the dashboards helper builds them)', () => {
    const binds = Object.values(bare.services).flatMap((s) => mounts(s).filter((m) => !m.named));
    expect(binds.map((b) => path.relative(ROOT, b.source)).sort()).toEqual(['dashboards/generated', 'dashboards/provisioning', 'deploy/haproxy']);
    const grafanaBinds = mounts(svc('grafana')).filter((m) => !m.named);
    expect(grafanaBinds.map((b) => `${path.relative(ROOT, b.source)}→${b.target}`).sort()).toEqual([
      'dashboards/generated→/var/lib/grafana/dashboards',
      'dashboards/provisioning→/etc/grafana/provisioning',
    ]);
  });

  it('bind-mounts folders that exist', () => {
    for (const dir of ['dashboards/generated', 'dashboards/provisioning', 'deploy/haproxy']) expect(fs.statSync(path.join(ROOT, dir)).isDirectory()).toBe(true);
  });

  const provider = path.join(ROOT, 'dashboards/provisioning/dashboards/dashboards.yaml');
  it.skipIf(!fs.existsSync(provider))('has Grafana\'s file provider read where the generated dashboards are mounted (skipped while dashboards/provisioning/dashboards/dashboards.yaml is not built)', () => {
    expect(fs.readFileSync(provider, 'utf8')).toContain('/var/lib/grafana/dashboards');
  });

  it('runs every container as a non-root user with a health check, started after the services it needs are healthy', () => {
    for (const name of [...OURS, ...NODES]) expect({ name, user: svc(name).user }).toEqual({ name, user: undefined }); // the Dockerfile's USER node
    for (const name of ['postgres', 'influxdb', 'grafana', 'redis']) expect(svc(name).user).toMatch(/^[1-9]\d*(:[0-9]+)?$/);
    expect(svc('haproxy').user).toBeUndefined(); // the official image's USER haproxy
    for (const [name, s] of Object.entries(bare.services)) {
      if (name === 'simulator') expect(s.healthcheck?.disable === true || s.healthcheck?.test?.[0] === 'NONE').toBe(true); // nothing to probe; the image's /healthz check is the cloud's
      else expect({ name, test: s.healthcheck?.test?.length }).toEqual({ name, test: expect.any(Number) });
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect({ name, dep, condition }).toEqual({ name, dep, condition: 'service_healthy' });
        expect(bare.services[dep]!.healthcheck?.test?.[0]).toMatch(/^CMD/);
      }
    }
    expect(Object.keys(svc('cloud').depends_on ?? {}).sort()).toEqual(['influxdb', 'postgres']);
    expect(Object.keys(svc('edge').depends_on ?? {})).toEqual(['cloud']);
    expect(Object.keys(svc('simulator').depends_on ?? {})).toEqual(['edge']);
  });

  it('builds from a Dockerfile whose every COPY source exists and which holds every process compose runs', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(sources.length).toBeGreaterThan(5);
    expect(sources.filter((s) => !fs.existsSync(path.join(ROOT, s)))).toEqual([]);
    const scripts = OURS.flatMap((n) => svc(n).command ?? ['cloud/main.ts']).filter((a) => /\.(ts|cjs|json)$/.test(a)).map((a) => a.replace(/^\/app\//, ''));
    expect(scripts.filter((s) => !sources.some((src) => s === src || s.startsWith(`${src.replace(/\/$/, '')}/`)))).toEqual([]);
  });

  it('is described in the README "Deploying" section: bring-up, every service and its port', () => {
    const deploying = readme.slice(readme.indexOf('## Deploying'));
    for (const s of ['cp .env.example .env', 'docker compose up -d', 'docker-compose config', 'dashboards/README.md', 'MQTTS']) expect(deploying).toContain(s);
    for (const name of Object.keys(bare.services)) expect(deploying).toContain(`\`${name}\``);
    for (const p of [8080, 1883, 8883, 8083, 3000, 8086, 1880, 18081]) expect(deploying).toContain(String(p));
  });
  // Issue 15, item 3: profile `cluster` — three nodes, HAProxy, PostgreSQL, Redis, with health checks.
  describe('profile cluster', () => {
    const haproxyCfg = path.join(ROOT, 'deploy/haproxy/haproxy.cfg');
    const cfgText = fs.readFileSync(haproxyCfg, 'utf8');
    const haproxyBin = fs.existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';
    /** `server <name> <host>:<port> …` lines of a backend. */
    const servers = (backend: string) => {
      const body = cfgText.slice(cfgText.indexOf(`\nbackend ${backend}\n`) + 1).split(/\n(?=\S)/)[0]!;
      return [...body.matchAll(/^\s+server (\S+) ([\w.-]+):(\d+)(.*)$/gm)].map((m) => ({ name: m[1]!, host: m[2]!, port: Number(m[3]), options: m[4]!.trim() }));
    };
    const backendOf = (frontend: string) => /^\s+default_backend (\S+)$/m.exec(cfgText.slice(cfgText.indexOf(`\nfrontend ${frontend}\n`) + 1).split(/\n(?=\S)/)[0]!)?.[1];

    it('is accepted by docker-compose config with --profile cluster', () => {
      const yaml = execFileSync('docker-compose', ['-f', composeFile, '--env-file', path.join(ROOT, '.env.example'), '--profile', 'cluster', 'config'], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
      for (const n of CLUSTER_ONLY) expect(yaml).toContain(`\n  ${n}:\n`);
    });

    it('runs three nodes of our image that share the postgres service (DATABASE_URL) and the redis service (REDIS_URL), each with its own NODE_ID', () => {
      const cloud = env('cloud');
      expect(new Set(NODES.map((n) => env(n).DATABASE_URL))).toEqual(new Set([cloud.DATABASE_URL]));
      expect(new Set(NODES.map((n) => env(n).REDIS_URL))).toEqual(new Set(['redis://redis:6379']));
      expect(NODES.map((n) => env(n).NODE_ID)).toEqual(NODES);
      // The single cloud's settings, plus only what cluster mode needs: the nodes cannot drift from it.
      const clusterOnly = ['REDIS_URL', 'NODE_ID', 'LEASE_TTL_S', 'TRUST_PROXY', 'MQTT_PROXY_PROTOCOL', 'MQTT_TRUSTED_PROXIES'];
      for (const n of NODES) {
        const e = env(n);
        expect({ n, keys: Object.keys(e).sort() }).toEqual({ n, keys: [...Object.keys(cloud), ...clusterOnly].sort() });
        // One node creates the demo hub credentials (one generated password per hub), as the single cloud would.
        const expected: Record<string, string | null | undefined> = { ...cloud, DEMO_CREDENTIALS: n === 'cloud-1' ? cloud.DEMO_CREDENTIALS : 'false' };
        for (const k of Object.keys(cloud)) expect({ n, k, v: e[k] }).toEqual({ n, k, v: expected[k] });
        expect(svc(n).ports ?? []).toEqual([]); // reached through haproxy only
        // Behind HAProxy's send-proxy-v2: the per-address limits count each hub's address, and only haproxy may connect.
        expect([e.MQTT_PROXY_PROTOCOL, e.MQTT_TRUSTED_PROXIES]).toEqual(['required', 'haproxy']);
        expect(dataVolumeAt(svc(n), e.DATA_DIR!)?.source).toBe(`${n}-data`);
        expect(JSON.stringify(svc(n).healthcheck?.test)).toContain(`127.0.0.1:${e.HTTP_PORT}/healthz`);
        expect(svc(n).depends_on).toEqual({ influxdb: { condition: 'service_healthy' }, postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
      }
      expect(svc('redis').image).toMatch(/^redis:7\.\d+\.\d+$/);
      expect(svc('redis').healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
      expect(svc('redis').ports ?? []).toEqual([]);
      expect(dataVolumeAt(svc('redis'), '/data')?.source).toBe('redis-data');
    });

    it('puts HAProxy (official image, config from deploy/haproxy) on the single cloud\'s ports, with every node behind each port and checked on /healthz', () => {
      expect(svc('haproxy').image).toMatch(/^haproxy:\d+\.\d+\.\d+$/);
      expect(mounts(svc('haproxy')).map((m) => `${path.relative(ROOT, m.source)}→${m.target}`)).toEqual(['deploy/haproxy→/usr/local/etc/haproxy']);
      expect(containerPorts(svc('haproxy')).sort()).toEqual(containerPorts(svc('cloud')).sort());
      expect(svc('haproxy').healthcheck?.test?.[0]).toBe('CMD');
      // Two descriptors per proxied connection: the open-file limit must hold a frontend's maxconn.
      const block = (head: string) => cfgText.split(/\n(?=\S)/).find((b) => b.startsWith(`${head}\n`)) ?? '';
      const maxconn = Number(/^\s+maxconn (\d+)$/m.exec(block('defaults'))?.[1]);
      expect(maxconn).toBeGreaterThan(10_000);
      expect(svc('haproxy').ulimits?.nofile?.soft).toBeGreaterThanOrEqual(2 * maxconn);
      expect(block('global')).toMatch(/^\s+log /m);
      expect(block('global')).not.toMatch(/^\s+maxconn /m); // derived from the open-file limit
      const node = env('cloud-1');
      const frontends = { mqtt: node.MQTT_PORT, mqtts: node.MQTTS_PORT, mqtt_ws: node.MQTT_WS_PORT, http: node.HTTP_PORT };
      for (const [frontend, port] of Object.entries(frontends)) {
        expect(cfgText).toMatch(new RegExp(`\\nfrontend ${frontend}\\n\\s+bind :${port}\\n`));
        const list = servers(backendOf(frontend)!);
        // Every node, at its own port, with `check`; the health check is each node's /healthz on its HTTP port.
        expect(list.map((s) => `${s.name} ${s.host}:${s.port}`)).toEqual(NODES.map((n) => `${n} ${n}:${port}`));
        // MQTT, MQTTS and WebSocket carry the PROXY protocol (the nodes require it); HTTP carries X-Forwarded-For.
        for (const s of list) expect(s.options).toMatch(port === node.HTTP_PORT ? /^check$/ : new RegExp(`^check port ${node.HTTP_PORT} send-proxy-v2$`));
      }
      for (const b of ['mqtt_nodes', 'mqtts_nodes', 'mqtt_ws_nodes', 'http_nodes']) {
        const body = cfgText.slice(cfgText.indexOf(`\nbackend ${b}\n`) + 1).split(/\n(?=\S)/)[0]!;
        expect(body).toMatch(/^\s+option httpchk$/m);
        expect(body).toMatch(/^\s+http-check send meth GET uri \/healthz$/m);
        expect(body).toMatch(/^\s+http-check expect status 200$/m);
      }
    });

    it('haproxy.cfg is valid for Debian\'s haproxy (haproxy -c) offline, where the node names do not resolve', () => {
      const check = (file: string) => {
        try {
          return { code: 0, out: execFileSync(haproxyBin, ['-c', '-f', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
        } catch (err) {
          const e = err as { status: number; stdout: string; stderr: string };
          return { code: e.status, out: `${e.stdout}${e.stderr}` };
        }
      };
      // As committed: valid; the only warnings are the node names (resolved on the compose network by
      // Docker's DNS at run time; `init-addr last,libc,none` lets HAProxy start without them).
      const asIs = spawnSync(haproxyBin, ['-c', '-f', haproxyCfg], { encoding: 'utf8' });
      expect(asIs.status, asIs.stderr).toBe(0);
      const warnings = asIs.stderr.split('\n').filter((l) => l.includes('[WARNING]'));
      expect(warnings.filter((l) => !/could not resolve address 'cloud-[123]'/.test(l))).toEqual([]);
      // With the nodes on loopback: valid without a single warning.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haproxy-'));
      try {
        const local = path.join(dir, 'haproxy.cfg');
        fs.writeFileSync(local, cfgText.replace(/ cloud-[123]:(\d+)/g, ' 127.0.0.1:$1'));
        const r = spawnSync(haproxyBin, ['-c', '-f', local], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr.split('\n').filter((l) => l.includes('[WARNING]') || l.includes('[ALERT]'))).toEqual([]);
        // Without init-addr and resolvers (either lets HAProxy start with a name that does not resolve yet),
        // the committed file would be refused offline — and by a HAProxy started before the nodes.
        fs.writeFileSync(local, cfgText.replace(/init-addr \S+ resolvers docker /, ''));
        expect(check(local).code).not.toBe(0);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }, 60_000);
  });
});
