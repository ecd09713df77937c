import { Readable } from 'node:stream';
import type { Aedes } from 'aedes';

/**
 * Retained messages indexed by topic level (a trie), for aedes' in-memory persistence.
 *
 * aedes-persistence keeps retained messages in one Map and answers every SUBSCRIBE by testing each
 * retained topic against each filter. Every hub leaves one retained message (its status), and every
 * hub subscribes to three filters when it connects, so a region of 13,800 hubs reconnecting after an
 * outage cost 13,800 × 3 × 13,800 ≈ 570 million topic tests (minutes of CPU, with the broker unable
 * to answer anything else meanwhile). Walking the trie along the filter visits only the topics that
 * can match: `v1/<region>/<hub>/cmd/#` looks at that hub's subtree, `v1/<region>/mode` at one node.
 *
 * Matching follows MQTT 3.1.1 [MQTT-4.7.1]: `+` is exactly one level (also an empty one), `#` (last)
 * is the parent level and everything below it; a filter starting with a wildcard does not match
 * topics starting with `$` [MQTT-4.7.2-1].
 */
interface Node<T> {
  children: Map<string, Node<T>>;
  value: T | undefined;
}

const newNode = <T>(): Node<T> => ({ children: new Map(), value: undefined });

export class RetainedIndex<T> {
  private readonly root: Node<T> = newNode();
  private count = 0;

  get size(): number {
    return this.count;
  }

  set(topic: string, value: T): void {
    let node = this.root;
    for (const level of topic.split('/')) {
      let next = node.children.get(level);
      if (!next) {
        next = newNode();
        node.children.set(level, next);
      }
      node = next;
    }
    if (node.value === undefined) this.count++;
    node.value = value;
  }

  delete(topic: string): void {
    const levels = topic.split('/');
    const path: Node<T>[] = [this.root];
    for (const level of levels) {
      const next = path.at(-1)!.children.get(level);
      if (!next) return;
      path.push(next);
    }
    const leaf = path.at(-1)!;
    if (leaf.value === undefined) return;
    leaf.value = undefined;
    this.count--;
    // Prune nodes left without value or children, so the trie does not keep every topic ever retained.
    for (let i = levels.length; i > 0; i--) {
      const node = path[i]!;
      if (node.value !== undefined || node.children.size > 0) break;
      path[i - 1]!.children.delete(levels[i - 1]!);
    }
  }

  /** Values whose topic matches the filter. */
  *match(filter: string): Generator<T> {
    yield* this.walk(this.root, filter.split('/'), 0);
  }

  private *walk(node: Node<T>, levels: readonly string[], i: number): Generator<T> {
    if (i === levels.length) {
      if (node.value !== undefined) yield node.value;
      return;
    }
    const level = levels[i]!;
    if (level === '#') {
      yield* this.all(node, i === 0);
      return;
    }
    if (level === '+') {
      for (const [name, child] of node.children) {
        if (i === 0 && name.startsWith('$')) continue;
        yield* this.walk(child, levels, i + 1);
      }
      return;
    }
    const child = node.children.get(level);
    if (child) yield* this.walk(child, levels, i + 1);
  }

  /** The node's own value (the parent level of `#`) and everything below it. */
  private *all(node: Node<T>, atRoot: boolean): Generator<T> {
    if (node.value !== undefined && !atRoot) yield node.value;
    for (const [name, child] of node.children) {
      if (atRoot && name.startsWith('$')) continue;
      yield* this.all(child, false);
    }
  }
}

/** What aedes calls on its persistence for retained messages (aedes 1.x, aedes-persistence 11). */
interface RetainedPersistence {
  storeRetained(packet: { topic: string; payload: Buffer }, cb?: (err?: Error | null) => void): Promise<void> | void;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

/**
 * Replaces the retained-message part of a broker's in-memory persistence with a `RetainedIndex`.
 * Call right after `Aedes.createBroker`, before any client connects. Throws when the broker's
 * persistence does not look like the one this was written for (an aedes upgrade must not silently
 * lose retained messages).
 */
export function indexRetainedMessages(aedes: Aedes): RetainedIndex<unknown> {
  const p = (aedes as unknown as { persistence?: Partial<RetainedPersistence> }).persistence;
  if (!p || typeof p.storeRetained !== 'function' || typeof p.createRetainedStream !== 'function' || typeof p.createRetainedStreamCombi !== 'function') {
    throw new Error('aedes persistence without storeRetained/createRetainedStream/createRetainedStreamCombi: cannot index retained messages');
  }
  const index = new RetainedIndex<unknown>();
  const persistence = p as RetainedPersistence;
  persistence.storeRetained = (pkt, cb) => {
    // As aedes-persistence does: a copy, and an empty payload deletes [MQTT-3.3.1-10].
    const packet = { ...pkt };
    if (packet.payload.length === 0) index.delete(packet.topic);
    else index.set(packet.topic, packet);
    if (cb) {
      process.nextTick(cb, null);
      return;
    }
    return Promise.resolve();
  };
  persistence.createRetainedStream = (pattern) => Readable.from(index.match(pattern));
  persistence.createRetainedStreamCombi = (patterns) => Readable.from((function* () {
    for (const pattern of patterns) yield* index.match(pattern);
  })());
  return index;
}
