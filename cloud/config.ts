import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { isTrustedProxyEntry } from './broker/proxy-protocol.ts';

/**
 * Cloud configuration, parsed once from the environment at start-up. Nothing else reads process.env.
 * A bad value stops the process with a message naming the variable (see `loadCloudConfig`).
 */
/** A TCP port; 0 means "any free port" (the chosen one is logged and printed). */
const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback);
const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(fallback ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

export const CloudEnv = z
  .object({
    BIND_HOST: optionalString.describe('Address every listener binds to (default: 127.0.0.1 while DEMO_ACCOUNTS is on, else 0.0.0.0)'),
    HTTP_PORT: port(8080).describe('HTTP API, /docs, /metrics'),
    TRUST_PROXY: z
      .string()
      .default('false')
      .transform((v) => (v === 'false' || v === '0' || v.trim() === '' ? false : v === 'true' ? true : /^\d+$/.test(v) ? Number(v) : v))
      .refine((v) => typeof v !== 'string' || v.split(',').every((a) => net.isIP(a.trim().split('/')[0]!) !== 0), 'false, true, a hop count, or comma-separated proxy addresses/CIDRs')
      .describe('Trust X-Forwarded-For/-Proto/-Host from these proxies (client address for the sign-in limits, https for Secure cookies)'),
    ALLOWED_ORIGINS: z
      .string()
      .default('')
      .transform((v, ctx) => v.split(',').map((o) => o.trim()).filter(Boolean).map((o) => {
        try {
          const u = new URL(o);
          if (u.protocol === 'http:' || u.protocol === 'https:') return u.origin;
        } catch {
          // reported below
        }
        ctx.addIssue({ code: 'custom', message: `"${o}" is not an http(s) origin such as https://ops.example.jp` });
        return o;
      }))
      .describe('Other origins (comma-separated) whose pages may make state-changing API calls'),
    COOKIE_SECURE: z.enum(['auto', 'true', 'false']).default('auto').describe('Secure session cookie: auto = when the request came over https (directly or per X-Forwarded-Proto from TRUST_PROXY)'),
    SIGNIN_FREE_FAILURES_PER_USERNAME: z.coerce.number().int().min(1).max(1000).default(5).describe('Failed sign-ins for one username before each next attempt must wait (1 s, doubling)'),
    SIGNIN_FREE_FAILURES_PER_ADDRESS: z.coerce.number().int().min(1).max(10_000).default(20).describe('The same per client address (IPv6: per /64)'),
    SIGNIN_MAX_DELAY_S: z.coerce.number().min(1).max(86_400).default(900).describe('Longest wait between sign-in attempts the growing delay reaches'),
    SIGNIN_MAX_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).default(60).describe('Sign-in requests one client address may make per minute, failed or not'),
    MQTT_PORT: port(1883).describe('MQTT over TCP'),
    MQTT_WS_PORT: z
      .union([z.literal('off'), port(8083)])
      .default(8083)
      .describe('MQTT over WebSocket (path /mqtt); "off" disables'),
    MQTTS_PORT: port(8883).describe('MQTT over TLS, used only when MQTT_TLS_CERT and MQTT_TLS_KEY are set'),
    MQTT_TLS_CERT: optionalString.describe('PEM certificate (chain) file for MQTTS'),
    MQTT_TLS_KEY: optionalString.describe('PEM private key file for MQTTS'),
    MQTT_MAX_PACKET_BYTES: z.coerce.number().int().min(1024).max(268_435_455).default(262_144).describe('Larger MQTT packets close the connection'),
    MQTT_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(20_000),
    MQTT_MAX_CONNECTIONS_PER_HUB: z.coerce.number().int().min(1).default(16),
    MQTT_MAX_INFLIGHT_PER_CLIENT: z.coerce.number().int().min(1).default(1_000).describe('Unacknowledged QoS 1/2 messages one client may have in ingest'),
    MQTT_LISTEN_BACKLOG: z.coerce.number().int().min(1).max(65_535).default(32_768).describe('Connections the kernel may hold for the MQTT listeners before the cloud accepts them (capped by net.core.somaxconn)'),
    MQTT_PACKET_TIMEOUT_S: z.coerce.number().min(0.05).max(3_600).default(30).describe('An MQTT packet must arrive whole within this many seconds of its first byte, else the connection is closed'),
    MQTT_SESSION_EXPIRY_S: z.coerce
      .number()
      .min(0.1)
      .max(366 * 86_400)
      .default(7 * 86_400)
      .describe('A persistent MQTT session (clean session off) with no connection this long is removed with its queued messages'),
    MQTT_MAX_IDLE_SESSIONS_PER_HUB: z.coerce.number().int().min(1).default(64).describe('Persistent sessions one hub may keep without a connection; beyond this its longest idle ones are removed'),
    MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS: z.coerce.number().int().min(1).default(128).describe('Connections from one address (IPv6: one /64) that have not logged in yet; more are closed on arrival'),
    MQTT_LOGIN_MAX_CHECKS: z.coerce.number().int().min(1).default(8).describe('MQTT password checks (scrypt) running at once; the rest wait, served address by address in turn'),
    MQTT_LOGIN_MAX_QUEUED_PER_ADDRESS: z.coerce.number().int().min(1).default(256).describe('Password checks one address may have waiting; beyond this its logins are refused at once (CONNACK 3)'),
    MQTT_LOGIN_MAX_FAILURES_PER_ADDRESS: z.coerce.number().int().min(1).default(20).describe('Wrong MQTT logins from one address within a minute before its logins are refused at once (CONNACK 3) until the minute has passed'),
    MQTT_PROXY_PROTOCOL: z
      .enum(['off', 'required'])
      .default('off')
      .describe('required: every MQTT connection (TCP, WebSocket, TLS) must come from MQTT_TRUSTED_PROXIES and start with a PROXY protocol v1/v2 header, whose client address then counts for the per-address limits and logs; others are closed'),
    MQTT_TRUSTED_PROXIES: z
      .string()
      .default('')
      .transform((v) => v.split(',').map((e) => e.trim()).filter(Boolean))
      .refine((list) => list.every(isTrustedProxyEntry), 'comma-separated addresses, CIDRs (10.0.0.0/8, fd00::/8) or host names of the load balancers')
      .describe('With MQTT_PROXY_PROTOCOL=required: the load balancers allowed to connect and send the header (host names are resolved again when an unknown address connects, at most once a second)'),
    MQTT_PROXY_HEADER_TIMEOUT_S: z.coerce.number().min(0.05).max(60).default(5).describe('With MQTT_PROXY_PROTOCOL=required: a connection whose PROXY header is not complete within this many seconds is closed'),
    INGEST_MAX_PAYLOAD_BYTES: z.coerce.number().int().min(256).default(65_536).describe('Larger payloads are dead-lettered as too_large'),
    INGEST_MAX_BATCH: z.coerce.number().int().min(1).default(5_000).describe('Points per store write (group commit)'),
    INGEST_LINGER_MS: z.coerce.number().min(0).max(100).default(5)
      .describe('Telemetry: a store write of fewer than 500 points waits up to this long for more (fewer, larger writes: each costs the cloud CPU whatever its size); 0: write at once. Events and acknowledgements never wait'),
    INGEST_MAX_DEVICES_PER_HUB: z.coerce.number().int().min(1).default(500),
    INGEST_MAX_FUTURE_SKEW_S: z.coerce
      .number()
      .min(1)
      .max(86_400)
      .default(300)
      .describe('A device timestamp further ahead of the cloud clock is dead-lettered as future_timestamp'),
    DATA_DIR: z.string().default('./data'),
    REGION_FILE: z.string().default('config/regions/ishikawa-nomi.json'),
    REGIONS_DIR: optionalString.describe('When set, every *.json region file in this folder is served (many regions in one cloud); REGION_FILE is then ignored'),
    DATABASE_URL: optionalString
      .pipe(z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL').optional())
      .describe('When set, operational state (accounts, alarms, modes, orders, commands, …) lives in this PostgreSQL; otherwise in DATA_DIR/cloud.db (SQLite)'),
    DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(10).describe('PostgreSQL connections in the pool'),
    REDIS_URL: optionalString
      .pipe(z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional())
      .describe('Cluster mode (with DATABASE_URL): N identical cloud nodes share this Redis (MQTT message bus, sessions, retained messages, wills, live state) and the PostgreSQL'),
    NODE_ID: optionalString
      .pipe(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, "_", "." or "-", at most 64').optional())
      .describe('This node\'s name in a cluster (logs, leases, /metrics); default: host name and process id'),
    LEASE_TTL_S: z.coerce.number().min(1).max(300).default(6).describe('Cluster: a region\'s work (mode-ack timeouts, hub-offline alarms, dispatch, ops stats, dedupe pruning) moves to another node this long after its holder stopped renewing'),
    INFLUX_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()).describe('When set, telemetry goes to this InfluxDB (v1-compatible API)'),
    INFLUX_DB: z.string().min(1).default('chiiki'),
    INFLUX_RP: optionalString,
    INFLUX_TOKEN: optionalString,
    INFLUX_USERNAME: optionalString,
    INFLUX_PASSWORD: optionalString,
    INFLUX_CREATE_DB: bool(false),
    SQLITE_SYNC: z.enum(['full', 'normal']).default('full').describe('full: every group commit is fsynced (survives power loss)'),
    DEAD_LETTER_MAX_ROWS: z.coerce.number().int().min(100).default(100_000),
    DEAD_LETTER_MAX_BYTES: z.coerce.number().int().min(1_048_576).default(1_073_741_824).describe('Bytes of all dead letters beyond which the oldest are evicted'),
    DEAD_LETTER_MAX_ROWS_PER_HUB: z.coerce.number().int().min(10).default(1_000).describe("One hub's dead letters beyond this evict its own oldest"),
    // At least one kept payload (64 KiB) with its topic and detail.
    DEAD_LETTER_MAX_BYTES_PER_HUB: z.coerce.number().int().min(131_072).default(8_388_608).describe("Bytes of one hub's dead letters beyond which its own oldest are evicted"),
    DEDUPE_RETENTION_HOURS: z.coerce
      .number()
      .min(1)
      .max(24 * 366)
      .default(168)
      .describe('How long the cloud remembers the ids of events and acknowledgements it took, to drop re-sent copies'),
    MODE_ACK_TIMEOUT_S: z.coerce.number().min(1).max(86_400).default(120).describe('A hub that has not acknowledged a mode switch this long shows timed_out'),
    DISPATCH_RESERVE_PCT: z.coerce.number().min(0).max(90).default(25).describe('Battery reserve a drone must keep on landing back, percent'),
    DISPATCH_RESERVE_PCT_EMERGENCY: z.coerce.number().min(0).max(90).default(35).describe('The same in emergency mode (higher: a disaster is no time to run dry)'),
    EVENTS_MAX_STREAMS_PER_SESSION: z.coerce.number().int().min(1).max(10_000).default(4).describe('Live-feed streams (GET /api/v1/events) one session or API token may hold open; more get 429'),
    EVENTS_MAX_STREAMS_PER_ACCOUNT: z.coerce.number().int().min(1).max(100_000).default(16).describe('Live-feed streams one account may hold open over all its sessions and API tokens (so one account cannot take every slot); more get 429'),
    EVENTS_MAX_STREAMS: z.coerce.number().int().min(1).max(100_000).default(200).describe('Live-feed streams the cloud serves in all; more get 429'),
    ALARM_HUB_OFFLINE_GRACE_S: z.coerce.number().min(1).max(86_400).default(60).describe('A hub offline this long raises a hub_offline alarm'),
    OPS_STATS_INTERVAL_S: z.coerce.number().min(0.1).max(3_600).default(10).describe('How often the cloud writes its own figures (ingest, alarms, modes, orders) to the telemetry store for the dashboards'),
    EVENT_LOOP_RESOLUTION_MS: z.coerce.number().int().min(1).max(1_000).default(10).describe("Resolution of the event-loop delay figures in /metrics (nodejs_eventloop_lag_*), ms: 1 resolves the few-ms stalls an alarm's latency is made of, at ~1,000 timer wake-ups a second"),
    DEMO_CREDENTIALS: bool(false).describe('Create missing hub credentials (generated secrets) and write DATA_DIR/credentials.json'),
    DEMO_ACCOUNTS: z
      .enum(['true', 'false', '1', '0', 'yes', 'no'])
      .optional()
      .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1' || v === 'yes'))
      .describe('Create the demo accounts, whose passwords are public (default: as DEMO_CREDENTIALS); the cloud then binds to loopback unless BIND_HOST says otherwise'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((env, ctx) => {
    if (Boolean(env.MQTT_TLS_CERT) !== Boolean(env.MQTT_TLS_KEY)) {
      ctx.addIssue({ code: 'custom', path: [env.MQTT_TLS_CERT ? 'MQTT_TLS_KEY' : 'MQTT_TLS_CERT'], message: 'MQTT_TLS_CERT and MQTT_TLS_KEY must be set together' });
    }
    if (env.MQTT_PROXY_PROTOCOL === 'required' && env.MQTT_TRUSTED_PROXIES.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['MQTT_TRUSTED_PROXIES'], message: 'MQTT_PROXY_PROTOCOL=required needs the load balancers\' addresses, CIDRs or host names (comma-separated)' });
    }
    if (env.MQTT_PROXY_PROTOCOL === 'off' && env.MQTT_TRUSTED_PROXIES.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['MQTT_TRUSTED_PROXIES'], message: 'set only with MQTT_PROXY_PROTOCOL=required (it is off, so no header is read and every address connects directly)' });
    }
    if (env.REDIS_URL && !env.DATABASE_URL) {
      ctx.addIssue({ code: 'custom', path: ['REDIS_URL'], message: 'cluster mode needs DATABASE_URL too (the nodes share PostgreSQL)' });
    }
    if (env.INFLUX_TOKEN && (env.INFLUX_USERNAME || env.INFLUX_PASSWORD)) {
      ctx.addIssue({ code: 'custom', path: ['INFLUX_TOKEN'], message: 'set either INFLUX_TOKEN or INFLUX_USERNAME/INFLUX_PASSWORD, not both' });
    }
  });

