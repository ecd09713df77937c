import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRedis, type RedisServer } from '../../test/support/redis.ts';
import { claimNodeId, NodeIdInUseError, type NodeOwner, type NodeOwnerOptions } from './node-owner.ts';

/**
 * The NODE_ID claim (issue 15: one process per NODE_ID in a cluster) against a real redis-server.
 * A short TTL (600 ms: renewed every 200 ms) keeps the waits short.
 */
const TTL = 600;
const logger = pino({ level: 'silent' });
let redis: RedisServer;
let r: Redis;
const owners: NodeOwner[] = [];
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
  r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
});
afterEach(async () => {
  for (const o of owners.splice(0)) await o.release();
});
afterAll(async () => {
  r?.disconnect();
  await redis?.stop();
});

/** A fresh NODE_ID per test (one Redis for the file). */
const nextId = () => `node-${++n}`;
async function claim(nodeId: string, over: Partial<NodeOwnerOptions> = {}): Promise<NodeOwner> {
  const owner = await claimNodeId({ redisUrl: redis.url, nodeId, ttlMs: TTL, logger, onLost: () => undefined, ...over });
  owners.push(owner);
  return owner;
}

describe('claiming a NODE_ID in Redis', () => {
  it('claims a free NODE_ID at once and keeps it past several TTLs by renewing', async () => {
    const id = nextId();
    const t0 = Date.now();
    const a = await claim(id);
    expect(a.key).toBe(`cloud:node-owner:${id}`);
    expect(a.waitedMs).toBe(0);
    expect(await r.get(a.key)).toBe(a.instance);
    expect(await r.pttl(a.key)).toBeLessThanOrEqual(TTL);
    await vi.waitFor(async () => {
      expect(await r.get(a.key)).toBe(a.instance);
      expect(Date.now() - t0).toBeGreaterThan(3 * TTL);
    }, { timeout: 10_000, interval: 50 });
  });

  it('refuses a second process while the holder lives: the message names the NODE_ID, the holder and how long a claim lasts; the holder keeps it', async () => {
    const id = nextId();
    const a = await claim(id);
    const err = await claim(id).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(NodeIdInUseError);
    const msg = (err as Error).message;
    expect(msg).toContain(`NODE_ID "${id}" is in use: another running cloud process holds it (instance ${a.instance}`);
    expect(msg).toContain('give every node its own NODE_ID');
    expect(msg).toContain('A claim lasts 0.6 s (LEASE_TTL_S)');
    expect(await r.get(a.key)).toBe(a.instance);
  });

  it('a clean release lets the next process claim at once', async () => {
    const id = nextId();
    const a = await claim(id);
    await a.release();
    expect(await r.exists(a.key)).toBe(0);
    const b = await claim(id);
    expect(b.waitedMs).toBe(0);
    expect(await r.get(b.key)).toBe(b.instance);
  });

  it('after a holder died without releasing (kill -9), start-up waits for its claim to expire and claims it', async () => {
    const id = nextId();
    const key = `cloud:node-owner:${id}`;
    await r.set(key, 'killed-instance', 'PX', TTL); // what a killed process leaves: a claim nobody renews
    const b = await claim(id);
    expect(b.waitedMs).toBeGreaterThan(0);
    expect(await r.get(key)).toBe(b.instance);
  });

  it('refuses a key without expiry (set by hand) instead of waiting forever', async () => {
    const id = nextId();
    await r.set(`cloud:node-owner:${id}`, 'by-hand');
    await expect(claim(id)).rejects.toThrow(/instance by-hand.*the key never expires/);
  });

  it('a holder that finds its claim taken by another instance (paused past the TTL) reports it lost, once, and stops renewing', async () => {
    const id = nextId();
    const lost: { holder: string }[] = [];
    const a = await claim(id, { onLost: (l) => lost.push(l) });
    await r.set(a.key, 'the-duplicate', 'PX', 60_000);
    await expect.poll(() => lost, { timeout: 5_000, interval: 20 }).toEqual([{ nodeId: id, holder: 'the-duplicate', instance: a.instance }]);
    // Its release leaves the other instance's claim alone.
    await a.release();
    expect(await r.get(a.key)).toBe('the-duplicate');
    expect(lost).toHaveLength(1);
    await r.del(a.key);
  });

  it('claims again when the key is gone (Redis restarted empty), without reporting it lost', async () => {
    const id = nextId();
    const onLost = vi.fn();
    const a = await claim(id, { onLost });
    await redis.restart(); // no append-only file: it comes back empty
    await expect.poll(() => r.get(a.key).catch(() => null), { timeout: 10_000, interval: 50 }).toBe(a.instance);
    expect(onLost).not.toHaveBeenCalled();
  });
});
