// The logger lives in shared/: the edge agent uses it too, and edge/ must not import from cloud/ (issue 12).
export * from '../shared/logger.ts';
