import { ConfigError, loadCloudConfig } from '../cloud/config.ts';
import { DemoControlError, findRunningDemo, type CloudChange, type DemoStatus } from './demo-control.ts';

/**
 * `npm run demo -- <command>`: drives the demo that `npm start` runs in another terminal (same
 * DATA_DIR), for the README's outage story:
 *   cloud stop    stop the cloud only; the edge agents and simulated devices keep running
 *   cloud start   start the cloud again, on the same addresses; the agents reconnect and replay
 *   outbox        each hub's link and outbox, read from its edge agent (works while the cloud is down)
 */
const USAGE = 'usage: npm run demo -- cloud stop | cloud start | outbox';

/** The part of an edge agent's GET /status this command shows. */
interface AgentStatus {
  uplink: { connected: boolean; ackedReplayed: number };
  outbox: { depth: number; dropped: Record<string, number> };
}

async function outbox(status: DemoStatus): Promise<string[]> {
  const rows = await Promise.all(
    Object.entries(status.hubs).map(async ([hub, { status: url }]) => {
      try {
        const s = (await (await fetch(url)).json()) as AgentStatus;
        return { hub, link: s.uplink.connected ? 'up' : 'down', waiting: s.outbox.depth, replayed: s.uplink.ackedReplayed, lost: Object.values(s.outbox.dropped).reduce((a, b) => a + b, 0) };
      } catch {
        return { hub, link: '?', waiting: 0, replayed: 0, lost: 0 };
      }
    }),
  );
  const total = rows.reduce((t, r) => ({ waiting: t.waiting + r.waiting, replayed: t.replayed + r.replayed, lost: t.lost + r.lost }), { waiting: 0, replayed: 0, lost: 0 });
  const width = Math.max(5, ...rows.map((r) => r.hub.length));
  const line = (hub: string, link: string, waiting: number | string, replayed: number | string, lost: number | string) =>
    `${hub.padEnd(width)}  ${link.padEnd(4)}  ${String(waiting).padStart(7)}  ${String(replayed).padStart(8)}  ${String(lost).padStart(4)}`;
  return [
    status.cloud === 'running' ? `cloud: running at ${status.cloudHttp}` : `cloud: ${status.cloud} (npm run demo -- cloud start brings it back)`,
    line('hub', 'link', 'waiting', 'replayed', 'lost'),
    ...rows.map((r) => line(r.hub, r.link, r.waiting, r.replayed, r.lost)),
    line('total', '', total.waiting, total.replayed, total.lost),
    'waiting: messages in the hub\'s outbox, not yet acknowledged by the cloud; replayed: messages kept while the cloud was away, since stored by the cloud; lost: dropped by the outbox (full, or refused by the cloud)',
  ];
}

async function main(args: string[]): Promise<number> {
  const command = args.join(' ');
  if (!['cloud stop', 'cloud start', 'outbox'].includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let dataDir: string;
  try {
    dataDir = loadCloudConfig().dataDir;
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
    return 2;
  }
  try {
    const demo = findRunningDemo(dataDir);
    if (command === 'outbox') {
      process.stdout.write(`${(await outbox(await demo.request<DemoStatus>('GET', '/status'))).join('\n')}\n`);
    } else if (command === 'cloud stop') {
      const r = await demo.request<CloudChange>('POST', '/cloud/stop');
      process.stdout.write(r.changed ? 'cloud stopped; the edge agents keep every message in their outboxes (npm run demo -- outbox)\n' : 'the cloud was already stopped\n');
    } else {
      const r = await demo.request<CloudChange>('POST', '/cloud/start');
      const { cloudHttp } = await demo.request<DemoStatus>('GET', '/status');
      process.stdout.write(r.changed ? `cloud started at ${cloudHttp}; the edge agents reconnect and replay their backlog (npm run demo -- outbox)\n` : `the cloud was already running at ${cloudHttp}\n`);
    }
    return 0;
  } catch (err) {
    process.stderr.write(`${err instanceof DemoControlError ? err.message : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
