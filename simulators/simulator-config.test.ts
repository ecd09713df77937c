import { describe, expect, it } from 'vitest';
import { ConfigError, parseSimulatorConfig, SIMULATOR_ENV_KEYS } from './simulator-config.ts';

describe('parseSimulatorConfig', () => {
  it('has defaults for everything', () => {
    expect(parseSimulatorConfig({})).toEqual({
      mqttUrl: 'mqtt://127.0.0.1:1883',
      regionFile: 'config/regions/ishikawa-nomi.json',
      credentialsFile: './data/credentials.json',
      rates: { droneHz: 1, lockerIntervalS: 10, sensorIntervalS: 5 },
      timeScale: 1,
      seed: undefined,
      hubs: undefined,
      localBrokers: undefined,
      localLogins: undefined,
      logLevel: 'info',
    });
  });

  it('reads every variable, treating empty ones as unset', () => {
    const c = parseSimulatorConfig({
      MQTT_URL: 'mqtts://broker.example:8883',
      REGION_FILE: 'r.json',
      DATA_DIR: '/var/lib/chiiki/',
      SIM_DRONE_HZ: '5',
      SIM_LOCKER_INTERVAL_S: '2.5',
      SIM_SENSOR_INTERVAL_S: '',
      SIM_TIME_SCALE: '20',
      SIM_SEED: '42',
      SIM_HUBS: 'nomi-terai, rs-komatsu-kibagata',
      LOG_LEVEL: 'debug',
    });
    expect(c).toMatchObject({
      mqttUrl: 'mqtts://broker.example:8883',
      credentialsFile: '/var/lib/chiiki/credentials.json',
      rates: { droneHz: 5, lockerIntervalS: 2.5, sensorIntervalS: 5 },
      timeScale: 20,
      seed: 42,
      hubs: ['nomi-terai', 'rs-komatsu-kibagata'],
      logLevel: 'debug',
    });
    expect(parseSimulatorConfig({ CREDENTIALS_FILE: '/etc/creds.json', DATA_DIR: '/x' }).credentialsFile).toBe('/etc/creds.json');
  });

  it('lists the variables it reads', () => {
    expect([...SIMULATOR_ENV_KEYS].sort()).toEqual(
      [
        'CREDENTIALS_FILE',
        'DATA_DIR',
        'LOG_LEVEL',
        'MQTT_URL',
        'REGION_FILE',
        'SIM_DRONE_HZ',
        'SIM_HUBS',
        'SIM_LOCAL_BROKERS',
        'SIM_LOCAL_LOGINS',
        'SIM_LOCKER_INTERVAL_S',
        'SIM_SEED',
        'SIM_SENSOR_INTERVAL_S',
        'SIM_TIME_SCALE',
      ],
    );
  });

  it('reads SIM_LOCAL_BROKERS as inline JSON or as a file path, and SIM_LOCAL_LOGINS as inline JSON or a directory', () => {
    expect(
      parseSimulatorConfig({
        SIM_LOCAL_BROKERS: ' {"nomi-terai":"mqtt://127.0.0.1:11883","nomi-wake":"mqtt://127.0.0.1:11884"} ',
        SIM_LOCAL_LOGINS: '{"nomi-terai":"/data/edge/nomi-terai/device-credentials.json"}',
      }),
    ).toMatchObject({
      localBrokers: { inline: { 'nomi-terai': 'mqtt://127.0.0.1:11883', 'nomi-wake': 'mqtt://127.0.0.1:11884' } },
      localLogins: { inline: { 'nomi-terai': '/data/edge/nomi-terai/device-credentials.json' } },
    });
    expect(parseSimulatorConfig({ SIM_LOCAL_BROKERS: 'config/local-brokers.json', SIM_LOCAL_LOGINS: './data/edge' })).toMatchObject({
      localBrokers: { file: 'config/local-brokers.json' },
      localLogins: { dir: './data/edge' },
    });
  });

  it.each([
    ['SIM_LOCAL_BROKERS', '{"nomi-terai": '],
    ['SIM_LOCAL_BROKERS', '{"nomi-terai": "127.0.0.1:11883"}'],
    ['SIM_LOCAL_BROKERS', '{"Nomi Terai": "mqtt://127.0.0.1:11883"}'],
    ['SIM_LOCAL_LOGINS', '{"nomi-terai": 3}'],
    ['SIM_LOCAL_LOGINS', '{"nomi-terai": '],
    ['SIM_DRONE_HZ', 'fast'],
    ['SIM_DRONE_HZ', '0'],
    ['SIM_LOCKER_INTERVAL_S', '-1'],
    ['SIM_TIME_SCALE', '1e9'],
    ['SIM_SEED', '1.5'],
    ['MQTT_URL', 'localhost:1883'],
    ['LOG_LEVEL', 'verbose'],
    ['SIM_HUBS', 'Nomi Terai'],
  ])('names the variable in the error: %s=%s', (name, value) => {
    expect(() => parseSimulatorConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => parseSimulatorConfig({ [name]: value })).toThrow(new RegExp(`${name}=`));
  });
});