/**
 * Node flags the cloud process is started with (package.json `cloud`, the Dockerfile, `npm start`,
 * the test harness). A 32 MiB young generation (V8's default is 16 MiB on 64-bit): at full ingest every
 * message allocates its parsed JSON, validated copy, points and line protocol, and with the default the
 * scavenger ran so often that it took ~18 % of the main thread and promoted short-lived batches to the
 * old generation; measured in BENCHMARKS.md (section 1 notes).
 *
 * No allocation-site pretenuring: V8 watches which allocation sites' objects survive scavenges and
 * then allocates theirs straight in the old generation. Under ingest it picked the sites of each
 * message (its parsed JSON, validated copy, points), which live only until their group commit (tens of
 * ms), so the old generation grew ~10 MB/s and a full GC came every 5–10 s. At half load (3,300 msg/s,
 * 3 runs each) the flag halved the median scavenge (4.3 → 2.0 ms), removed the main thread's full
 * GCs in a 20 s run (2–4 → 0) and cut CPU per message 61 → 51 µs (median).
 */
export const CLOUD_NODE_FLAGS = ['--max-semi-space-size=32', '--no-allocation-site-pretenuring'] as const;

export type CloudConfig = ReturnType<typeof toConfig>;

/** Whether an address is reachable from this machine only (127.0.0.0/8, ::1, localhost). */
export const isLoopback = (host: string): boolean => /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host === 'localhost';

