// Opens the gateway's database: DATABASE_URL when configured, otherwise an embedded PostgreSQL server in
// the data directory; then applies the pending migrations.
import { resolve } from "node:path";
import type { DataSource } from "typeorm";
import { createDataSource, MIGRATIONS_TABLE } from "../../ormconfig.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../log.js";

export interface Database {
  dataSource: DataSource;
  /** The connection URL (with its credentials), for connections of their own (the domain lock). */
  url: string;
  /** Whether the server is the embedded one, run by this process. */
  embedded: boolean;
  /** Closes the connections, then stops the embedded server if any. Safe to call more than once. */
  close(): Promise<void>;
}

export class DatabaseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DatabaseError";
  }
}

/** host:port/database of a postgres URL, without the credentials. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const host = parsed.hostname || parsed.searchParams.get("host") || "localhost";
    return `${host}:${parsed.port || "5432"}${parsed.pathname || ""}`;
  } catch {
    return "(unparsable DATABASE_URL)";
  }
}

/** A readable cause for a connection or query error (node's connection errors may be AggregateErrors without a message). */
function causeOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return [...new Set(err.errors.map((e) => causeOf(e)))].join("; ");
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = err.message || err.name;
    return code && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(err);
}

/** Advisory lock key ("dmuc") held while migrating, so that gateways sharing a database migrate one at a time. */
const MIGRATION_LOCK = 0x646d7563;

async function migrate(dataSource: DataSource, log: Logger): Promise<string[]> {
  const t0 = performance.now();
  let applied;
  const lock = dataSource.createQueryRunner();
  try {
    await lock.connect();
    await lock.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    applied = await dataSource.runMigrations({ transaction: "each" });
  } catch (err) {
    throw new DatabaseError(`database migration failed: ${causeOf(err)}`, { cause: err });
  } finally {
    await lock.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
    await lock.release();
  }
  for (const migration of applied) log.info("db.migrated", { migration: migration.name, timestamp: migration.timestamp });
  const known = new Set(dataSource.migrations.map((m) => m.name));
  const recorded = (await dataSource.query(`SELECT "name" FROM "${MIGRATIONS_TABLE}" ORDER BY "timestamp"`)) as { name: string }[];
  const unknown = recorded.map((r) => r.name).filter((name) => !known.has(name));
  if (unknown.length > 0) {
    log.warn("db.unknown_migrations", { migrations: unknown, reason: "the database was migrated by a newer gateway version" });
  }
  log.info("db.schema_ready", { applied: applied.length, ms: Math.round(performance.now() - t0) });
  return applied.map((m) => m.name);
}

/**
 * serve: the gateway's own database, created on first start and migrated.
 * existing: for commands next to a gateway (`links`, `rooms`...): the running gateway's embedded server
 * when there is one for this data directory, never a new empty cluster, and no migration.
 * shared: for commands that write beside a gateway that may or may not run (`import`): the running
 * gateway's embedded server when there is one, else the gateway's own database as `serve` opens it.
 */
type OpenMode = "serve" | "existing" | "shared";

async function open(config: GatewayConfig, log: Logger, mode: OpenMode = "serve"): Promise<{ database: Database; applied: string[] }> {
  let url = config.databaseUrl;
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url && mode !== "serve") {
    const { hasCluster, runningEmbeddedUrl } = await import("./embedded-postgres.js");
    url = (await runningEmbeddedUrl(config.dataDir)) ?? undefined;
    if (!url && mode === "existing" && !(await hasCluster(config.dataDir))) {
      throw new DatabaseError(
        `no gateway database in ${resolve(config.dataDir)} (DMUC_DATA_DIR holds no PostgreSQL cluster): point DMUC_DATA_DIR at the gateway's data directory, or set DATABASE_URL`,
      );
    }
  }
  if (!url) {
    // Loaded only when needed: the module brings in the embedded-postgres package and its binaries.
    const { startEmbeddedPostgres } = await import("./embedded-postgres.js");
    let embedded;
    try {
      embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.dbPort, log });
    } catch (err) {
      throw new DatabaseError(`cannot start the embedded PostgreSQL: ${causeOf(err)}`, { cause: err });
    }
    url = embedded.url;
    stopEmbedded = embedded.stop;
  }
  const connectUrl = url;
  const where = describeDatabaseUrl(url);
  const dataSource = createDataSource(url);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const wasOpen = dataSource.isInitialized;
      try {
        if (wasOpen) await dataSource.destroy();
      } finally {
        await stopEmbedded?.();
      }
      if (wasOpen) log.info("db.closed", { database: where });
    })();
    return closing;
  };

  try {
    const t0 = performance.now();
    try {
      await dataSource.initialize();
    } catch (err) {
      throw new DatabaseError(`cannot connect to PostgreSQL at ${where}: ${causeOf(err)}`, { cause: err });
    }
    log.info("db.connected", { database: where, embedded: stopEmbedded !== undefined, ms: Math.round(performance.now() - t0) });
    if (mode === "existing") {
      const [found] = (await dataSource.query(`SELECT to_regclass($1) AS t`, [MIGRATIONS_TABLE])) as { t: string | null }[];
      if (!found?.t) throw new DatabaseError(`the database at ${where} holds no gateway tables: is it the gateway's database (DATABASE_URL)?`);
      return { database: { dataSource, url: connectUrl, embedded: stopEmbedded !== undefined, close }, applied: [] };
    }
    const applied = await migrate(dataSource, log);
    return { database: { dataSource, url: connectUrl, embedded: stopEmbedded !== undefined, close }, applied };
  } catch (err) {
    await close().catch((closeErr: unknown) => log.warn("db.close_failed", { error: causeOf(closeErr) }));
    throw err;
  }
}

/** Connects (starting the embedded server when no DATABASE_URL is configured) and applies pending migrations. */
export async function openDatabase(config: GatewayConfig, log: Logger): Promise<Database> {
  return (await open(config, log)).database;
}

/** The `migrate` command: opens the database, applies pending migrations, closes. Returns the names applied. */
export async function runMigrationsOnly(config: GatewayConfig, log: Logger): Promise<string[]> {
  const { database, applied } = await open(config, log);
  await database.close();
  return applied;
}

/**
 * For commands that read the database next to a running gateway (`links`): the running gateway's
 * embedded server when there is one for this data directory, else the data directory's cluster if it
 * has one; never a new empty database.
 */
export async function openExistingDatabase(config: GatewayConfig, log: Logger): Promise<Database> {
  return (await open(config, log, "existing")).database;
}

/** For `import`: the running gateway's database when one runs, else the gateway's own (created and migrated). */
export async function openSharedDatabase(config: GatewayConfig, log: Logger): Promise<Database> {
  return (await open(config, log, "shared")).database;
}
