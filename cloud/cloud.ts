import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { topics } from '../contract/index.ts';
import { accessHooks } from './accounts/access-hooks.ts';
import { accountRoutes } from './accounts/account-routes.ts';
import { openAccountStore, type AccountStore } from './accounts/account-store.ts';
import { regionLookupOf } from './accounts/authorize.ts';
import { provisionDemoAccounts } from './accounts/demo-accounts.ts';
import { startDisplayNames } from './accounts/display-names.ts';
import { alarmRoutes } from './alarms/alarm-routes.ts';
import type { AlarmService } from './alarms/alarm-service.ts';
import { createAlarms } from './alarms/create-alarms.ts';
import { buildApp } from './api/app.ts';
import { consoleRoutes } from './console/console-routes.ts';
import { loadRegionGeography } from './hubs/region-geography.ts';
import { startCloudBroker, type CloudBroker } from './broker/cloud-broker.ts';
import { clusterInfo } from './cluster/cluster.ts';
import { GLOBAL_LEASE, openLeases, regionLease } from './cluster/leases.ts';
import { claimNodeId } from './cluster/node-owner.ts';
import { ClusterBus } from './cluster/cluster-bus.ts';
import { startClusterMetrics, type ClusterMetrics } from './cluster/cluster-bus-metrics.ts';
import { CommandService, type CommandBus } from './commands/command-service.ts';
import { openCommandStore } from './commands/command-store.ts';
import type { CloudConfig } from './config.ts';
import { openDatabase } from './db/database.ts';
import { assertSchemaNotNewer } from './db/schema.ts';
import { generatePassword, openHubCredentialStore, type HubCredentialStore } from './hubs/hub-credentials.ts';
import { loadRegions, watchRegionsDir } from './hubs/region-loader.ts';
import { createRegions } from './hubs/regions.ts';
import { openDeadLetterStore, type DeadLetterStore } from './ingest/dead-letter-store.ts';
import { Ingest } from './ingest/ingest.ts';
import { KnownCompartments } from './ingest/known-compartments.ts';
import { openSeenMessageStore, startSeenMessagePruning } from './ingest/seen-messages.ts';
import { LiveState } from './live/live-state.ts';
import type { Logger } from './logger.ts';
import { createMetrics, type CloudMetrics } from './metrics.ts';
import { modeProposalRoutes } from './modes/mode-proposal-routes.ts';
import { ModeProposals } from './modes/mode-proposals.ts';
import { modeRoutes } from './modes/mode-routes.ts';
import { orderRoutes } from './orders/order-routes.ts';
import { OrderService } from './orders/order-service.ts';
import { openOrderStore } from './orders/order-store.ts';
import { startOpsStatsWriter } from './ops-stats/ops-stats-writer.ts';
import { ModeService } from './modes/mode-service.ts';
import { openModeStore } from './modes/mode-store.ts';
import { createInfluxTelemetryStore } from './telemetry/influx-telemetry-store.ts';
import { createSqliteTelemetryStore } from './telemetry/sqlite-telemetry-store.ts';
import type { TelemetryStore } from './telemetry/telemetry-store.ts';

export interface Cloud {
  readonly config: CloudConfig;
  readonly urls: { http: string; mqtt: string; ws: string | null; mqtts: string | null };
  readonly live: LiveState;
  readonly store: TelemetryStore;
  readonly deadLetters: DeadLetterStore;
  readonly metrics: CloudMetrics;
  readonly credentials: HubCredentialStore;
  readonly broker: CloudBroker;
  readonly app: FastifyInstance;
  readonly ingest: Ingest;
  readonly commands: CommandService;
  /** Alarms (raise, acknowledge, clear; `onChange`, `raise`, `setMissionsPlannedAt`). */
  readonly alarms: AlarmService;
  /** Disaster mode: desired mode per region and hub (`modeOf`, `desired`, `onModeChange`). */
  readonly modes: ModeService;
  /** Orders, dispatch and missions. */
  readonly orders: OrderService;
  /** Accounts, sessions, API tokens and the API audit log. */
  readonly accounts: AccountStore;
  /** Graceful shutdown: stop accepting, flush ingest, close stores. Idempotent. */
  close(): Promise<void>;
}

/**
 * Composition root of the cloud. Start-up order: region → operational DB → telemetry store (fails
 * fast with a clear message when InfluxDB is unreachable or misconfigured) → commands → ingest →
 * broker → HTTP. Shutdown runs in reverse, so every message that was acknowledged is stored first.
 */
