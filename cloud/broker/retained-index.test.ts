import { Aedes } from 'aedes';
import { describe, expect, it } from 'vitest';
import { indexRetainedMessages, RetainedIndex } from './retained-index.ts';

/** MQTT 3.1.1 topic matching, the plain way [MQTT-4.7.1, 4.7.2-1]. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if ((f[0] === '#' || f[0] === '+') && topic.startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

describe('RetainedIndex', () => {
  const topics = [
    'v1/r/hub-a/status', 'v1/r/hub-b/status', 'v1/r/mode', 'v1/r/hub-a/cmd/drone/d1', 'v1/r', 'v1', 'a//b', 'a/b', '$SYS/x/heartbeat', 'v1/other/hub-c/status',
  ];
  const index = new RetainedIndex<string>();
  for (const t of topics) index.set(t, t);

  it('finds exactly the topics an MQTT filter matches', () => {
    const filters = [
      'v1/r/hub-a/cmd/#', 'v1/r/hub-a/ack', 'v1/r/mode', 'v1/r/+/status', 'v1/#', '#', '+/r/mode', 'v1/+', 'v1/r/#', 'a/+/b', 'a/#', '+', '+/+',
      '$SYS/#', 'v1/r/hub-a/cmd/drone/d1', 'v1/+/+/status', 'v1/r/hub-a/cmd/drone/d1/#', 'nothing/#',
    ];
    for (const f of filters) expect(sorted(index.match(f)), f).toEqual(sorted(topics.filter((t) => matches(f, t))));
  });

  it('replaces a value and deletes (pruning empty levels)', () => {
    const i = new RetainedIndex<string>();
    i.set('a/b/c', 'one');
    i.set('a/b/c', 'two');
    i.set('a/b', 'parent');
    expect(i.size).toBe(2);
    expect(sorted(i.match('a/#'))).toEqual(['parent', 'two']);
    i.delete('a/b/c');
    i.delete('a/b/c');
    i.delete('x/y');
    expect(i.size).toBe(1);
    expect(sorted(i.match('#'))).toEqual(['parent']);
    i.delete('a/b');
    expect(i.size).toBe(0);
    expect([...i.match('#')]).toEqual([]);
  });

  it('agrees with plain matching on random topics and filters', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n);
    const words = ['a', 'b', 'c', '', '$s'];
    const topicOf = () => Array.from({ length: 1 + rand(4) }, () => words[rand(words.length)]!).join('/');
    const i = new RetainedIndex<string>();
    const all = new Set<string>();
    for (let k = 0; k < 300; k++) {
      const t = topicOf();
      all.add(t);
      i.set(t, t);
    }
    for (let k = 0; k < 300; k++) {
      const levels = topicOf().split('/').map((w) => (rand(4) === 0 ? '+' : w));
      if (rand(3) === 0) levels.push('#');
      const f = levels.join('/');
      expect(sorted(i.match(f)), f).toEqual(sorted([...all].filter((t) => matches(f, t))));
    }
  });

  it('agrees with plain matching while topics come and go (levels of none, one and many children)', () => {
    let seed = 11;
    const rand = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n);
    const words = ['a', 'b', 'c', '', '$s'];
    const topicOf = () => Array.from({ length: 1 + rand(4) }, () => words[rand(words.length)]!).join('/');
    const i = new RetainedIndex<string>();
    const all = new Set<string>();
    const filters = ['#', '+/#', 'a/#', '+/+', 'a/+/c', 'b/#', '$s/#', '+/b/+/#'];
    for (let k = 0; k < 2_000; k++) {
      const t = topicOf();
      if (rand(2) === 0) {
        all.add(t);
        i.set(t, t);
      } else {
        all.delete(t);
        i.delete(t);
      }
      expect(i.size).toBe(all.size);
      if (k % 50 === 0) for (const f of filters) expect(sorted(i.match(f)), f).toEqual(sorted([...all].filter((x) => matches(f, x))));
    }
    for (const t of [...all]) i.delete(t);
    expect(i.size).toBe(0);
    expect([...i.match('#')]).toEqual([]);
  });
});

describe('indexRetainedMessages on an aedes broker', () => {
  it('stores, replaces, clears and serves retained messages through aedes', async () => {
    const broker = await Aedes.createBroker();
    const index = indexRetainedMessages(broker);
    const publish = (topic: string, payload: string) =>
      new Promise<void>((resolve, reject) => broker.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: true, dup: false }, (e) => (e ? reject(e) : resolve())));
    await publish('v1/r/hub-a/status', 'online');
    await publish('v1/r/hub-b/status', 'online');
    await publish('v1/r/hub-a/status', 'offline');
    await publish('v1/r/hub-b/status', '');
    expect(index.size).toBe(1);
    const persistence = (broker as unknown as { persistence: { createRetainedStreamCombi(p: string[]): AsyncIterable<{ topic: string; payload: Buffer }> } }).persistence;
    const got: string[] = [];
    for await (const p of persistence.createRetainedStreamCombi(['v1/r/+/status', 'v1/r/mode'])) got.push(`${p.topic}=${p.payload.toString()}`);
    expect(got).toEqual(['v1/r/hub-a/status=offline']);
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  });
});
