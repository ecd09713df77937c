import { pino, type Logger } from 'pino';

export type { Logger };

/** The one logger of a process; components take `logger.child({ component })`. */
export function createLogger(level: string, name: string): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