function toConfig(env: z.infer<typeof CloudEnv>) {
  const dataDir = path.resolve(env.DATA_DIR);
  const demoAccounts = env.DEMO_ACCOUNTS ?? env.DEMO_CREDENTIALS;
  // Public demo passwords must not face a network by accident: loopback unless BIND_HOST is explicit.
  const bindHost = env.BIND_HOST ?? (demoAccounts ? '127.0.0.1' : '0.0.0.0');
  return {
    bindHost,
    /** Demo accounts (public passwords) on a listener that other machines can reach: said loudly at start-up. */
    exposedDemo: demoAccounts && !isLoopback(bindHost),
    http: { port: env.HTTP_PORT, trustProxy: env.TRUST_PROXY, allowedOrigins: env.ALLOWED_ORIGINS, cookieSecure: env.COOKIE_SECURE },
    signIn: {
      freeFailuresPerUsername: env.SIGNIN_FREE_FAILURES_PER_USERNAME, freeFailuresPerAddress: env.SIGNIN_FREE_FAILURES_PER_ADDRESS,
      maxDelayMs: Math.round(env.SIGNIN_MAX_DELAY_S * 1000), maxPerMinute: env.SIGNIN_MAX_PER_MINUTE,
    },
    mqtt: {
      port: env.MQTT_PORT,
      wsPort: env.MQTT_WS_PORT === 'off' ? null : env.MQTT_WS_PORT,
      tls: env.MQTT_TLS_CERT && env.MQTT_TLS_KEY ? { port: env.MQTTS_PORT, certFile: env.MQTT_TLS_CERT, keyFile: env.MQTT_TLS_KEY } : undefined,
      maxPacketBytes: env.MQTT_MAX_PACKET_BYTES,
      maxConnections: env.MQTT_MAX_CONNECTIONS,
      maxConnectionsPerHub: env.MQTT_MAX_CONNECTIONS_PER_HUB,
      maxInflightPerClient: env.MQTT_MAX_INFLIGHT_PER_CLIENT,
      packetTimeoutMs: Math.round(env.MQTT_PACKET_TIMEOUT_S * 1000),
      listenBacklog: env.MQTT_LISTEN_BACKLOG,
      sessionExpiryMs: Math.round(env.MQTT_SESSION_EXPIRY_S * 1000),
      maxIdleSessionsPerHub: env.MQTT_MAX_IDLE_SESSIONS_PER_HUB,
      maxUnauthenticatedPerAddress: env.MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS,
      loginThrottle: {
        maxActive: env.MQTT_LOGIN_MAX_CHECKS,
        maxQueuedPerAddress: env.MQTT_LOGIN_MAX_QUEUED_PER_ADDRESS,
        maxFailuresPerAddress: env.MQTT_LOGIN_MAX_FAILURES_PER_ADDRESS,
        failureWindowMs: 60_000,
      },
      /** PROXY protocol on the MQTT listeners (cloud/broker/proxy-protocol.ts); null: off. */
      proxyProtocol: env.MQTT_PROXY_PROTOCOL === 'required' ? { trustedProxies: env.MQTT_TRUSTED_PROXIES, headerTimeoutMs: Math.round(env.MQTT_PROXY_HEADER_TIMEOUT_S * 1000) } : null,
    },
    ingest: {
      maxPayloadBytes: env.INGEST_MAX_PAYLOAD_BYTES,
      maxBatch: env.INGEST_MAX_BATCH,
      lingerMs: env.INGEST_LINGER_MS,
      maxDevicesPerHub: env.INGEST_MAX_DEVICES_PER_HUB,
      maxFutureSkewMs: Math.round(env.INGEST_MAX_FUTURE_SKEW_S * 1000),
    },
    dataDir,
    regionFile: path.resolve(env.REGION_FILE),
    regionsDir: env.REGIONS_DIR ? path.resolve(env.REGIONS_DIR) : null,
    database: { url: env.DATABASE_URL ?? null, poolSize: env.DATABASE_POOL_SIZE },
    /** Cluster mode (issue 15): null on a single process (the embedded default). */
    cluster: env.REDIS_URL
      ? { redisUrl: env.REDIS_URL, nodeId: env.NODE_ID ?? `${os.hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 48)}-${process.pid}`, leaseTtlMs: Math.round(env.LEASE_TTL_S * 1000) }
      : null,
    influx: env.INFLUX_URL
      ? {
          url: env.INFLUX_URL,
          database: env.INFLUX_DB,
          retentionPolicy: env.INFLUX_RP,
          token: env.INFLUX_TOKEN,
          username: env.INFLUX_USERNAME,
          password: env.INFLUX_PASSWORD,
          createDatabase: env.INFLUX_CREATE_DB,
        }
      : undefined,
    sqliteSync: env.SQLITE_SYNC,
    deadLetters: {
      maxRows: env.DEAD_LETTER_MAX_ROWS, maxBytes: env.DEAD_LETTER_MAX_BYTES, maxRowsPerHub: env.DEAD_LETTER_MAX_ROWS_PER_HUB, maxBytesPerHub: env.DEAD_LETTER_MAX_BYTES_PER_HUB,
    },
    dedupeRetentionMs: Math.round(env.DEDUPE_RETENTION_HOURS * 3_600_000),
    modes: { ackTimeoutMs: Math.round(env.MODE_ACK_TIMEOUT_S * 1000) },
    dispatch: { reservePct: { normal: env.DISPATCH_RESERVE_PCT, emergency: env.DISPATCH_RESERVE_PCT_EMERGENCY } },
    events: { maxStreamsPerSession: env.EVENTS_MAX_STREAMS_PER_SESSION, maxStreamsPerAccount: env.EVENTS_MAX_STREAMS_PER_ACCOUNT, maxStreams: env.EVENTS_MAX_STREAMS },
    alarms: { hubOfflineGraceMs: Math.round(env.ALARM_HUB_OFFLINE_GRACE_S * 1000) },
    opsStats: { intervalMs: Math.round(env.OPS_STATS_INTERVAL_S * 1000) },
    eventLoopResolutionMs: env.EVENT_LOOP_RESOLUTION_MS,
    demoCredentials: env.DEMO_CREDENTIALS,
    demoAccounts,
    logLevel: env.LOG_LEVEL,
  };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses the environment; throws ConfigError naming every bad variable. */
export function loadCloudConfig(env: NodeJS.ProcessEnv = process.env): CloudConfig {
  const parsed = CloudEnv.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? '?');
      return `  ${name}=${JSON.stringify(env[name] ?? '')}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return toConfig(parsed.data);
}
