import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { HubId, RegionFile } from '../contract/index.ts';
import { createLogger } from '../shared/logger.ts';
import { startEdgeAgent, type EdgeAgent } from './agent.ts';
import { EdgeEnv, toEdgeConfig } from './config.ts';
import { FleetEnv } from './fleet-config.ts';

/**
 * `npm start` runs one edge agent per simulated hub. On a real hub `npm run edge` runs exactly one;
 * here they share one process to save memory on a laptop, but each has its own local broker port,
 * outbox, state and cloud connection — nothing is shared between them.
 * Configuration: see `FleetEnv` in fleet-config.ts.
 */

/**
 * Drill mode (issue 16): a hub's link to the cloud that can be cut and restored. Started by `npm
 * start` with an IPC channel, the fleet puts a loopback TCP relay between each agent and the cloud;
 * "cut" drops the relay's connections at once (as a lost 4G link: the cloud sees the hub go, its last
 * will says offline) and refuses new ones, while the agent keeps storing and forwarding; "restored"
 * lets its next reconnect through. Plain mqtt:// and ws:// only — TLS addresses are not relayed (the
 * certificate names the cloud), and those hubs answer that their link cannot be cut here.
 * Commands come only over the IPC channel (no listener besides the relays, loopback only).
 */
class LinkGate {
  private cut = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly servers: net.Server[] = [];

  /** Relays each of `urls` through a loopback port; returns the URLs the agent should use instead. */
  async open(urls: string[]): Promise<string[] | null> {
    const parsed = urls.map((u) => new URL(u));
    if (parsed.some((u) => u.protocol !== 'mqtt:' && u.protocol !== 'ws:')) return null;
    const relayed: string[] = [];
    for (const u of parsed) {
      const target = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || (u.protocol === 'mqtt:' ? 1883 : 80)) };
      const server = net.createServer((inbound) => {
        if (this.cut) {
          inbound.destroy();
          return;
        }
        const outbound = net.connect(target);
        for (const s of [inbound, outbound]) {
          this.sockets.add(s);
          s.on('error', () => undefined);
          s.once('close', () => {
            this.sockets.delete(s);
            inbound.destroy();
            outbound.destroy();
          });
        }
        inbound.pipe(outbound).pipe(inbound);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      this.servers.push(server);
      relayed.push(`${u.protocol}//127.0.0.1:${(server.address() as net.AddressInfo).port}${u.pathname}${u.search}`);
    }
    return relayed;
  }

  set(state: 'cut' | 'restored'): boolean {
    const changed = this.cut !== (state === 'cut');
    this.cut = state === 'cut';
    if (this.cut) for (const s of this.sockets) s.destroy();
    return changed;
  }

  get state(): 'cut' | 'up' {
    return this.cut ? 'cut' : 'up';
  }

  close(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
    for (const server of this.servers) server.close();
  }
}

async function main(): Promise<void> {
  const parsed = FleetEnv.safeParse(process.env);
  if (!parsed.success) {
    process.stderr.write(`edge fleet: ${parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`).join('; ')}\n`);
    process.exit(2);
  }
  const env = parsed.data;
  const region = RegionFile.parse(JSON.parse(fs.readFileSync(env.REGION_FILE, 'utf8')));
  const credentials = z.record(HubId, z.object({ username: z.string(), password: z.string() })).parse(JSON.parse(fs.readFileSync(env.CREDENTIALS_FILE, 'utf8')));
  const logger = createLogger(env.LOG_LEVEL, 'edge');
  const agents: EdgeAgent[] = [];
  const gates = new Map<string, LinkGate>();
  for (const [i, hub] of region.hubs.entries()) {
    const cred = credentials[hub.id];
    if (!cred) {
      logger.warn({ hub: hub.id }, 'no cloud credentials for this hub; no agent started');
      continue;
    }
    let cloudUrl = env.CLOUD_MQTT_URL;
    if (process.send) {
      const gate = new LinkGate();
      const relayed = await gate.open(cloudUrl.split(',').map((u) => u.trim()).filter(Boolean));
      if (relayed) {
        gates.set(hub.id, gate);
        cloudUrl = relayed.join(',');
      }
    }
    const config = toEdgeConfig(EdgeEnv.parse({
      HUB_ID: hub.id, REGION_ID: region.id, CLOUD_MQTT_URL: cloudUrl, CLOUD_USERNAME: cred.username, CLOUD_PASSWORD: cred.password,
      LOCAL_BIND_HOST: env.EDGE_BIND_HOST, LOCAL_MQTT_PORT: env.EDGE_BASE_MQTT_PORT === 0 ? 0 : env.EDGE_BASE_MQTT_PORT + i,
      LOCAL_HTTP_BIND_HOST: env.EDGE_HTTP_BIND_HOST, LOCAL_HTTP_PORT: env.EDGE_BASE_HTTP_PORT === 0 ? 0 : env.EDGE_BASE_HTTP_PORT + i,
      // Each agent gives the devices of its hub in the region file their local logins.
      REGION_FILE: env.REGION_FILE, LOCAL_ALLOW_ANONYMOUS: env.EDGE_ALLOW_ANONYMOUS,
      EDGE_DATA_DIR: path.join(env.DATA_DIR, 'edge', hub.id), LOG_LEVEL: env.LOG_LEVEL,
      ...(env.UPLINK_BACKOFF_MAX_S === undefined ? {} : { UPLINK_BACKOFF_MAX_S: env.UPLINK_BACKOFF_MAX_S }),
    }));
    agents.push(await startEdgeAgent(config, logger));
  }
  // Where each hub's devices connect, and the file with their logins (for the simulated devices).
  const map = Object.fromEntries(agents.map((a) => [a.hubId, { mqtt: a.localMqttUrl, http: a.localHttpUrl, deviceLogins: a.deviceCredentialsFile, staffToken: a.staffTokenFile }]));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(1), 10_000).unref();
    void Promise.all(agents.map((a) => a.close())).then(() => {
      for (const g of gates.values()) g.close();
      logger.info('edge agents stopped');
    });
  };
  // Link cut/restore requests from `npm start` (drill mode): `{ id, link: { hub, state } }` →
  // `{ id, ok: true, hub, link: 'cut' | 'up', changed }` or `{ id, ok: false, code, message }`.
  if (process.send) {
    process.on('message', (msg: { id?: unknown; link?: { hub?: unknown; state?: unknown } }) => {
      if (typeof msg?.id !== 'number' || typeof msg.link !== 'object' || msg.link === null) return;
      const { id } = msg;
      const { hub, state } = msg.link;
      const gate = typeof hub === 'string' ? gates.get(hub) : undefined;
      if (state !== 'cut' && state !== 'restored') {
        process.send!({ id, ok: false, code: 'bad_request', message: 'state must be "cut" or "restored"' });
      } else if (!gate) {
        const known = typeof hub === 'string' && agents.some((a) => a.hubId === hub);
        process.send!(known
          ? { id, ok: false, code: 'unavailable', message: `hub ${hub}'s link is not relayed here (TLS address): it cannot be cut` }
          : { id, ok: false, code: 'unknown_hub', message: `no edge agent for hub "${String(hub)}"` });
      } else {
        const changed = gate.set(state);
        logger.info({ hub, state }, 'cloud link set (drill)');
        process.send!({ id, ok: true, hub, link: gate.state, changed });
      }
    });
    process.channel?.unref();
  }
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.write(`EDGE_FLEET_READY ${JSON.stringify(map)}\n`);
}

void main().catch((err) => {
  process.stderr.write(`edge fleet: failed to start: ${(err as Error).stack}\n`);
  process.exitCode = 1;
});
