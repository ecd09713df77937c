import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The one logger of a process; components take `logger.child({ component })`. Shared by the cloud
 * and the edge agent, which meet only through contract/ and MQTT — edge/ imports nothing from
 * cloud/ (issue 12).
 */
export function createLogger(level: string, name: string): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
