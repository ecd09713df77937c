import fs from 'node:fs';
import { pino } from 'pino';
import { EXAMPLES, topics } from '../contract/index.ts';
import { startEdgeAgent } from '../edge/agent.ts';
import { EdgeEnv, toEdgeConfig } from '../edge/config.ts';
import { readCredentials, spawnCloud, tempDir, testCloudEnv } from '../test/support/cloud-harness.ts';
import { freePort } from '../test/support/ports.ts';
import { startTcpProxy } from '../test/support/tcp-proxy.ts';
import mqtt from 'mqtt';

/**
 * `npx tsx scripts/bench-edge-replay.ts [messages]`: an outage at a roadside station, replayed.
 * The cloud (real process, SQLite) is unreachable while the hub's devices publish BENCH messages
 * (drone, locker and sensor mix, like a roadside station with 4 drones); then the link returns and
 * we time the replay to an empty outbox. Reports the outbox's disk use per 1,000 messages.
 */
const N = Number(process.argv[2] ?? 100_000);
const HUB = 'rs-komatsu-kibagata';
const REGION = 'ishikawa-nomi';
const example = (name: string) => EXAMPLES.find((e) => e.name === name)!.payload;

async function main(): Promise<void> {
  const cloudDir = tempDir('bench-replay-cloud');
  const edgeDir = tempDir('bench-replay-edge');
  const cloud = await spawnCloud(testCloudEnv(cloudDir, { HTTP_PORT: String(await freePort()), MQTT_PORT: String(await freePort()), MQTT_WS_PORT: 'off', LOG_LEVEL: 'warn' }));
  const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(cloud.urls.mqtt).port) } });
  await proxy.stop(); // the outage
  const agent = await startEdgeAgent(toEdgeConfig(EdgeEnv.parse({
    HUB_ID: HUB, REGION_ID: REGION, CLOUD_MQTT_URL: proxy.url('mqtt'), CLOUD_PASSWORD: readCredentials(cloudDir)[HUB]!.password,
    EDGE_DATA_DIR: edgeDir, LOCAL_BIND_HOST: '127.0.0.1', LOCAL_MQTT_PORT: '0', LOCAL_HTTP_PORT: '0', UPLINK_BACKOFF_MAX_S: '1',
    OUTBOX_THIN_THRESHOLD: String(N * 2), OUTBOX_MAX_MESSAGES: String(N * 2),
    LOCAL_ALLOW_ANONYMOUS: 'true', // one bench client plays every device of the hub on one connection
  })), pino({ level: 'warn' }));

  const device = await mqtt.connectAsync(agent.localMqttUrl, { clientId: 'bench-devices' });
  const started = Date.now();
  const base = started - N * 250;
  let inflight = 0;
  for (let i = 0; i < N; i++) {
    const r = i % 20;
    const ts = base + i * 250;
    const id = `r-${i}`;
    const [topic, payload] = r < 16
      ? [topics.device(REGION, HUB, 'drone', `drone-${(i % 4) + 1}`, 'telemetry'), { ...example('drone.telemetry'), hub: HUB, device: `drone-${(i % 4) + 1}`, id, ts }]
      : r < 19
        ? [topics.device(REGION, HUB, 'sensor', 'wx', 'telemetry'), { ...example('sensor.telemetry'), hub: HUB, device: 'wx', id, ts }]
        : [topics.device(REGION, HUB, 'locker', 'locker-a', 'telemetry'), { ...example('locker.telemetry'), hub: HUB, device: 'locker-a', id, ts }];
    inflight++;
    device.publish(topic, JSON.stringify(payload), { qos: 1 }, () => inflight--);
    if (inflight > 2000) await new Promise<void>((r) => { const t = setInterval(() => { if (inflight < 500) { clearInterval(t); r(); } }, 1); });
  }
  while (inflight > 0) await new Promise((r) => setTimeout(r, 10));
  const acceptSeconds = (Date.now() - started) / 1000;
  await device.endAsync();
  const backlog = agent.outbox.depth;
  const bytes = agent.outbox.stats().fileBytes;

  const replayStart = Date.now();
  await proxy.start(); // the link is back
  while (agent.outbox.depth > 0) await new Promise((r) => setTimeout(r, 50));
  const replaySeconds = (Date.now() - replayStart) / 1000;
  const result = {
    messages: N, backlog, outageCoveredHours: Number(((N * 250) / 3_600_000).toFixed(1)),
    deviceAcceptRatePerS: Math.round(N / acceptSeconds),
    outboxBytes: bytes, outboxKiBPer1000: Number((bytes / 1024 / (backlog / 1000)).toFixed(1)),
    replaySeconds: Number(replaySeconds.toFixed(1)), replayRatePerS: Math.round(backlog / replaySeconds),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  await agent.close();
  await proxy.stop();
  await cloud.kill('SIGTERM');
  fs.rmSync(cloudDir, { recursive: true, force: true });
  fs.rmSync(edgeDir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
