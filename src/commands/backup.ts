// `dmuc-gateway backup FILE` and `restore FILE`: every table of the gateway's database as gzip-compressed
// JSON lines, with no PostgreSQL client tools. The embedded server is PostgreSQL 18, whose pg_dump the
// distributions do not ship (Debian 12's pg_dump 15 refuses it), and an external server may be of any
// version: plain SQL over the gateway's own connection works with both.
//
// The file: a header line {format, version, created, migrations, tables: [{name, columns}]}, then one
// line per row {"t": table, "r": row as row_to_json}. Tables come parents first (foreign keys), so a
// restore streams the file in order. The snapshot is consistent: one REPEATABLE READ transaction.
import { createReadStream, createWriteStream } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { createInterface } from "node:readline";
import { Writable, type Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import pg from "pg";
import { MIGRATIONS_TABLE } from "../../ormconfig.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../log.js";
import { openDatabase, openExistingDatabase } from "../db/database.js";
import { runningGateways } from "../db/domain-lease.js";
import { VERSION } from "../version.js";

const FORMAT = "dmuc-gateway-backup";
const FORMAT_VERSION = 1;
const BATCH = 1000;

interface Header {
  format: string;
  version: number;
  created: string;
  gateway: string;
  migrations: string[];
  tables: { name: string; columns: string[] }[];
}

export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackupError";
  }
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The gateway's tables (not the migrations table), parents before children. */
async function tablesInOrder(client: pg.Client): Promise<string[]> {
  const { rows: tables } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> $1 ORDER BY 1`,
    [MIGRATIONS_TABLE],
  );
  const { rows: edges } = await client.query<{ child: string; parent: string }>(
    `SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k
       JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE k.contype = 'f' AND n.nspname = current_schema() AND c.relname <> p.relname`,
  );
  const ordered: string[] = [];
  const visiting = new Set<string>();
  const visit = (table: string) => {
    if (ordered.includes(table) || visiting.has(table)) return;
    visiting.add(table);
    for (const edge of edges) if (edge.child === table) visit(edge.parent);
    ordered.push(table);
  };
  for (const { name } of tables) visit(name);
  return ordered;
}

/** Columns a restore can write (not generated ones), in table order. */
async function insertableColumns(client: pg.Client, table: string): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum`,
    [ident(table)],
  );
  return rows.map((r) => r.name);
}

function writeLine(out: Writable, value: unknown): Promise<void> | void {
  if (!out.write(JSON.stringify(value) + "\n")) return new Promise((resolve) => out.once("drain", resolve));
}

export async function backup(config: GatewayConfig, log: Logger, file: string): Promise<{ rows: number; tables: number }> {
  const database = await openExistingDatabase(config, log);
  const client = new pg.Client({ connectionString: database.url });
  const temporary = file === "-" ? undefined : `${file}.${process.pid}.tmp`;
  const gzip = createGzip();
  const sink = temporary ? createWriteStream(temporary, { mode: 0o600 }) : process.stdout;
  gzip.pipe(sink);
  let rows = 0;
  try {
    await client.connect();
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const tables = await tablesInOrder(client);
    const migrations = (await client.query<{ name: string }>(`SELECT name FROM ${ident(MIGRATIONS_TABLE)} ORDER BY timestamp`)).rows.map((r) => r.name);
    const header: Header = {
      format: FORMAT,
      version: FORMAT_VERSION,
      created: new Date().toISOString(),
      gateway: VERSION,
      migrations,
      tables: [],
    };
    for (const name of tables) header.tables.push({ name, columns: await insertableColumns(client, name) });
    await writeLine(gzip, header);
    for (const table of tables) {
      await client.query(`DECLARE dump NO SCROLL CURSOR FOR SELECT row_to_json(t)::text AS r FROM ${ident(table)} t`);
      for (;;) {
        const batch = await client.query<{ r: string }>(`FETCH ${BATCH} FROM dump`);
        for (const row of batch.rows) await writeLine(gzip, { t: table, r: JSON.parse(row.r) as unknown });
        rows += batch.rows.length;
        if (batch.rows.length < BATCH) break;
      }
      await client.query("CLOSE dump");
    }
    await client.query("COMMIT");
    gzip.end();
    await finished(sink);
    if (temporary) await rename(temporary, file);
    log.info("backup.written", { file, rows, tables: tables.length });
    return { rows, tables: tables.length };
  } catch (err) {
    gzip.destroy();
    if (temporary) await unlink(temporary).catch(() => undefined);
    throw err;
  } finally {
    await client.end().catch(() => undefined);
    await database.close();
  }
}

