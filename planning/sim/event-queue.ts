/**
 * The virtual clock of planning mode (issue 16): a queue of timed steps, run in time order — ties in
 * the order they were scheduled, so a run is a pure function of its inputs. Nothing here reads the
 * wall clock; `now` moves only when the next step is taken.
 */
export interface Step {
  at: number;
  seq: number;
  label: string;
  run: () => void | Promise<void>;
}

export class EventQueue {
  private heap: Step[] = [];
  private seq = 0;
  /** Virtual time, epoch ms. */
  now: number;

  constructor(startMs: number) {
    this.now = startMs;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `run` at `at` (never before now). */
  at(at: number, label: string, run: () => void | Promise<void>): void {
    const s: Step = { at: Math.max(Math.round(at), this.now), seq: this.seq++, label, run };
    const h = this.heap;
    h.push(s);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  /** Schedules `run` `ms` after now. */
  after(ms: number, label: string, run: () => void | Promise<void>): void {
    this.at(this.now + ms, label, run);
  }

  peek(): Step | undefined {
    return this.heap[0];
  }

  /** Takes the earliest step and moves the clock to it. */
  pop(): Step | undefined {
    const h = this.heap;
    const top = h[0];
    if (!top) return undefined;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    this.now = top.at;
    return top;
  }
}

const before = (a: Step, b: Step): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);
