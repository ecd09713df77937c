// Node-RED settings for the integration flows (`npm run flows`). Everything comes from environment
// variables, read and checked once here: a bad value stops Node-RED with a message naming the
// variable. The flows read the checked values from `global.get('config')` (see flows/README.md).
// No secret is written here or in flows.json.
'use strict';
const path = require('node:path');

/** JMA seismic intensity classes (震度階級), lowest first; "5-" = 震度5弱, "5+" = 5強. */
const INTENSITIES = ['1', '2', '3', '4', '5-', '5+', '6-', '6+', '7'];

const env = process.env;
function fail(name, why) {
  throw new Error(`flows/settings.cjs: ${name} ${why}`);
}
function url(name, required) {
  const v = (env[name] ?? '').trim();
  if (!v) return required ? fail(name, 'is required (an http(s) URL)') : null;
  let u;
  try {
    u = new URL(v);
  } catch {
    return fail(name, `is not a URL: "${v}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(name, `must be http(s): "${v}"`);
  return v.replace(/\/+$/, '');
}
function seconds(name, dflt) {
  const v = (env[name] ?? '').trim();
  if (!v) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) fail(name, `must be a positive number of seconds: "${v}"`);
  return n;
}

const hazardFeedUrl = url('HAZARD_FEED_URL', false);
const hazardFeedFile = (env.HAZARD_FEED_FILE ?? '').trim() || null;
if (hazardFeedUrl && hazardFeedFile) fail('HAZARD_FEED_URL', 'and HAZARD_FEED_FILE are both set; set one');
const minIntensity = (env.HAZARD_MIN_INTENSITY ?? '5-').trim();
if (!INTENSITIES.includes(minIntensity)) fail('HAZARD_MIN_INTENSITY', `must be one of ${INTENSITIES.join(' ')}: "${minIntensity}"`);
const areaCodes = (env.HAZARD_AREA_CODES ?? '391').split(',').map((s) => s.trim()).filter(Boolean);
if (areaCodes.length === 0 || areaCodes.some((c) => !/^\d{2,4}$/.test(c))) fail('HAZARD_AREA_CODES', `must be JMA area codes separated by commas: "${env.HAZARD_AREA_CODES}"`);
const port = Number(env.NODE_RED_PORT ?? 1880);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('NODE_RED_PORT', `must be a port number: "${env.NODE_RED_PORT}"`);

// An API token of a cloud account (coordinator: reads alarms and hubs, proposes modes), created by an
// admin with POST /api/v1/accounts/<username>/tokens. Sent as `Authorization: Bearer` on every call to
// the cloud (`cloudApiHeaders`); never written into flows.json.
const cloudApiToken = (env.CLOUD_API_TOKEN ?? '').trim();
if (/\s/.test(cloudApiToken)) fail('CLOUD_API_TOKEN', 'must not contain spaces');

/** What the flows need, checked; read in function nodes with `global.get('config')`. */
const config = Object.freeze({
  cloudApiUrl: url('CLOUD_API_URL', true),
  // Without a token every call is refused (401) and the flows' status shows it.
  cloudApiHeaders: Object.freeze(cloudApiToken ? { authorization: `Bearer ${cloudApiToken}` } : {}),
  regionId: (env.REGION_ID ?? 'ishikawa-nomi').trim(),
  alarmWebhookUrl: url('ALARM_WEBHOOK_URL', false),
  alarmPollS: seconds('ALARM_POLL_S', 3),
  alarmRetryMaxS: seconds('ALARM_RETRY_MAX_S', 60),
  escalationWebhookUrl: url('ESCALATION_WEBHOOK_URL', false),
  hubOfflineEscalateS: seconds('HUB_OFFLINE_ESCALATE_S', 300),
  hubPollS: seconds('HUB_POLL_S', 10),
  hazardFeedUrl,
  hazardFeedFile: hazardFeedFile && path.resolve(hazardFeedFile),
  hazardPollS: seconds('HAZARD_POLL_S', 60),
  hazardMinIntensity: minIntensity,
  hazardAreaCodes: Object.freeze(areaCodes),
  intensities: Object.freeze(INTENSITIES),
});

// Admin API / editor: off unless both are set (NODE_RED_ADMIN_PASSWORD_HASH: a bcrypt hash, from
// `npx node-red admin hash-pw`). Without them the editor is open: bind to loopback (NODE_RED_HOST).
const adminUser = env.NODE_RED_ADMIN_USER;
const adminHash = env.NODE_RED_ADMIN_PASSWORD_HASH;

module.exports = {
  uiPort: port,
  uiHost: env.NODE_RED_HOST || '127.0.0.1',
  flowFile: 'flows.json',
  flowFilePretty: true,
  // Encrypts flows_cred.json (not committed). Unset: Node-RED generates a key into .config.runtime.json.
  credentialSecret: env.NODE_RED_CREDENTIAL_SECRET || undefined,
  adminAuth: adminUser && adminHash ? { type: 'credentials', users: [{ username: adminUser, password: adminHash, permissions: '*' }] } : undefined,
  // Persistent context: what was delivered or proposed survives a restart. `file` flushes every
  // second (and on shutdown); a crash can lose at most the last second, so a notification may be
  // sent twice (never lost) — webhooks get the alarm id to drop a repeat.
  contextStorage: {
    default: { module: 'memory' },
    file: { module: 'localfilesystem', config: { flushInterval: 1 } },
  },
  functionGlobalContext: { config },
  // A webhook that hangs counts as down after this long; the flow retries.
  httpRequestTimeout: 10_000,
  editorTheme: { projects: { enabled: false }, tours: false },
  telemetry: { enabled: false },
  diagnostics: { enabled: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  logging: { console: { level: env.NODE_RED_LOG_LEVEL || 'info', metrics: false, audit: false } },
};
