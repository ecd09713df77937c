import { describe, expect, it } from 'vitest';
import { loadDemoRegion } from './devices/test-region.ts';
import { resolveHubTargets, type HubTargetsInput } from './hub-targets.ts';
import type { HubCredentials } from './region-simulator.ts';
import { ConfigError } from './simulator-config.ts';

const region = loadDemoRegion();
const login = (hub: string): HubCredentials => ({ username: `hub-${hub}`, password: `pw-${hub}-0123456789` });

const deviceLogin = (file: string): Record<string, HubCredentials> => ({ wx: { username: 'wx', password: `pw-of-${file}` } });

function resolve(over: Partial<HubTargetsInput>, credentials: Record<string, HubCredentials> = {}) {
  let reads = 0;
  const loginFiles: string[] = [];
  const targets = resolveHubTargets({
    region,
    hubs: undefined,
    localBrokers: undefined,
    localLogins: undefined,
    loadDeviceLogins: (file) => {
      loginFiles.push(file);
      return deviceLogin(file);
    },
    credentialsFile: '/data/credentials.json',
    loadCredentials: () => {
      reads += 1;
      return credentials;
    },
    ...over,
  });
  return { ...targets, reads, loginFiles };
}

describe('resolveHubTargets', () => {
  describe('directly to the cloud', () => {
    it('plays every hub that has credentials, with status messages, and warns about the others', () => {
      const t = resolve({}, { 'nomi-terai': login('nomi-terai'), 'nomi-wake': login('nomi-wake') });
      expect(t).toMatchObject({ hubs: ['nomi-terai', 'nomi-wake'], publishStatus: true });
      expect(t.brokerUrlFor).toBeUndefined();
      expect(t.credentials['nomi-terai']).toEqual(login('nomi-terai'));
      expect(t.warnings[0]!.hubs).toHaveLength(region.hubs.length - 2);
    });

    it('needs credentials for every hub of SIM_HUBS, and for at least one hub', () => {
      expect(() => resolve({ hubs: ['nomi-terai', 'nomi-wake'] }, { 'nomi-terai': login('nomi-terai') })).toThrow(
        new ConfigError('CREDENTIALS_FILE=/data/credentials.json: no credentials for nomi-wake'),
      );
      expect(() => resolve({})).toThrow(/no credentials for any hub/);
      expect(() => resolve({ hubs: ['atlantis'] })).toThrow(/SIM_HUBS: not in region ishikawa-nomi: atlantis/);
    });
  });

  describe('behind edge agents (SIM_LOCAL_BROKERS)', () => {
    const localBrokers = { 'nomi-terai': 'mqtt://127.0.0.1:11883', 'rs-komatsu-kibagata': 'mqtt://127.0.0.1:11884' };

    it('plays the hubs the map names, each on its own broker, without status messages; anonymously (with a warning) without SIM_LOCAL_LOGINS', () => {
      const t = resolve({ localBrokers });
      expect(t).toMatchObject({ hubs: ['nomi-terai', 'rs-komatsu-kibagata'], publishStatus: false, credentials: {}, deviceLogins: {} });
      expect(t.warnings).toEqual([{ msg: expect.stringMatching(/connect anonymously.*LOCAL_ALLOW_ANONYMOUS/), hubs: ['nomi-terai', 'rs-komatsu-kibagata'] }]);
      expect(t.brokerUrlFor!('nomi-terai')).toBe('mqtt://127.0.0.1:11883');
      expect(t.brokerUrlFor!('rs-komatsu-kibagata')).toBe('mqtt://127.0.0.1:11884');
      expect(() => t.brokerUrlFor!('nomi-wake')).toThrow(/no local broker/);
      expect(t.reads).toBe(0); // the credentials file is not even read
    });

    it("logs each hub's devices in with its agent's device-credentials.json (SIM_LOCAL_LOGINS: a directory or a map)", () => {
      const fromDir = resolve({ localBrokers, localLogins: { dir: '/data/edge' } });
      expect(fromDir.loginFiles).toEqual(['/data/edge/nomi-terai/device-credentials.json', '/data/edge/rs-komatsu-kibagata/device-credentials.json']);
      expect(fromDir.deviceLogins['nomi-terai']).toEqual(deviceLogin('/data/edge/nomi-terai/device-credentials.json'));
      expect(fromDir).toMatchObject({ credentials: {}, warnings: [], reads: 0 });
      const fromMap = resolve({ localBrokers, localLogins: { inline: { 'nomi-terai': '/a.json', 'rs-komatsu-kibagata': '/b.json' } } });
      expect(fromMap.loginFiles).toEqual(['/a.json', '/b.json']);
      expect(() => resolve({ localBrokers, localLogins: { inline: { 'nomi-terai': '/a.json' } } })).toThrow(/SIM_LOCAL_LOGINS: no device-credentials file for rs-komatsu-kibagata/);
    });

    it('narrows to SIM_HUBS, each of which needs a broker; refuses hubs outside the region', () => {
      expect(resolve({ localBrokers, hubs: ['rs-komatsu-kibagata'] }).hubs).toEqual(['rs-komatsu-kibagata']);
      expect(() => resolve({ localBrokers, hubs: ['nomi-terai', 'nomi-wake'] })).toThrow(/SIM_LOCAL_BROKERS: no broker URL for nomi-wake/);
      expect(() => resolve({ localBrokers: { ...localBrokers, atlantis: 'mqtt://127.0.0.1:1' } })).toThrow(/SIM_LOCAL_BROKERS: not in region ishikawa-nomi: atlantis/);
      expect(() => resolve({ localBrokers: {} })).toThrow(/names no hub/);
    });
  });
});
