import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, RegionFile } from '../../contract/index.ts';

/** The demo region file, parsed, for the model tests. */
export function loadDemoRegion(): RegionFile {
  const path = fileURLToPath(new URL('../../config/regions/ishikawa-nomi.json', import.meta.url));
  return RegionFile.parse(JSON.parse(readFileSync(path, 'utf8')));
}

/** A fixed wall-clock start for simulated runs: 2025-11-25 00:00 JST. */
export const T0 = Date.UTC(2025, 10, 24, 15, 0, 0);

let commandSeq = 0;

/** A contract `hub.command` issued at `T0` that expires an hour later; `over` replaces any field. */
export function makeCommand(
  hub: string,
  device: string,
  command: Command['command'],
  args: Command['args'] = {},
  over: Partial<Command> = {},
): Command {
  commandSeq += 1;
  return Command.parse({ v: 1, type: 'hub.command', id: `cmd-${commandSeq}`, ts: T0, hub, device, command, expiresAt: T0 + 3_600_000, args, ...over });
}