export async function startCloud(config: CloudConfig, logger: Logger): Promise<Cloud> {
  // Every region file of REGIONS_DIR, or REGION_FILE alone (issue 14, item 3).
  const loadedRegions = loadRegions(config);
  const regions = createRegions(loadedRegions.map((l) => l.region));
  const regionFiles = new Map(loadedRegions.map((l) => [l.region.id, l.file]));
  const geographies = new Map<string, ReturnType<typeof loadRegionGeography>>();
  const geographyOf = (id: string) => {
    const file = regionFiles.get(id);
    if (file === undefined) return null;
    if (!geographies.has(id)) geographies.set(id, loadRegionGeography(file));
    return geographies.get(id)!;
  };
  fs.mkdirSync(config.dataDir, { recursive: true });
  // Cluster mode (issue 15) when REDIS_URL is set; a single process otherwise.
  const cluster = clusterInfo(config, logger);
  const database = await openDatabase({ url: config.database.url, dataDir: config.dataDir, synchronous: config.sqliteSync, maxConnections: config.database.poolSize });
  // A database a newer release has migrated is refused before any store touches it (issue 14, item 4).
  await assertSchemaNotNewer(database).catch(async (err: unknown) => {
    await database.close();
    throw err;
  });
  logger.info({ database: database.dialect, target: database.target }, 'operational database ready');
  const closers: (() => Promise<void> | void)[] = [() => database.close()];
  const closeAll = async () => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        logger.error({ err }, 'error during shutdown');
      }
    }
  };
  try {
    if (cluster.clustered && cluster.redisUrl !== null) {
      // One process per NODE_ID (cloud/cluster/node-owner.ts): claimed before the broker and the cluster
      // bus touch anything in Redis named by it; refused while another live process holds it; released
      // last at shutdown (closers run in reverse).
      const owner = await claimNodeId({
        redisUrl: cluster.redisUrl, nodeId: cluster.nodeId, ttlMs: cluster.leaseTtlMs, logger,
        onLost: ({ nodeId, holder }) => {
          // Split brain: another process runs as this node. Ended at once, as kill -9 would (no
          // acknowledged message is lost: PUBACK only after the durable write), not by close(): a
          // graceful shutdown would delete what Redis holds under this NODE_ID — now the other
          // process's heartbeat, link record and hubs' wills — and go on serving while it drains.
          logger.error({ nodeId, holder }, `NODE_ID "${nodeId}" is now held by another process (instance ${holder}): this one was paused or cut off from Redis longer than LEASE_TTL_S and a process with the same NODE_ID started meanwhile; exiting with status 1 to stop serving as a duplicate`);
          process.exit(1);
        },
      });
      closers.push(() => owner.release());
    }
    const live = new LiveState(regions, { maxFutureSkewMs: config.ingest.maxFutureSkewMs });
    const metrics = createMetrics({ hubLinks: () => live.linkSamples(), hubsConnected: () => live.connectedCount(), eventLoopResolutionMs: config.eventLoopResolutionMs });
    // Work that must happen once (dispatch rounds, hub-offline checks, ops stats per region; dedupe
    // pruning) runs under leases (issue 15): in a cluster, leases with fencing tokens in PostgreSQL;
    // a single process holds them all. Given up last at shutdown, after the work stopped.
    const leases = await openLeases({
      clustered: cluster.clustered, database, renewalUrl: config.database.url ?? undefined, nodeId: cluster.nodeId, ttlMs: cluster.leaseTtlMs, logger, registry: metrics.registry,
      names: () => [GLOBAL_LEASE, ...regions.all().map((r) => regionLease(r.id))],
    });
    closers.push(() => leases.close());
    const credentials = await openHubCredentialStore(database);
    if (config.demoCredentials) {
      for (const r of regions.all()) await provisionDemoCredentials(config.dataDir, r.id, r.hubs.map((h) => h.id), credentials, logger);
      // A region added while running gets demo credentials too (its hubs can then connect at once).
      regions.onAdded((r) => void provisionDemoCredentials(config.dataDir, r.id, r.hubs.map((h) => h.id), credentials, logger)
        .catch((err) => logger.error({ err, region: r.id }, 'demo credentials for an added region failed')));
    }
    const accounts = await openAccountStore(database);
    if (config.demoAccounts) await provisionDemoAccounts(accounts, logger.child({ component: 'accounts' }));
    // Region scoping of accounts (issue 14, item 3): where hubs are, for the access hooks and account routes
    // (a hub in no region file: the region its credential names, as live state holds it).
    const regionLookup = regionLookupOf(regions, live);

    const store: TelemetryStore = config.influx
      ? await createInfluxTelemetryStore({
          ...config.influx,
          // Ingest's group commit retries failed writes forever with its own back-off and reports
          // health meanwhile; one quick retry here only smooths over a single dropped connection.
          maxRetries: 1,
          retryMaxDelayMs: 1000,
          logger: logger.child({ component: 'influx' }),
        })
      : await createSqliteTelemetryStore({ path: path.join(config.dataDir, 'telemetry.db'), synchronous: config.sqliteSync, logger: logger.child({ component: 'sqlite-telemetry' }) });
    closers.push(() => store.close());
    logger.info({ store: store.kind, target: config.influx ? `${config.influx.url} db=${config.influx.database}` : path.join(config.dataDir, 'telemetry.db') }, 'telemetry store ready');

    const deadLetters = await openDeadLetterStore(database, config.deadLetters);
    const seen = await openSeenMessageStore(database);
    const pruning = startSeenMessagePruning({
      store: seen, retentionMs: config.dedupeRetentionMs, intervalMs: 10 * 60_000, now: Date.now, logger: logger.child({ component: 'dedupe' }),
      mayRun: () => leases.holds(GLOBAL_LEASE),
    });
    closers.push(() => pruning.stop());
    void pruning.runOnce();

    // The broker starts after ingest (it hands every publish to ingest), so commands reach it late-bound.
    let broker: CloudBroker | null = null;
    const bus: CommandBus = {
      send: (command, to) => {
        if (!broker) return Promise.reject(new Error('the MQTT broker is not running'));
        return broker.publish(topics.command(to.region, command.hub, to.kind, command.device), JSON.stringify(command), { qos: 1 });
      },
    };
    const commands = new CommandService({
      store: await openCommandStore(database), bus, hubs: live.hubs, now: Date.now, newId: () => `cmd-${randomUUID()}`, logger,
      // Hubs (re)subscribing within 10 ms share one pending-command query: a reconnect storm's
      // thousands of subscribes cost a few hundred queries instead of one each.
      redeliveryWindowMs: 10,
    });
    closers.push(() => commands.close());

    const modeStore = await openModeStore(database);
    // The acknowledged mode of every hub survives a restart (the consoles show it from live state).
    for (const ack of await modeStore.allAcks()) {
      if (regions.regionOfHub(ack.hub)?.id === ack.region) live.restoreMode(ack.region, ack, ack.receivedAt);
    }
    // Cluster mode: the bus to the other nodes (started below, once the mode service exists).
    let clusterBus: ClusterBus | null = null;
    const modes = await ModeService.open({
      store: modeStore, regions, now: Date.now,
      ackTimeoutMs: config.modes.ackTimeoutMs, logger,
      bus: {
        publishDesired: (m) => {
          // Cluster: the other nodes hear of the version before the retained message leaves (see the 'modes' notice below).
          clusterBus?.publishNotice(`mode:${m.version}:${m.region}`);
          return broker ? broker.publish(topics.regionMode(m.region), JSON.stringify(m), { qos: 1, retain: true }) : Promise.reject(new Error('the MQTT broker is not running'));
        },
        acknowledge: (r, m) => (broker ? broker.publish(topics.ack(r, m.hub), JSON.stringify(m), { qos: 1 }) : Promise.reject(new Error('the MQTT broker is not running'))),
      },
    });
    // On PostgreSQL other cloud processes may switch too: their versions and conflicts reach this one within 2 s.
    if (database.dialect === 'postgres') closers.push(modes.follow(2_000));

    const alarms = await createAlarms({ database, regions, live, registry: metrics.registry, logger, hubOfflineGraceMs: config.alarms.hubOfflineGraceMs, leases });
    // Runs after ingest closed (closers run in reverse): the alarm changes of its last messages are written before the database closes.
    closers.push(() => alarms.settled());

    // Cluster mode (issue 15): every node shows the whole deployment — the other nodes' live-state
    // changes (readings, statuses, links, mode acknowledgements), their alarm changes in the live feed,
    // and their figures in /metrics — through Redis (cloud/cluster/cluster-bus.ts). A node is dead
    // (its hubs offline everywhere) once its heartbeat is LEASE_TTL_S old.
    let clusterMetrics: ClusterMetrics | null = null;
    if (cluster.clustered && cluster.redisUrl !== null) {
      const restoreAcks = async () => {
        for (const a of await modeStore.allAcks()) {
          if (regions.regionOfHub(a.hub)?.id !== a.region) continue;
          live.restoreMode(a.region, a, a.receivedAt);
          modes.applyRemoteAck({ v: 1, type: 'hub.mode-ack', id: a.msgId, ts: a.ts, hub: a.hub, version: a.version, mode: a.mode, source: a.source, reason: a.reason ?? undefined, historical: a.historical }, a.region, a.receivedAt);
        }
      };
      const bus = await ClusterBus.start({
        redisUrl: cluster.redisUrl, nodeId: cluster.nodeId, live, registry: metrics.registry, logger, heartbeatTtlMs: cluster.leaseTtlMs,
        onRemoteChange: (_node, c) => {
          if (c.t === 'mode') modes.applyRemoteAck(c.ack, c.region, c.at);
        },
        onResync: restoreAcks,
      });
      closers.push(() => bus.close());
      await restoreAcks(); // what other nodes recorded between the read above and the subscription
      clusterBus = bus;
      // A version published here (a switch, an adopted local switch, a re-issue) reaches the other nodes'
      // mode services at once (not at their next 2 s follow): publishDesired sends a `mode:<version>:<region>`
      // notice just before the retained region mode, whose copies reach their hubs through the broker
      // within milliseconds, and come back here as acknowledgements. The notice raises the version ingest
      // takes at once (ingest would otherwise read the region's versions from the database before taking
      // such an acknowledgement, refreshIssuedModeVersion); catchUp then reads the version itself.
      let catchingUp: Promise<void> | null = null;
      let catchUpAgain = false;
      const catchUp = (): void => {
        if (catchingUp) {
          catchUpAgain = true;
          return;
        }
        catchingUp = modes.catchUp()
          .catch((err: unknown) => logger.warn({ err }, 'reading another node\'s mode switch failed; the 2 s follow catches up'))
          .finally(() => {
            catchingUp = null;
            if (catchUpAgain) {
              catchUpAgain = false;
              catchUp();
            }
          });
      };
      bus.onNotice((notice) => {
        const [kind, version, ...rest] = notice.split(':');
        const region = rest.join(':');
        if (kind !== 'mode' || region === '') return;
        modes.noteIssuedElsewhere(region, Number(version) || 0);
        catchUp();
      });
      alarms.onChange((c) => bus.publishAlarm(c));
      const shared = startClusterMetrics({ redis: bus.redis, prefix: bus.prefix, nodeId: cluster.nodeId, registry: metrics.registry, nodes: () => bus.nodes(), logger });
      clusterMetrics = shared;
      closers.push(() => shared.stop());
    }
    // Other nodes' alarm changes keep this node's memory of active alarms current (issue 15): a condition
    // that ends here clears an alarm another node raised.
    clusterBus?.onAlarm((c) => alarms.applyRemoteChange(c));

    const orderStore = await openOrderStore(database);
    const orders = new OrderService({
      store: orderStore, regions, live, commands, logger, now: Date.now,
      modeOf: (hub) => modes.modeOf(hub),
      raiseAlarm: (a) => {
        alarms.raise({ hub: a.hub, device: a.device, compartment: a.compartment, kind: a.kind as never, severity: a.severity, detail: a.detail, params: a.params })
          .catch((err: unknown) => logger.error({ err, hub: a.hub, kind: a.kind }, 'raising an alarm failed'));
      },
      onPickupCode: (result) => metrics.pickupCodes.inc({ result }),
      onMissionEventRefused: () => metrics.missionEventsRefused.inc(),
      reservePct: config.dispatch.reservePct, leases,
    });
    // Asked for every sensor reading that is not calm, on the alarm rules' hot path: the order service
    // answers from memory, read again from the order store at the end of every planning round (2 s; any
    // process's assignments included), its own assignments at once. No reading waits for the database.
    alarms.setMissionsPlannedAt((hub) => orders.hasAssignedMissionAt(hub));
    // Runs after ingest closed (closers run in reverse): the mission events and pickups ingest handed
    // over are applied on the orders' own chain, which must finish before the database closes (issue 12, defect 8).
    closers.push(async () => {
      orders.stop();
      await orders.settled();
    });

    let storeHealthy = true;
    const ingest = new Ingest({
      store: trackHealth(store, (ok) => (storeHealthy = ok)), sql: database.sql, deadLetters, live, metrics, logger, seen, seenAtStart: await seen.newest(50_000),
      maxPayloadBytes: config.ingest.maxPayloadBytes, maxBatchPoints: config.ingest.maxBatch, lingerMs: config.ingest.lingerMs, maxDevicesPerHub: config.ingest.maxDevicesPerHub,
      maxFutureSkewMs: config.ingest.maxFutureSkewMs, compartments: new KnownCompartments(regions),
      issuedModeVersion: (r) => modes.issuedVersion(r),
      // Other processes on the same PostgreSQL (a cluster's nodes) switch too: a version this one has not seen yet is read before it is refused.
      refreshIssuedModeVersion: database.dialect === 'postgres' ? (r, receivedAt) => modes.refreshIssued(r, receivedAt) : undefined,
      hooks: {
        // A command's result is recorded in the group commit's transaction, with the acknowledgement's dedupe id.
        recordCommandAcks: async (acks, tx) => void (await commands.applyAcks(acks.map((a) => a.ack), tx)),
        // Alarm rules see events on receipt (onEventReceived) and telemetry once stored; orders see both once stored.
        // The alarm service writes changes on its own queue (it never rejects): ingest does not wait for it.
        onEventReceived: (message, messageRegion) => void alarms.onDeviceMessage(message, messageRegion),
        onDeviceMessage: (message, messageRegion) => {
          if (!message.type.endsWith('.event')) void alarms.onDeviceMessage(message, messageRegion);
          orders.onDeviceMessage(message);
        },
        recordModeAcks: (acks, tx) => modes.recordAcks(acks, tx),
        onModeAck: (ack, ackRegion, receivedAt) => {
          live.applyModeAck(ackRegion, ack, receivedAt);
          modes.applyAck(ack, ackRegion, receivedAt);
        },
      },
    });
    closers.push(() => ingest.close());

    const started = await startCloudBroker({
      bindHost: config.bindHost, port: config.mqtt.port, wsPort: config.mqtt.wsPort, tls: config.mqtt.tls,
      maxPacketBytes: config.mqtt.maxPacketBytes, maxConnections: config.mqtt.maxConnections,
      maxConnectionsPerHub: config.mqtt.maxConnectionsPerHub, maxInflightPerClient: config.mqtt.maxInflightPerClient,
      packetTimeoutMs: config.mqtt.packetTimeoutMs, listenBacklog: config.mqtt.listenBacklog, sessionExpiryMs: config.mqtt.sessionExpiryMs,
      maxIdleSessionsPerHub: config.mqtt.maxIdleSessionsPerHub, maxUnauthenticatedPerAddress: config.mqtt.maxUnauthenticatedPerAddress,
      loginThrottle: config.mqtt.loginThrottle, proxyProtocol: config.mqtt.proxyProtocol,
      cluster: cluster.clustered && cluster.redisUrl !== null ? { nodeId: cluster.nodeId, redisUrl: cluster.redisUrl } : null,
      credentials, ingest, live, metrics, logger,
      onCommandSubscriber: (hub) => {
        // A failed store query is logged and asked again by the command service.
        commands.redeliver(hub.hubId).catch(() => undefined);
      },
    });
    broker = started;
    closers.push(() => started.close());
    // Link checks (hub_offline) stop before the broker closes every hub's connection at shutdown.
    alarms.start();
    closers.push(() => alarms.close());
    await modes.republish(); // retained messages live in the broker's memory: give a restarted broker the desired modes
    orders.start();
    // A region taken over from another node is planned at once (its orders are read from the database every round).
    leases.onAcquired((name) => {
      if (name.startsWith('region:')) void orders.tick();
    });
    // The dashboards' figures (ingest, alarms, modes, orders) go to the telemetry store like hub data.
    const opsStats = startOpsStatsWriter({
      store, regions, intervalMs: config.opsStats.intervalMs, logger, leases,
      sources: {
        metrics,
        activeAlarms: () => alarms.list({ state: 'active', limit: 100_000 }),
        modes: (r) => modes.view(r).hubs.map((h) => ({
          hub: h.hub, emergency: h.desired === 'emergency', acknowledged: h.status === 'acknowledged', version: modes.desired(r).version,
        })),
        orderCounts: (r) => orderStore.countsByStateAndPriority(r),
        deliveries: (r) => orderStore.arrivalsByPriority(r),
      },
    });
    closers.push(() => opsStats.stop());

    // Who acknowledged an alarm or switched a mode, as people know them (issue 13, item 5).
    const displayNames = await startDisplayNames(accounts, { logger: logger.child({ component: 'accounts' }) });
    closers.push(() => displayNames.close());
    const displayNameOf = (username: string) => displayNames.of(username);
    const app = await buildApp({
      live, store, deadLetters, commands, metrics, logger, metricsText: clusterMetrics ? () => clusterMetrics!.text() : undefined, health: () => ({ storeHealthy, operationalHealthy: ingest.operationalHealthy, ingestPending: ingest.pending, cluster: clusterBus?.health() }),
      access: accessHooks(accounts, { regions: regionLookup }),
      http: { trustProxy: config.http.trustProxy, allowedOrigins: config.http.allowedOrigins },
      features: [
        accountRoutes({
          accounts, credentials, registry: metrics.registry, regions: regionLookup, hubRegion: (hub) => regionLookup.regionOfHub(hub) ?? null,
          signIn: config.signIn, cookieSecure: config.http.cookieSecure,
        }),
        modeRoutes(modes, { displayNameOf }), alarmRoutes(alarms, { displayNameOf }), orderRoutes(orders, orderStore),
        modeProposalRoutes(await ModeProposals.open({ db: database, regions, now: Date.now })),
        consoleRoutes({ regions, geographyOf, alarms, remoteAlarms: clusterBus ? (fn) => clusterBus!.onAlarm(fn) : undefined, alarmLoss: clusterBus ? (fn) => clusterBus!.onPossibleLoss(fn) : undefined, modes, displayNameOf, events: config.events, sessionOf: async (token) => (await accounts.resolveToken(token))?.account ?? null }),
      ],
    });
    await app.listen({ host: config.bindHost, port: config.http.port });
    closers.push(() => app.close());
    if (config.regionsDir !== null) {
      // New region files in REGIONS_DIR are served without a restart (hubs of other regions stay connected).
      const watcher = watchRegionsDir({
        dir: config.regionsDir, regions, loaded: loadedRegions, logger,
        onLoaded: (l) => regionFiles.set(l.region.id, l.file),
      });
      closers.push(() => watcher.close());
    }
    const httpPort = (app.server.address() as { port: number }).port;

    const host = config.bindHost === '0.0.0.0' || config.bindHost === '::' ? '127.0.0.1' : config.bindHost;
    const urls = {
      http: `http://${host}:${httpPort}`,
      mqtt: `mqtt://${host}:${started.ports.mqtt}`,
      ws: started.ports.ws === null ? null : `ws://${host}:${started.ports.ws}/mqtt`,
      mqtts: started.ports.mqtts === null ? null : `mqtts://${host}:${started.ports.mqtts}`,
    };
    let closing: Promise<void> | null = null;
    return {
      config, urls, live, store, deadLetters, metrics, credentials, broker: started, app, ingest, commands, alarms, modes, orders, accounts,
      close: () => (closing ??= closeAll()),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** Wraps a store so the cloud knows whether writes currently succeed (for /healthz). */
function trackHealth(store: TelemetryStore, set: (ok: boolean) => void): TelemetryStore {
  return {
    kind: store.kind,
    write: async (points) => {
      try {
        await store.write(points);
        set(true);
      } catch (err) {
        set(false);
        throw err;
      }
    },
    history: (q) => store.history(q),
    messageIds: (h, f, t) => store.messageIds(h, f, t),
    countPoints: (m, h, f, t) => store.countPoints(m, h, f, t),
    close: () => store.close(),
  };
}

/**
 * Demo mode: every hub of the region gets credentials; `<dataDir>/credentials.json` (mode 0600) keeps
 * the plain passwords so simulators, real devices and `mosquitto_pub` can connect. Existing entries
 * are kept, so restarting the demo does not change passwords.
 */
async function provisionDemoCredentials(dataDir: string, region: string, hubIds: string[], store: HubCredentialStore, logger: Logger): Promise<void> {
  const file = path.join(dataDir, 'credentials.json');
  let existing: Record<string, { username: string; password: string }> = {};
  try {
    existing = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    existing = {};
  }
  let changed = false;
  for (const hub of hubIds) {
    const known = existing[hub];
    if (known && (await store.has(hub))) continue;
    const entry = known ?? { username: hub, password: generatePassword() };
    await store.set(hub, region, entry.username, entry.password);
    existing[hub] = entry;
    changed = true;
  }
  if (changed || !fs.existsSync(file)) {
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(existing, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  fs.chmodSync(file, 0o600);
  logger.info({ file, hubs: hubIds.length }, 'demo hub credentials ready');
}