async function readHeader(lines: AsyncIterator<string>, file: string): Promise<Header> {
  const first = await lines.next();
  let header: Partial<Header> | undefined;
  try {
    header = first.done ? undefined : (JSON.parse(first.value) as Partial<Header>);
  } catch {
    header = undefined;
  }
  if (!header || header.format !== FORMAT || !Array.isArray(header.tables) || !Array.isArray(header.migrations)) {
    throw new BackupError(`${file} is not a backup made by 'dmuc-gateway backup'`);
  }
  if (header.version !== FORMAT_VERSION) throw new BackupError(`${file} has backup format ${header.version}; this gateway reads format ${FORMAT_VERSION}`);
  return header as Header;
}

export async function restore(config: GatewayConfig, log: Logger, file: string, force: boolean): Promise<{ rows: number; tables: number }> {
  let input: Readable;
  if (file === "-") input = process.stdin;
  else {
    input = createReadStream(file);
    await new Promise<void>((resolve, reject) => {
      input.once("open", () => resolve());
      input.once("error", (err) => reject(new BackupError(`cannot read ${file}: ${err.message}`)));
    });
  }
  const lines = createInterface({ input: input.pipe(createGunzip()), crlfDelay: Infinity })[Symbol.asyncIterator]();
  let header: Header;
  try {
    header = await readHeader(lines, file);
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`${file} is not a backup made by 'dmuc-gateway backup' (${(err as Error).message})`);
  }

  // Opening as the gateway does: the embedded cluster is created when there is none, the schema migrated.
  const database = await openDatabase(config, log);
  const client = new pg.Client({ connectionString: database.url });
  try {
    await client.connect();
    const running = await runningGateways(client);
    if (running.length > 0) throw new BackupError(`a gateway is serving this database (${running.join("; ")}): stop it before restoring`);
    const applied = (await client.query<{ name: string }>(`SELECT name FROM ${ident(MIGRATIONS_TABLE)}`)).rows.map((r) => r.name);
    const unknown = header.migrations.filter((m) => !applied.includes(m));
    if (unknown.length > 0) throw new BackupError(`the backup was made by a newer gateway (migrations ${unknown.join(", ")}): restore it with that version`);

    await client.query("BEGIN");
    const tables = await tablesInOrder(client);
    await client.query(`LOCK TABLE ${tables.map(ident).join(", ")} IN ACCESS EXCLUSIVE MODE`);
    const holding: [string, number][] = [];
    for (const table of tables) {
      const n = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${ident(table)}`)).rows[0]!.n);
      if (n > 0) holding.push([table, n]);
    }
    if (holding.length > 0 && !force) {
      throw new BackupError(
        `the database is not empty (${holding.map(([t, n]) => `${n} ${t}`).join(", ")}): restore into an empty database, or give --force to replace its data`,
      );
    }
    if (holding.length > 0) await client.query(`TRUNCATE ${tables.map(ident).join(", ")} RESTART IDENTITY CASCADE`);

    const columnsOf = new Map<string, string[]>();
    for (const table of header.tables) {
      if (!tables.includes(table.name)) throw new BackupError(`the backup has a table ${table.name} that this gateway's schema does not have`);
      const insertable = new Set(await insertableColumns(client, table.name));
      columnsOf.set(table.name, table.columns.filter((c) => insertable.has(c)));
    }
    let rows = 0;
    let pending: { table: string; rows: unknown[] } | undefined;
    const flush = async () => {
      if (!pending || pending.rows.length === 0) return;
      const columns = columnsOf.get(pending.table)!.map(ident).join(", ");
      await client.query(
        `INSERT INTO ${ident(pending.table)} (${columns}) OVERRIDING SYSTEM VALUE SELECT ${columns} FROM json_populate_recordset(NULL::${ident(pending.table)}, $1::json)`,
        [JSON.stringify(pending.rows)],
      );
      rows += pending.rows.length;
      pending = undefined;
    };
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      if (next.value.trim() === "") continue;
      const line = JSON.parse(next.value) as { t: string; r: unknown };
      if (!columnsOf.has(line.t)) throw new BackupError(`${file}: a row of ${line.t}, a table the header does not list`);
      if (pending && (pending.table !== line.t || pending.rows.length >= BATCH)) await flush();
      pending ??= { table: line.t, rows: [] };
      pending.rows.push(line.r);
    }
    await flush();
    // Identity and serial columns continue after the restored ids.
    for (const table of tables) {
      for (const column of await insertableColumns(client, table)) {
        const { rows: seq } = await client.query<{ s: string | null }>("SELECT pg_get_serial_sequence($1, $2) AS s", [ident(table), column]);
        if (seq[0]?.s) await client.query(`SELECT setval($1, COALESCE((SELECT max(${ident(column)}) FROM ${ident(table)}), 0) + 1, false)`, [seq[0].s]);
      }
    }
    await client.query("COMMIT");
    log.info("backup.restored", { file, rows, tables: header.tables.length });
    return { rows, tables: header.tables.length };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    await client.end().catch(() => undefined);
    await database.close();
  }
}
