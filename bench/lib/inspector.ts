import WebSocket from 'ws';

/**
 * A minimal Chrome DevTools Protocol client for a Node process started with `--inspect=127.0.0.1:0`:
 * lets a benchmark force a full GC in the broker before reading its memory, read
 * `process.memoryUsage()` inside it, or take a CPU profile of just one phase.
 */
export interface Inspector {
  call<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>;
  /** Evaluates an expression in the process and returns its (JSON-able) value. */
  evaluate<T = unknown>(expression: string): Promise<T>;
  close(): void;
  /** Receives heap snapshot chunks (`HeapProfiler.takeHeapSnapshot`). */
  onChunk?: (chunk: string) => void;
}

/** The DevTools URL Node prints on stderr ("Debugger listening on ws://…"). */
export function inspectorUrl(output: readonly string[]): string | null {
  for (const l of output) {
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(l);
    if (m) return m[1]!;
  }
  return null;
}

export async function connectInspector(url: string): Promise<Inspector> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString()) as { id?: number; method?: string; params?: { chunk?: string }; result?: unknown; error?: { message: string } };
    if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') inspector.onChunk?.(msg.params!.chunk!);
    if (msg.id === undefined) return;
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    if (msg.error) w?.reject(new Error(msg.error.message));
    else w?.resolve(msg.result);
  });
  ws.on('close', () => {
    for (const w of waiting.values()) w.reject(new Error('inspector connection closed'));
    waiting.clear();
  });
  const call = <T>(method: string, params: Record<string, unknown> = {}) =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  const inspector: Inspector = {
    call,
    async evaluate<T>(expression: string) {
      const r = await call<{ result: { value?: unknown }; exceptionDetails?: { text: string } }>('Runtime.evaluate', { expression: `JSON.stringify(${expression})`, returnByValue: true });
      if (r.exceptionDetails) throw new Error(`evaluate ${expression}: ${r.exceptionDetails.text}`);
      return JSON.parse(String(r.result.value)) as T;
    },
    close: () => ws.close(),
  };
  return inspector;
}
