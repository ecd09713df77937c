/** The shared message contract (v1): ids, payload schemas, topics and examples. */
export * from './ids.ts';
export * from './client-id.ts';
export * from './messages.ts';
export * from './commands.ts';
export * from './topics.ts';
export { EXAMPLES } from './examples.ts';
export * from './region.ts';
export * from './scenario.ts';
export * from './validate-message.ts';
