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
export class RetainedIndex<T> {
  private readonly root = new Level<T>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  set(topic: string, value: T): void {
    let node = this.root;
    for (const name of topic.split('/')) {
      let next = node.child(name);
      if (!next) {
        next = new Level<T>();
        node.addChild(name, next);
      }
      node = next;
    }
    if (node.value === undefined) this.count++;
    node.value = value;
  }

  delete(topic: string): void {
    const names = topic.split('/');
    const path: Level<T>[] = [this.root];
    for (const name of names) {
      const next = path.at(-1)!.child(name);
      if (!next) return;
      path.push(next);
    }
    const leaf = path.at(-1)!;
    if (leaf.value === undefined) return;
    leaf.value = undefined;
    this.count--;
    // Prune nodes left without value or children, so the trie does not keep every topic ever retained.
    for (let i = names.length; i > 0; i--) {
      const node = path[i]!;
      if (node.value !== undefined || node.hasChildren) break;
      path[i - 1]!.removeChild(names[i - 1]!);
    }
  }

  /** Values whose topic matches the filter. */
  *match(filter: string): Generator<T> {
    yield* this.walk(this.root, filter.split('/'), 0);
  }

  private *walk(node: Level<T>, levels: readonly string[], i: number): Generator<T> {
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
      for (const [name, child] of node.children()) {
        if (i === 0 && name.startsWith('$')) continue;
        yield* this.walk(child, levels, i + 1);
      }
      return;
    }
    const child = node.child(level);
    if (child) yield* this.walk(child, levels, i + 1);
  }

  /** The node's own value (the parent level of `#`) and everything below it. */
  private *all(node: Level<T>, atRoot: boolean): Generator<T> {
    if (node.value !== undefined && !atRoot) yield node.value;
    for (const [name, child] of node.children()) {
      if (atRoot && name.startsWith('$')) continue;
      yield* this.all(child, false);
    }
  }
}

/**
 * One topic level. Its children are kept as compactly as most levels need: none (the last level of a
 * topic, such as every hub's `status`), a single one in two fields (a hub that has only its status),
 * a Map only from two on. A Map costs ~200 bytes even with one entry, and a region has a level per
 * hub: an empty Map per leaf and a one-entry Map per hub had cost ~450 bytes per connected hub over a
 * plain map of topics (issue 17).
 */
class Level<T> {
  value: T | undefined = undefined;
  private onlyName: string | undefined = undefined;
  private only: Level<T> | undefined = undefined;
  private many: Map<string, Level<T>> | undefined = undefined;

  get hasChildren(): boolean {
    return this.only !== undefined || this.many !== undefined;
  }

  child(name: string): Level<T> | undefined {
    if (this.many) return this.many.get(name);
    return this.onlyName === name ? this.only : undefined;
  }

  /** Adds a child the level does not have yet. */
  addChild(name: string, node: Level<T>): void {
    if (this.many) {
      this.many.set(name, node);
    } else if (this.only) {
      this.many = new Map([[this.onlyName!, this.only], [name, node]]);
      this.onlyName = undefined;
      this.only = undefined;
    } else {
      this.onlyName = name;
      this.only = node;
    }
  }

  removeChild(name: string): void {
    if (this.many) {
      this.many.delete(name);
      if (this.many.size > 1) return;
      // Back to the compact form (a hub whose other topics were cleared).
      const rest = this.many.entries().next();
      this.many = undefined;
      if (!rest.done) [this.onlyName, this.only] = rest.value;
    } else if (this.onlyName === name) {
      this.onlyName = undefined;
      this.only = undefined;
    }
  }

  *children(): Generator<[string, Level<T>]> {
    if (this.many) yield* this.many;
    else if (this.only) yield [this.onlyName!, this.only];
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
