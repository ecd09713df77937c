import path from 'node:path';
import type { RegionFile } from '../contract/index.ts';
import { DEVICE_LOGINS_FILE } from '../shared/device-logins.ts';
import type { HubCredentials } from './region-simulator.ts';
import { ConfigError, type LocalBrokerMap, type LocalLoginsSource } from './simulator-config.ts';

/**
 * Which hubs the simulator plays, where each one publishes and how it logs in — decided from the
 * parsed configuration, without I/O (the credentials file is read through `loadCredentials`,
 * only when it is needed).
 *
 * Directly to the cloud (no SIM_LOCAL_BROKERS): every hub with an entry in CREDENTIALS_FILE (or
 * SIM_HUBS, each of which needs one), to MQTT_URL, with its birth/last-will status.
 *
 * Behind edge agents (SIM_LOCAL_BROKERS): the hubs the map names (or SIM_HUBS, each of which needs
 * an entry), each to its own local broker, without status messages (the agent owns the hub's
 * status [issue 3]); each device with its own login from its agent's device-credentials.json
 * (SIM_LOCAL_LOGINS [issue 11]), or anonymously without it (only agents run with
 * LOCAL_ALLOW_ANONYMOUS=true admit that).
 */
export interface HubTargets {
  hubs: string[];
  credentials: Record<string, HubCredentials>;
  /** Per hub: its devices' logins at the hub's local broker. */
  deviceLogins: Record<string, Record<string, HubCredentials>>;
  /** Per-hub broker URL; absent: every hub uses MQTT_URL. */
  brokerUrlFor?: (hubId: string) => string;
  publishStatus: boolean;
  /** Not errors, but worth a line in the log. */
  warnings: { msg: string; hubs?: string[] }[];
}

export interface HubTargetsInput {
  region: RegionFile;
  /** SIM_HUBS */
  hubs: string[] | undefined;
  /** SIM_LOCAL_BROKERS, read and validated */
  localBrokers: LocalBrokerMap | undefined;
  /** SIM_LOCAL_LOGINS */
  localLogins: LocalLoginsSource | undefined;
  /** Reads one agent's device-credentials.json: device id → login. Throws a ConfigError on a bad file. */
  loadDeviceLogins: (file: string) => Record<string, HubCredentials>;
  /** CREDENTIALS_FILE, for messages */
  credentialsFile: string;
  loadCredentials: () => Record<string, HubCredentials>;
}

export function resolveHubTargets(input: HubTargetsInput): HubTargets {
  const { region, localBrokers } = input;
  const inRegion = (h: string): boolean => region.hubs.some((x) => x.id === h);
  if (input.hubs) {
    const unknown = input.hubs.filter((h) => !inRegion(h));
    if (unknown.length) throw new ConfigError(`SIM_HUBS: not in region ${region.id}: ${unknown.join(', ')}`);
  }
  return localBrokers ? behindEdgeAgents(input, localBrokers) : directToCloud(input);
}

function directToCloud(input: HubTargetsInput): HubTargets {
  const { region } = input;
  const warnings: HubTargets['warnings'] = [];
  if (input.localLogins) warnings.push({ msg: 'SIM_LOCAL_LOGINS has no effect without SIM_LOCAL_BROKERS' });
  const credentials = input.loadCredentials();
  let hubs = input.hubs;
  if (hubs) {
    const noCreds = hubs.filter((h) => !credentials[h]);
    if (noCreds.length) throw new ConfigError(`CREDENTIALS_FILE=${input.credentialsFile}: no credentials for ${noCreds.join(', ')}`);
  } else {
    hubs = region.hubs.map((h) => h.id).filter((h) => credentials[h]);
    const missing = region.hubs.filter((h) => !credentials[h.id]).map((h) => h.id);
    if (hubs.length === 0) throw new ConfigError(`CREDENTIALS_FILE=${input.credentialsFile}: no credentials for any hub of region ${region.id}`);
    if (missing.length) warnings.push({ msg: 'no credentials for some hubs; they are not simulated', hubs: missing });
  }
  return { hubs, credentials, deviceLogins: {}, publishStatus: true, warnings };
}

function behindEdgeAgents(input: HubTargetsInput, localBrokers: LocalBrokerMap): HubTargets {
  const { region } = input;
  const warnings: HubTargets['warnings'] = [];
  const unknown = Object.keys(localBrokers).filter((h) => !region.hubs.some((x) => x.id === h));
  if (unknown.length) throw new ConfigError(`SIM_LOCAL_BROKERS: not in region ${region.id}: ${unknown.join(', ')}`);
  const hubs = input.hubs ?? region.hubs.map((h) => h.id).filter((h) => localBrokers[h]);
  if (hubs.length === 0) throw new ConfigError('SIM_LOCAL_BROKERS: names no hub');
  const noBroker = hubs.filter((h) => !localBrokers[h]);
  if (noBroker.length) throw new ConfigError(`SIM_LOCAL_BROKERS: no broker URL for ${noBroker.join(', ')} (listed in SIM_HUBS)`);

  const deviceLogins: Record<string, Record<string, HubCredentials>> = {};
  const logins = input.localLogins;
  if (logins) {
    const files = 'dir' in logins ? null : logins.inline;
    const noFile = files ? hubs.filter((h) => !files[h]) : [];
    if (noFile.length) throw new ConfigError(`SIM_LOCAL_LOGINS: no device-credentials file for ${noFile.join(', ')}`);
    for (const h of hubs) deviceLogins[h] = input.loadDeviceLogins(files ? files[h]! : path.join((logins as { dir: string }).dir, h, DEVICE_LOGINS_FILE));
  } else {
    warnings.push({ msg: 'no SIM_LOCAL_LOGINS: devices connect anonymously, which only edge agents run with LOCAL_ALLOW_ANONYMOUS=true admit', hubs });
  }
  const urls = new Map(hubs.map((h) => [h, localBrokers[h]!]));
  return {
    hubs,
    credentials: {},
    deviceLogins,
    brokerUrlFor: (hubId) => {
      const url = urls.get(hubId);
      if (!url) throw new Error(`no local broker for hub "${hubId}"`);
      return url;
    },
    publishStatus: false,
    warnings,
  };
}
