import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

/**
 * A JMA bulletin → an emergency-mode proposal, exactly as the Node-RED flow decides it (issue 16):
 * this runs THE FLOW'S OWN function node "intensity in our areas" from flows/flows.json — its text,
 * read at run time, never a copy — after parsing the XML the way the flow's xml node does (xml2js,
 * the options the node is configured with, from the xml2js Node-RED loads), with the configuration
 * flows/settings.cjs builds for the same HAZARD_AREA_CODES, HAZARD_MIN_INTENSITY and REGION_ID.
 * A change to the flow's mapping changes planning and drill runs with it.
 */

export interface ModeProposal {
  source: 'jma';
  mode: 'emergency';
  reason: string;
  evidence: Record<string, unknown>;
}

export interface ProposalOptions {
  /** JMA area codes of the region (the flow's HAZARD_AREA_CODES), e.g. ["390", "391"]. */
  areaCodes: string[];
  /** Lowest intensity that proposes (HAZARD_MIN_INTENSITY): "1" … "7", "5-" = 震度5弱. */
  minIntensity: string;
  regionId: string;
}

const FLOWS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../flows');
const FLOWS_FILE = path.join(FLOWS_DIR, 'flows.json');
const SETTINGS_FILE = path.join(FLOWS_DIR, 'settings.cjs');
const MAPPING_NODE = 'intensity in our areas';

interface FlowNode {
  id: string;
  type: string;
  name?: string;
  func?: string;
  attr?: string;
  chr?: string;
  property?: string;
  wires?: string[][];
}

interface XmlParser {
  parseString(xml: string, options: Record<string, unknown>, cb: (err: Error | null, result: unknown) => void): void;
}

interface FlowParts {
  mapping: (msg: unknown, global: unknown, flow: unknown, node: unknown, context: unknown, env: unknown) => unknown;
  xmlOptions: { attrkey: string; charkey: string };
  property: string;
  xml2js: XmlParser;
}

let parts: FlowParts | null = null;

/** The flow's mapping node, the xml node that feeds it and xml2js as Node-RED loads it (read once). */
function flowParts(): FlowParts {
  if (parts) return parts;
  const flows = JSON.parse(fs.readFileSync(FLOWS_FILE, 'utf8')) as FlowNode[];
  const mapping = flows.filter((n) => n.type === 'function' && n.name === MAPPING_NODE);
  if (mapping.length !== 1 || !mapping[0]!.func) throw new Error(`${FLOWS_FILE}: expected one function node named "${MAPPING_NODE}", found ${mapping.length}`);
  const node = mapping[0]!;
  const xmlNodes = flows.filter((n) => n.type === 'xml' && n.wires?.some((w) => w.includes(node.id)));
  if (xmlNodes.length !== 1) throw new Error(`${FLOWS_FILE}: expected one xml node wired to "${MAPPING_NODE}", found ${xmlNodes.length}`);
  const xml = xmlNodes[0]!;
  // Node-RED's xml node (@node-red/nodes/core/parsers/70-XML.js): attrkey = node.attr || '$', charkey = node.chr || '_'.
  const require = createRequire(import.meta.url);
  const xmlNodeFile = require.resolve('@node-red/nodes/core/parsers/70-XML.js');
  parts = {
    mapping: new Function('msg', 'global', 'flow', 'node', 'context', 'env', node.func!) as FlowParts['mapping'],
    xmlOptions: { attrkey: xml.attr || '$', charkey: xml.chr || '_' },
    property: xml.property || 'payload',
    xml2js: createRequire(xmlNodeFile)('xml2js') as XmlParser,
  };
  return parts;
}

/**
 * The `config` global the flows read, built by flows/settings.cjs itself from the environment it would
 * be given (its checks apply: an intensity outside the JMA scale is refused with its message).
 */
function flowConfig(o: ProposalOptions): Record<string, unknown> {
  const env: Record<string, string> = {
    CLOUD_API_URL: 'http://planning.invalid', // required by settings.cjs; the proposal's payload does not contain it
    HAZARD_AREA_CODES: o.areaCodes.join(','),
    HAZARD_MIN_INTENSITY: o.minIntensity,
    REGION_ID: o.regionId,
  };
  const module = { exports: {} as { functionGlobalContext?: { config?: Record<string, unknown> } } };
  const run = vm.compileFunction(fs.readFileSync(SETTINGS_FILE, 'utf8'), ['exports', 'require', 'module', '__filename', '__dirname', 'process'], { filename: SETTINGS_FILE });
  run(module.exports, createRequire(SETTINGS_FILE), module, SETTINGS_FILE, FLOWS_DIR, { env });
  const config = module.exports.functionGlobalContext?.config;
  if (!config) throw new Error(`${SETTINGS_FILE}: no functionGlobalContext.config`);
  return { ...config, cloudApiUrl: '', cloudApiHeaders: {} };
}

/** Parses XML as the flow's xml node does (synchronously: same parser, same options). */
function parseXml(xml: string): unknown {
  const { xml2js, xmlOptions } = flowParts();
  let out: { err: Error | null; result: unknown } | null = null;
  xml2js.parseString(xml, { ...xmlOptions, async: false }, (err, result) => {
    out ??= { err, result };
  });
  if (!out) throw new Error('xml2js did not answer synchronously');
  const done = out as { err: Error | null; result: unknown };
  if (done.err) throw new Error(`the bulletin is not well-formed XML: ${done.err.message.split('\n')[0]}`);
  return done.result;
}

/**
 * What the Node-RED flow would POST to /api/v1/regions/:region/mode-proposals for this bulletin, or
 * null when the flow proposes nothing (below the threshold, not in our areas, a drill or a cancellation).
 * A fresh flow context: the event was never proposed before.
 */
export function proposalFromBulletin(xml: string, o: ProposalOptions): ModeProposal | null {
  const { mapping, property } = flowParts();
  const config = flowConfig(o);
  const fileContext = new Map<string, unknown>();
  const flow = {
    get: (key: string, store?: string) => (store === 'file' ? fileContext.get(key) : undefined) ?? (key === 'proposed' ? {} : undefined),
    set: (key: string, value: unknown) => void fileContext.set(key, value),
  };
  const global = { get: (key: string) => (key === 'config' ? config : undefined) };
  const noop = () => {};
  const node = { status: noop, warn: noop, log: noop, error: noop };
  const context = { get: () => undefined, set: noop };
  const msg: Record<string, unknown> = { [property]: parseXml(xml) };
  const result = mapping(msg, global, flow, node, context, { get: () => undefined });
  if (result === null || result === undefined) return null;
  const payload = (result as { payload?: unknown }).payload;
  if (!payload || typeof payload !== 'object') throw new Error(`flow node "${MAPPING_NODE}" returned a message without a payload`);
  return payload as ModeProposal;
}
