import fs from 'node:fs';

/**
 * Linux caps a listen backlog at `net.core.somaxconn` without a word (listen(2)). The cap, or null
 * where it cannot be read (another OS, no /proc).
 */
export function kernelBacklogCap(read: () => string = () => fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8')): number | null {
  try {
    const n = Number(read().trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * The operator's warning when the kernel holds fewer connections than MQTT_LISTEN_BACKLOG asks for and
 * than the cloud has hubs (those that reconnect at once after a restart, or when a node dies), else
 * null: a demo with a dozen hubs is not warned on a host with the common cap of 4,096. Beyond the
 * queue, handshakes are dropped and retried by TCP 1, 3 and 7 s later (issue 17, item 3).
 */
export function backlogWarning(requested: number, cap: number | null, hubs: number): string | null {
  if (cap === null || cap >= Math.min(requested, hubs)) return null;
  return `the kernel holds only ${cap} connections for the MQTT listeners (net.core.somaxconn), fewer than this cloud's ${hubs} hubs ` +
    `and than MQTT_LISTEN_BACKLOG ${requested}: hubs reconnecting at once beyond that (after a restart) have their handshakes dropped and retried 1, 3 and 7 s later; ` +
    `raise it: on a host sysctl -w net.core.somaxconn=${requested}, in a container its own setting (docker run --sysctl, compose sysctls; README, "Sizing the nodes")`;
}
