/**
 * The benchmarks' load generators open thousands of hub connections from one loopback address, where
 * a real fleet comes from as many addresses as it has hubs. The cloud's per-address bounds (issue 11:
 * connections not yet logged in, queued password checks and wrong logins per address) exist against
 * floods from one source; here they would measure the bound instead of the broker, so every cloud a
 * benchmark starts lifts them. The global bounds (MQTT_MAX_CONNECTIONS, concurrent checks) stay.
 */
export const ONE_ADDRESS_FLEET_ENV: Readonly<Record<string, string>> = {
  MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS: '1000000',
  MQTT_LOGIN_MAX_QUEUED_PER_ADDRESS: '1000000',
  MQTT_LOGIN_MAX_FAILURES_PER_ADDRESS: '1000000',
};
