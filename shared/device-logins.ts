import fs from 'node:fs';
import { z } from 'zod';
import { DeviceId, HubId } from '../contract/index.ts';

/**
 * The hub-local file of device logins that an edge agent creates in its data directory
 * (`device-credentials.json`, mode 0600) and that the hub's devices — or whoever provisions them,
 * the simulator under `npm start` — read. One login per device: the username is the device id,
 * the password a generated secret. Never sent to the cloud.
 */
export const DEVICE_LOGINS_FILE = 'device-credentials.json';

/** Generated passwords are 32 random bytes (base64url, 43 characters); hand-set ones need 24+. */
export const MIN_DEVICE_PASSWORD_LENGTH = 24;

export const DeviceLoginsFile = z
  .object({
    hub: HubId,
    devices: z.record(DeviceId, z.string().min(MIN_DEVICE_PASSWORD_LENGTH, `at least ${MIN_DEVICE_PASSWORD_LENGTH} characters`)),
  })
  .strict()
  .describe('Device logins of one hub: device id → password (the username is the device id)');
export type DeviceLoginsFile = z.infer<typeof DeviceLoginsFile>;

export interface DeviceLogin {
  username: string;
  password: string;
}

/** Reads and checks a device-logins file; throws with the file name and the first problems. */
export function readDeviceLogins(file: string): { hub: string; logins: Record<string, DeviceLogin> } {
  const parsed = DeviceLoginsFile.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`${file}: not a device-logins file (${issues.join('; ')})`);
  }
  const logins = Object.fromEntries(Object.entries(parsed.data.devices).map(([device, password]) => [device, { username: device, password }]));
  return { hub: parsed.data.hub, logins };
}
