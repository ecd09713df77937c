// Writes telemetry rows to SQLite off the main thread, so an fsync (synchronous=FULL) or a busy
// lock never stalls the MQTT broker's event loop. Plain JavaScript on purpose: Node 20 does not apply
// TypeScript loader hooks to a worker's entry module. Protocol (see sqlite-telemetry-store.ts):
//   in:  { id, rows }  rows is a flat array, COLUMNS values per row
//        { close: true }
//   out: { id, ok: true } | { id, ok: false, message, code }
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const COLUMNS = 9;
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL');
db.pragma(`synchronous = ${workerData.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
db.pragma(`busy_timeout = ${Math.trunc(workerData.busyTimeoutMs)}`);
const insert = db.prepare(
  `INSERT OR IGNORE INTO points (ts, measurement, region, hub, device, part, tags, fields, msg_id)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, // column order as sqlite-telemetry-store.ts flattens rows
);
const insertAll = db.transaction((rows) => {
  for (let i = 0; i < rows.length; i += COLUMNS) {
    insert.run(rows[i], rows[i + 1], rows[i + 2], rows[i + 3], rows[i + 4], rows[i + 5], rows[i + 6], rows[i + 7], rows[i + 8]);
  }
});

parentPort.on('message', (msg) => {
  if (msg.close) {
    db.close();
    parentPort.close();
    return;
  }
  try {
    insertAll(msg.rows);
    parentPort.postMessage({ id: msg.id, ok: true });
  } catch (err) {
    parentPort.postMessage({ id: msg.id, ok: false, message: String(err && err.message), code: String((err && err.code) || '') });
  }
});
