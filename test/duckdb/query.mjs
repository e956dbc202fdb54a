// query.mjs runs one SQL query with DuckDB and prints its rows as a JSON array
// on stdout, with the query's wall time in milliseconds on stderr. socle's cost
// tests and bench use it as an independent reference: node query.mjs "SQL".
import { DuckDBInstance } from '@duckdb/node-api';

const sql = process.argv[2];
if (!sql) {
  console.error('usage: node query.mjs "SQL"');
  process.exit(2);
}
const threads = process.env.DUCKDB_THREADS;
const instance = await DuckDBInstance.create(':memory:', threads ? { threads } : {});
const conn = await instance.connect();
const start = process.hrtime.bigint();
const reader = await conn.runAndReadAll(sql);
const ms = Number(process.hrtime.bigint() - start) / 1e6;
const rows = reader.getRowObjectsJson();
process.stdout.write(JSON.stringify(rows));
process.stderr.write(`duckdb_ms=${ms}\n`);
