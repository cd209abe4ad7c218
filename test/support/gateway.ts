// The gateway as a black box: the built program (dist/src/main.js) in a child process, configured only
// through its environment, observed only through its log (one JSON object per line on stderr, with an
// `event` field) and through XMPP. startStack() wires it to a test Prosody and a test database.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { killSync, removeDirSync, track } from "./cleanup.js";
import { connectClient, type TestClient } from "./client.js";
import { LineLog, type WaitForLogOptions } from "./logs.js";
import { startTestDatabase, type TestDatabase } from "./postgres.js";
import { randomSecret, startProsody, type ProsodyOptions, type ProsodyServer } from "./prosody.js";

/** dist/test/support/gateway.js -> dist/src/main.js */
export const GATEWAY_MAIN = fileURLToPath(new URL("../../src/main.js", import.meta.url));
const STOP_GRACE_MS = 10_000;
const CONNECT_TIMEOUT_MS = 30_000;

export type Env = Record<string, string | undefined>;

export interface GatewayProcessOptions {
  /** Merged onto the inherited environment; undefined removes a variable. */
  env: Env;
  /** Arguments after the script. Default ["start"]. */
  args?: string[];
  /** Script to run instead of the built gateway (the support self-test runs a stand-in). */
  entry?: string;
  /** An executable to run as it is (an installed `dmuc-gateway` bin), instead of node with `entry`. */
  executable?: string;
}

/** One parsed log line of the gateway. */
export interface GatewayLogEvent {
  time?: string;
  level?: string;
  event: string;
  [field: string]: unknown;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GatewayProcess {
  readonly pid: number;
  /** Temp dir with gateway.log (stdout and stderr as they came), and data/ unless DMUC_DATA_DIR is given. */
  readonly dir: string;
  readonly logFile: string;
  /** Resolves once the process has exited and all its output is read. */
  readonly exited: Promise<ExitStatus>;
  /** Waits for the exit (the process is unref'd: this keeps the event loop alive meanwhile); rejects after `timeoutMs`. */
  waitForExit(timeoutMs?: number): Promise<ExitStatus>;
  /** The first stderr line (from `from` on) that matches. Rejects early if the process exits. */
  waitForLog(regex: RegExp, timeoutMs?: number, options?: WaitForLogOptions): Promise<RegExpExecArray>;
  /** The first JSON log line with this `event` (and matching `predicate`). */
  waitForEvent(event: string, predicate?: (e: GatewayLogEvent) => boolean, timeoutMs?: number, options?: WaitForLogOptions): Promise<GatewayLogEvent>;
  /** Every JSON log line so far (non-JSON lines are skipped). */
  events(): GatewayLogEvent[];
  /** Line index for `from`: wait only for what is logged after this call. */
  logMark(): number;
  readLog(): string;
  readStdout(): string;
  /** Sends `signal` (SIGKILL after a grace period), waits for the exit, removes the dir; resolves with the exit code (null if killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** stop("SIGKILL"): a crash. */
  kill(): Promise<number | null>;
}

function parseEvent(line: string): GatewayLogEvent | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(line) as unknown;
    return value && typeof value === "object" && typeof (value as GatewayLogEvent).event === "string" ? (value as GatewayLogEvent) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The environment of a gateway under test: the inherited one without DATABASE_URL and DMUC_* (a
 * developer's own settings must not leak into tests), then `env`.
 */
function childEnv(env: Env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key !== "DATABASE_URL" && !key.startsWith("DMUC_")) out[key] = value;
  }
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete out[key];
    else out[key] = value;
  }
  return out;
}

