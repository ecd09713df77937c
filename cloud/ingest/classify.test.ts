import { describe, expect, it } from 'vitest';
import { buildTopic, EXAMPLES } from '../../contract/index.ts';
import { classifyPublish } from './classify.ts';

const LIMIT = 65_536;
const example = (name: string) => EXAMPLES.find((e) => e.name === name)!;
const classify = (topic: string, payload: unknown) =>
  classifyPublish(topic, Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)), LIMIT);

describe('classifyPublish', () => {
  it('accepts every hub-to-cloud example on its topic', () => {
    for (const e of EXAMPLES) {
      const c = classify(buildTopic(e.topic), e.payload);
      if (['hub.command', 'region.mode', 'cloud.ack'].includes(e.name)) {
        expect(c, e.name).toMatchObject({ ok: false, reason: 'unknown_topic' }); // down-link: never ingested
      } else {
        expect(c, e.name).toMatchObject({ ok: true });
      }
    }
  });

  it('rejects a payload over the limit before parsing it', () => {
    const e = example('drone.telemetry');
    const c = classifyPublish(buildTopic(e.topic), Buffer.alloc(LIMIT + 1, 0x20), LIMIT);
    expect(c).toMatchObject({ ok: false, reason: 'too_large' });
    if (!c.ok) expect(c.detail).toContain(String(LIMIT));
  });

  it('rejects topics outside the contract', () => {
    for (const t of ['v1/ishikawa-nomi/nomi-terai/toaster/t1/telemetry', 'v1/ishikawa-nomi/nomi-terai/drone/d1/telemetry/extra', 'v2/a/b/status', 'v1/ishikawa-nomi/nomi-terai/Drone/d1/event']) {
      expect(classify(t, {}), t).toMatchObject({ ok: false, reason: 'unknown_topic' });
    }
  });

  it('rejects malformed JSON and non-object JSON', () => {
    const t = buildTopic(example('sensor.telemetry').topic);
    expect(classify(t, '{"v":1,')).toMatchObject({ ok: false, reason: 'malformed_json' });
    expect(classify(t, '[1,2]')).toMatchObject({ ok: false, reason: 'malformed_json' });
    expect(classify(t, 'null')).toMatchObject({ ok: false, reason: 'malformed_json' });
    expect(classify(t, Buffer.from([0xff, 0xfe, 0x00]))).toMatchObject({ ok: false, reason: 'malformed_json' });
  });

  it('rejects wrong types with the offending field named', () => {
    const e = example('drone.telemetry');
    const c = classify(buildTopic(e.topic), { ...e.payload, batteryPct: 'full' });
    expect(c).toMatchObject({ ok: false, reason: 'schema' });
    if (!c.ok) expect(c.detail).toMatch(/batteryPct/);
    const out = classify(buildTopic(e.topic), { ...e.payload, batteryPct: 130 });
    expect(out).toMatchObject({ ok: false, reason: 'schema' });
  });

  it('rejects a payload whose hub or device disagrees with the topic', () => {
    const e = example('locker.telemetry');
    expect(classify(buildTopic(e.topic), { ...e.payload, hub: 'nomi-neagari' })).toMatchObject({ ok: false, reason: 'topic_mismatch' });
    expect(classify(buildTopic(e.topic), { ...e.payload, device: 'locker-b' })).toMatchObject({ ok: false, reason: 'topic_mismatch' });
    const status = example('hub.status');
    expect(classify(buildTopic(status.topic), { ...status.payload, hub: 'rs-komatsu-kibagata' })).toMatchObject({ ok: false, reason: 'topic_mismatch' });
  });

  it('rejects a message type that belongs on another channel', () => {
    const ev = example('drone.event');
    const telemetryTopic = buildTopic({ ...(ev.topic as { route: 'device' } & typeof ev.topic), channel: 'telemetry' } as never);
    expect(classify(telemetryTopic, ev.payload)).toMatchObject({ ok: false, reason: 'schema' });
  });
});
