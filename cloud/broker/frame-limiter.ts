// The MQTT frame limiter lives in shared/: the edge agent's local broker applies it too, and edge/
// must not import from cloud/ (issue 11).
export * from '../../shared/mqtt-frame-limiter.ts';
