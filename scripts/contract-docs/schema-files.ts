/** The standalone JSON Schema files under docs/contract/schemas/: one per message type, and the region file's. */
import {
  RegionFile,
} from '../../contract/index.ts';
import { schemaId, DRAFT_07, QOS, type MessageDoc, toDraft07 } from './contract-model.ts';
import { angled, type JsonSchema } from './markdown.ts';

function standaloneSchema(name: string, title: string, description: string, body: JsonSchema, examples: unknown[]): JsonSchema {
  const { description: _own, ...rest } = body;
  return { $schema: DRAFT_07, $id: schemaId(name), title, description, ...rest, examples };
}

export function messageSchemaFile(m: MessageDoc): JsonSchema {
  const where = m.topics.map((t) => `\`${angled(t.address)}\``).join(', ');
  const by = m.topics[0]!.direction === 'up' ? 'the hub' : 'the cloud';
  return standaloneSchema(m.type, m.type, `${m.description}. Published by ${by} on ${where} (QoS ${QOS}${m.topics[0]!.retained ? ', retained' : ''}).`, m.jsonSchema, [m.example.payload]);
}

export function regionFileSchema(): JsonSchema {
  return standaloneSchema(
    'region-file',
    'Region file',
    'A region (地域生活圏) file, config/regions/<region>.json: the hubs of one region and their drones, lockers and sensors. Fields with a default may be left out. Hub ids must be unique, and device ids unique within a hub (checked by the cloud, not expressible in JSON Schema). Unknown top-level fields are kept for later use.',
    toDraft07(RegionFile),
    [regionFileExample()],
  );
}

/** A small region file with the examples' ids; parsed here, so a contract change cannot leave it invalid. */
function regionFileExample(): Record<string, unknown> {
  const example = {
    id: 'ishikawa-nomi',
    name: { ja: '石川県能美市', en: 'Nomi, Ishikawa' },
    hubs: [
      {
        id: 'nomi-terai',
        kind: 'community-hall',
        name: { ja: '寺井公民館', en: 'Terai community hall' },
        location: { lat: 36.4439, lon: 136.4555 },
        drones: [{ id: 'drone-1', model: 'generic-5kg', maxPayloadKg: 5, cruiseMps: 10, enduranceS: 1080 }],
        lockers: [
          {
            id: 'locker-a',
            compartments: [
              { id: 'A01', size: 'S', tempClass: 'ambient' },
              { id: 'A02', size: 'M', tempClass: 'chilled' },
              { id: 'A03', size: 'L', tempClass: 'frozen' },
            ],
          },
        ],
        sensors: ['wx'],
      },
    ],
  };
  RegionFile.parse(example);
  return example;
}