export async function startGatewayProcess(options: GatewayProcessOptions): Promise<GatewayProcess> {
  const entry = options.executable ?? options.entry ?? GATEWAY_MAIN;
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: build first (npx tsc -p .)`);
  const dir = await mkdtemp(join(tmpdir(), "dmuc-gateway-"));
  const env = childEnv({ DMUC_LOG_FORMAT: "json", ...options.env });
  if (!("DMUC_DATA_DIR" in options.env)) env.DMUC_DATA_DIR = join(dir, "data");
  const logFile = join(dir, "gateway.log");
  const file = createWriteStream(logFile);

  const args = options.args ?? ["start"];
  const child = spawn(options.executable ?? process.execPath, options.executable ? args : ["--enable-source-maps", entry, ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  }).catch((err: unknown) => {
    file.end();
    removeDirSync(dir, "gateway");
    throw err;
  });
  const pid = child.pid!;

  let status: ExitStatus | undefined;
  const stderr = new LineLog(`the gateway's stderr (${logFile})`, undefined, () =>
    status ? `the gateway exited (code ${status.code}, signal ${status.signal})` : undefined,
  );
  const stdout = new LineLog("the gateway's stdout");
  const exited = new Promise<ExitStatus>((resolve) => {
    // 'close', not 'exit': only then is every line it wrote in our buffers
    child.once("close", (code, signal) => {
      stdout.end();
      stderr.end();
      file.end();
      status = { code, signal };
      resolve(status);
    });
  });
  for (const [stream, log] of [[child.stdout, stdout], [child.stderr, stderr]] as [Readable, LineLog][]) {
    stream.on("data", (chunk: Buffer) => {
      log.push(chunk);
      file.write(chunk);
    });
  }
  // A test that forgets stop() must not hang the run; cleanup.ts stops the process at exit.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref(): void }).unref();
  const untrack = track({
    describe: () => `gateway pid ${pid} (${dir})`,
    stopSync: () => {
      killSync(pid, "SIGTERM", STOP_GRACE_MS);
      removeDirSync(dir, "gateway");
    },
    warnIfLeaked: true,
  });

  let stopping: Promise<number | null> | undefined;
  const stop = (signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> =>
    (stopping ??= (async () => {
      if (!status) child.kill(signal);
      // This timer also keeps the event loop alive while we wait for the unref()'d child.
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      const { code } = await exited;
      clearTimeout(timer);
      untrack();
      removeDirSync(dir, "gateway");
      return code;
    })());

  return {
    pid,
    dir,
    logFile,
    exited,
    waitForExit: async (timeoutMs = 30_000) => {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the gateway did not exit within ${timeoutMs} ms`)), timeoutMs)));
      try {
        return await Promise.race([exited, limit]);
      } finally {
        clearTimeout(timer);
      }
    },
    waitForLog: (regex, timeoutMs = 10_000, opts) => stderr.waitFor(regex, timeoutMs, opts),
    waitForEvent: (event, predicate = () => true, timeoutMs = 10_000, opts) =>
      stderr.waitForLine(
        (line) => {
          const e = parseEvent(line);
          return e && e.event === event && predicate(e) ? e : undefined;
        },
        `event ${event}`,
        timeoutMs,
        opts,
      ),
    events: () => stderr.lines.map(parseEvent).filter((e): e is GatewayLogEvent => e !== undefined),
    logMark: () => stderr.mark(),
    readLog: () => stderr.text(),
    readStdout: () => stdout.text(),
    stop,
    kill: () => stop("SIGKILL"),
  };
}

// ---------------------------------------------------------------------------------------------------
// The whole stack

export interface StackOptions {
  /** The MUC service's domain. Default "conference.localhost". */
  domain?: string;
  /** DMUC_ADMINS (bare JIDs). */
  admins?: string[];
  /** More gateway environment (overrides the defaults below). */
  env?: Env;
  /** Prosody options other than the component (host defaults to "localhost"). */
  prosody?: Omit<ProsodyOptions, "components">;
  /** Prosody's validate_from_addresses for the component. */
  validateFromAddresses?: boolean;
  /** Script to run instead of the built gateway (see GatewayProcessOptions.entry). */
  entry?: string;
  /** Puts something between Prosody's component port and the gateway: returns the service the gateway dials. */
  componentVia?: (prosody: ProsodyServer) => Promise<string>;
}

export interface Stack {
  readonly prosody: ProsodyServer;
  readonly db: TestDatabase;
  /** The current gateway process (replaced by restartGateway()). */
  readonly gateway: GatewayProcess;
  /** The gateway's environment. */
  readonly env: Env;
  readonly domain: string;
  /** A user of Prosody's host, stopped with the stack. */
  connect(username: string, resource?: string): Promise<TestClient>;
  /** Waits until Prosody says the component authenticated (after the mark `from`). */
  waitForComponent(from?: number): Promise<void>;
  /** Stops the gateway, starts a new one on the same database and data dir, waits until it is connected. */
  restartGateway(): Promise<GatewayProcess>;
  /** Clients, gateway, Prosody, database, in that order. Idempotent. */
  stop(): Promise<void>;
}

const AUTHENTICATED = /External component successfully authenticated/;

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const domain = options.domain ?? "conference.localhost";
  const secret = randomSecret();
  const clients: TestClient[] = [];
  let prosody: ProsodyServer | undefined;
  let db: TestDatabase | undefined;
  let gateway: GatewayProcess | undefined;
  let dataDir: string | undefined;

  const stopAll = async (): Promise<void> => {
    const steps: (() => Promise<unknown>)[] = [
      ...clients.splice(0).map((c) => () => c.stop()),
      () => gateway?.stop() ?? Promise.resolve(),
      () => prosody?.stop() ?? Promise.resolve(),
      () => db?.stop() ?? Promise.resolve(),
    ];
    const errors: unknown[] = [];
    for (const step of steps) await step().catch((err: unknown) => errors.push(err));
    if (dataDir) removeDirSync(dataDir, "gateway data");
    dataDir = undefined;
    if (errors.length > 0) throw new AggregateError(errors, "stopping the test stack failed");
  };

  const launchGateway = async (env: Env): Promise<GatewayProcess> => {
    const from = prosody!.logMark();
    const started = await startGatewayProcess({ env, ...(options.entry ? { entry: options.entry } : {}) });
    gateway = started;
    await waitForComponent(started, from);
    return started;
  };

  // Waits for Prosody's word, not the gateway's: what counts is that the server accepted the component.
  const waitForComponent = async (gw: GatewayProcess, from: number): Promise<void> => {
    const gaveUp = new AbortController();
    void gw.exited.then(() => gaveUp.abort());
    try {
      await prosody!.waitForLog(AUTHENTICATED, CONNECT_TIMEOUT_MS, { from, signal: gaveUp.signal });
    } catch (err) {
      throw new Error(`the gateway did not connect to Prosody: ${(err as Error).message}\n-- the gateway's log:\n${gw.readLog().split("\n").slice(-40).join("\n")}`);
    } finally {
      gaveUp.abort(); // lets the exit watcher go
    }
  };

  try {
    prosody = await startProsody({
      ...options.prosody,
      components: [{ domain, secret, ...(options.validateFromAddresses === undefined ? {} : { validateFromAddresses: options.validateFromAddresses }) }],
    });
    db = await startTestDatabase();
    dataDir = await mkdtemp(join(tmpdir(), "dmuc-stack-data-"));
    const env: Env = {
      DMUC_XMPP_SERVICE: options.componentVia ? await options.componentVia(prosody) : prosody.componentService,
      DMUC_DOMAIN: domain,
      DMUC_SECRET: secret,
      DMUC_ADMINS: (options.admins ?? []).join(","),
      DATABASE_URL: db.url,
      DMUC_DATA_DIR: dataDir,
      DMUC_LOG_LEVEL: "debug",
      ...options.env,
    };
    await launchGateway(env);
    const server = prosody;
    const database = db;
    return {
      prosody: server,
      db: database,
      get gateway() {
        return gateway!;
      },
      env,
      domain,
      async connect(username, resource) {
        const c = await connectClient({ service: server.c2sService, domain: server.host, username, ...(resource ? { resource } : {}) });
        clients.push(c);
        return c;
      },
      waitForComponent: (from = 0) => waitForComponent(gateway!, from),
      async restartGateway() {
        await gateway?.stop();
        return launchGateway(env);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}
