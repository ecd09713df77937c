import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { API_ERRORS } from '../cloud/api/api-errors.ts';
import { CloudEnv } from '../cloud/config.ts';
import { EdgeEnv } from '../edge/config.ts';
import { DROP_REASONS } from '../edge/outbox/outbox.ts';
import { REJECTION_REASONS } from '../cloud/ingest/classify.ts';
import { SIMULATOR_ENV_KEYS } from '../simulators/simulator-config.ts';
import { ROOT } from './support/cloud-harness.ts';

/** What the README and the compose file promise must match what the code does. */
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
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
    execFileSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, INFLUX_TOKEN: 't', INFLUX_ADMIN_PASSWORD: 'p' } });

  it('is accepted by docker-compose config', () => {
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

  it('builds an image that runs as a non-root user with a health check', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK /m);
    for (const dir of dockerfile.matchAll(/^COPY (\w+) /gm)) expect(fs.existsSync(path.join(ROOT, dir[1]!))).toBe(true);
  });
});
