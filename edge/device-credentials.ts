import fs from 'node:fs';
import path from 'node:path';
import { DEVICE_LOGINS_FILE, DeviceLoginsFile } from '../shared/device-logins.ts';
import { generateSecret, restrictSecretFile, SecretVerifier, writeSecretFile } from './secret-file.ts';

/**
 * The per-device logins of the hub's local broker [issue 11]. On start the agent makes sure every
 * device of the hub has an entry in `<EDGE_DATA_DIR>/device-credentials.json` (mode 0600): existing
 * entries are kept as they are (a device provisioned once keeps its password across restarts),
 * missing ones get a generated secret. Entries added to the file by hand (24+ characters) are
 * honoured too: the file, not the device list, says who may log in.
 */
export interface DeviceCredentials {
  readonly file: string;
  /** Devices that have a login. */
  readonly devices: readonly string[];
  /** Devices that got a new password on this start. */
  readonly created: readonly string[];
  verify(device: string, password: Buffer | string | undefined): boolean;
}

export function openDeviceCredentials(dataDir: string, hub: string, devices: readonly string[]): DeviceCredentials {
  const file = path.join(dataDir, DEVICE_LOGINS_FILE);
  let current: DeviceLoginsFile = { hub, devices: {} };
  if (fs.existsSync(file)) {
    restrictSecretFile(file);
    const parsed = DeviceLoginsFile.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
    if (!parsed.success) {
      const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
      throw new Error(`${file}: invalid device credentials file (${issues.join('; ')}); fix or remove it`);
    }
    if (parsed.data.hub !== hub) throw new Error(`${file} holds the device logins of hub ${parsed.data.hub}, not ${hub}`);
    current = parsed.data;
  }
  const created = devices.filter((d) => current.devices[d] === undefined);
  if (created.length > 0 || !fs.existsSync(file)) {
    const next = { hub, devices: { ...current.devices, ...Object.fromEntries(created.map((d) => [d, generateSecret()])) } };
    writeSecretFile(file, `${JSON.stringify(next, null, 2)}\n`);
    current = next;
  }
  const verifier = new SecretVerifier();
  for (const [device, password] of Object.entries(current.devices)) verifier.set(device, password);
  return {
    file,
    devices: Object.keys(current.devices),
    created,
    verify: (device, password) => verifier.verify(device, password),
  };
}
