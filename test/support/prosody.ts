// A throw-away Prosody (the Debian package) for integration tests: own temp dir, own config, random
// loopback ports, any user/password logs in. Facts this relies on are in
// /work/shared/notes/xmpp-servers.md (measured on this machine).
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, renameSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killSync, removeDirSync, track } from "./cleanup.js";
import { LineLog, type WaitForLogOptions } from "./logs.js";
import { freePorts } from "./ports.js";

const PROSODY_BIN = process.env.PROSODY_BIN ?? "prosody";
const START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;

export interface ProsodyComponentOptions {
  domain: string;
  secret: string;
  /** false lets the component send from addresses outside its domain (DMUC2 replicas need it). */
  validateFromAddresses?: boolean;
}

export interface ProsodyOptions {
  /** The VirtualHost users log in to. Default "localhost". */
  host?: string;
  components?: ProsodyComponentOptions[];
  /** Added to the global modules_enabled. */
  extraModules?: string[];
  /** Directories Prosody loads modules from (our own Lua modules). */
  pluginPaths?: string[];
  /** Raw Lua appended to the global section. */
  extraConfig?: string;
  /** The address every port binds to. Default "127.0.0.1"; federation tests use 127.0.0.2, 127.0.0.3, ... */
  interface?: string;
  /** Server-to-server (plaintext dialback). Default false: mod_s2s is disabled. */
  s2s?: boolean;
  /** s2s port when s2s is on. Default 5269: without DNS, peers can only find the standard port. */
  s2sPort?: number;
  /** Prosody admins (bare JIDs). */
  admins?: string[];
}

export interface ProsodyServer {
  readonly host: string;
  readonly interface: string;
  readonly c2sPort: number;
  readonly componentPort: number;
  readonly s2sPort: number | undefined;
  /** xmpp://INTERFACE:c2sPort, for connectClient(). */
  readonly c2sService: string;
  /** xmpp://INTERFACE:componentPort, for a component (DMUC_XMPP_SERVICE). */
  readonly componentService: string;
  readonly dir: string;
  readonly configFile: string;
  /** The current run's log; restart() moves the previous one to prosody.log.1, .2, ... */
  readonly logFile: string;
  readonly pid: number | undefined;
  /** The first line of the current run's log (from `from` on) that matches. */
  waitForLog(regex: RegExp, timeoutMs?: number, options?: WaitForLogOptions): Promise<RegExpExecArray>;
  /** Line index for waitForLog's `from`: wait only for what is logged after this call. */
  logMark(): number;
  readLog(): string;
  /** Stops and starts Prosody again on the same ports and directory (in-memory state is lost). */
  /** `crash`: SIGKILL, so that the server tells nobody (users' rooms, components) that sessions ended. */
  restart(options?: { crash?: boolean }): Promise<void>;
  /** The first half of restart(): SIGTERM and wait for the exit, keeping ports and directory for start(). */
  shutdown(): Promise<void>;
  /** The second half of restart(): starts Prosody again after shutdown(), waits until its ports are open. */
  start(): Promise<void>;
  /** SIGSTOP (true) or SIGCONT (false) to the running process: a server that hangs, then goes on. */
  freeze(frozen: boolean): void;
  /** SIGTERM, SIGKILL after a grace period, then removes the directory (unless KEEP_TEST_DIRS). Idempotent. */
  stop(): Promise<void>;
}

class PortInUseError extends Error {}

/** A Lua string literal (test paths and secrets only: no control characters expected). */
function lua(value: string): string {
  if (/[\x00-\x1f]/.test(value)) throw new Error(`unexpected control character in Prosody config value ${JSON.stringify(value)}`);
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
const luaList = (values: readonly (string | number)[]): string =>
  `{ ${values.map((v) => (typeof v === "number" ? String(v) : lua(v))).join("; ")} }`;

interface Ports {
  c2s: number;
  component: number;
  s2s: number | undefined;
}

function renderConfig(dir: string, o: Required<Omit<ProsodyOptions, "s2sPort">>, ports: Ports): string {
  const modules = ["roster", "saslauth", "disco", "ping", "carbons", "private", "blocklist", "version", "time", "uptime", ...o.extraModules];
  if (o.s2s) modules.push("dialback");
  const lines = [
    "-- written by test/support/prosody.ts",
    "run_as_root = true", // else Prosody switches to user prosody, which cannot write our temp dir
    `pidfile = ${lua(join(dir, "prosody.pid"))}`,
    `data_path = ${lua(join(dir, "data"))}`,
    `certificates = ${lua(join(dir, "certs"))}`, // an existing (empty) dir silences the cert indexer
    `log = { { levels = { min = "debug" }, to = "file", filename = ${lua(join(dir, "prosody.log"))} } }`,
    `interfaces = ${luaList([o.interface])}`,
    `component_interfaces = ${luaList([o.interface])}`,
    `c2s_ports = ${luaList([ports.c2s])}`,
    `component_ports = ${luaList([ports.component])}`,
    `s2s_ports = ${luaList(ports.s2s === undefined ? [] : [ports.s2s])}`,
    // every other listener off, so a run binds nothing but the ports chosen above
    "http_ports = {}; https_ports = {}; c2s_direct_tls_ports = {}; s2s_direct_tls_ports = {}; legacy_ssl_ports = {}",
    `admins = ${luaList(o.admins)}`,
    `modules_enabled = ${luaList(modules)}`,
    // no offline storage: a message to an absent user bounces at once, which tests can observe
    `modules_disabled = ${luaList(o.s2s ? ["offline"] : ["offline", "s2s"])}`,
    "c2s_require_encryption = false", // no certificates
    "allow_unencrypted_plain_auth = true",
    // any user/password logs in; it also offers PLAIN only, which @xmpp/client 0.13 would otherwise not
    // pick (it prefers SCRAM-SHA-1: ~1.3 s per login in JS)
    'authentication = "insecure"',
    `insecure_open_authentication = "Yes please, I know what I'm doing!"`,
    'storage = "memory"',
  ];
  if (o.s2s) lines.push("s2s_require_encryption = false", "s2s_secure_auth = false");
  if (o.pluginPaths.length > 0) lines.push(`plugin_paths = ${luaList(o.pluginPaths)}`);
  if (o.extraConfig) lines.push(o.extraConfig);
  lines.push("", `VirtualHost ${lua(o.host)}`);
  for (const c of o.components) {
    lines.push("", `Component ${lua(c.domain)}`, `\tcomponent_secret = ${lua(c.secret)}`);
    if (c.validateFromAddresses === false) lines.push("\tvalidate_from_addresses = false");
  }
  return lines.join("\n") + "\n";
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

class ProsodyProcess implements ProsodyServer {
  readonly configFile: string;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private untrack: (() => void) | undefined;
  private log: LineLog;
  private runs = 0;
  private stopped = false;

  constructor(
    readonly dir: string,
    private readonly options: Required<Omit<ProsodyOptions, "s2sPort">>,
    private readonly ports: Ports,
  ) {
    this.configFile = join(dir, "prosody.cfg.lua");
    this.logFile = join(dir, "prosody.log");
    this.log = this.newLog();
  }

  get host(): string {
    return this.options.host;
  }
  get interface(): string {
    return this.options.interface;
  }
  get c2sPort(): number {
    return this.ports.c2s;
  }
  get componentPort(): number {
    return this.ports.component;
  }
  get s2sPort(): number | undefined {
    return this.ports.s2s;
  }
  get c2sService(): string {
    return `xmpp://${this.interface}:${this.c2sPort}`;
  }
  get componentService(): string {
    return `xmpp://${this.interface}:${this.componentPort}`;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private newLog(): LineLog {
    return new LineLog(`Prosody's log (${this.logFile})`, this.logFile, () => this.exitReason());
  }

  private exitReason(): string | undefined {
    const child = this.child;
    if (!child || (child.exitCode === null && child.signalCode === null)) return undefined;
    let output = "";
    try {
      output = readFileSync(join(this.dir, "prosody.out"), "utf8").trim().split("\n").slice(-15).join("\n");
    } catch {
      // no output file
    }
    return `Prosody exited (code ${child.exitCode}, signal ${child.signalCode}); its stdout/stderr:\n${output}\n--`;
  }

  waitForLog(regex: RegExp, timeoutMs = 10_000, options?: WaitForLogOptions): Promise<RegExpExecArray> {
    return this.log.waitFor(regex, timeoutMs, options);
  }
  logMark(): number {
    return this.log.mark();
  }
  readLog(): string {
    return this.log.text();
  }

  /** Writes the config, starts Prosody and waits until its ports are open. */
  async launch(): Promise<void> {
    this.runs++;
    if (existsSync(this.logFile)) renameSync(this.logFile, `${this.logFile}.${this.runs - 1}`);
    this.log = this.newLog();
    await writeFile(this.configFile, renderConfig(this.dir, this.options, this.ports));

    // Output to a file, not a pipe: nothing to drain, and nothing that keeps the test process alive.
    const out = openSync(join(this.dir, "prosody.out"), "a");
    let child: ChildProcess;
    try {
      child = spawn(PROSODY_BIN, ["-F", "--config", this.configFile], { cwd: this.dir, stdio: ["ignore", out, out] });
    } finally {
      closeSync(out);
    }
    this.child = child;
    child.on("error", () => undefined); // spawn failure shows as an exit (code null) below
    child.unref(); // a test that forgets stop() must not hang the run; cleanup.ts stops it at exit
    const pid = child.pid;
    this.untrack = track({
      describe: () => `Prosody ${this.dir} (pid ${pid})`,
      stopSync: () => {
        killSync(pid, "SIGTERM", STOP_GRACE_MS);
        removeDirSync(this.dir, "Prosody");
      },
      warnIfLeaked: true,
    });

    try {
      if (pid === undefined) throw new Error(`could not run ${PROSODY_BIN} (is the prosody package installed?)`);
      const services = ["c2s"];
      if (this.options.components.length > 0) services.push("component");
      if (this.ports.s2s !== undefined) services.push("s2s");
      // Prosody logs "Activated service" even when the bind failed (then "on no ports"), after the failure
      for (const service of services) await this.waitForLog(new RegExp(`Activated service '${service}'`), START_TIMEOUT_MS);
      const failed = this.log.lines.filter((l) => l.includes("Failed to open server port"));
      if (failed.length > 0) throw new PortInUseError(`Prosody could not open its ports:\n${failed.join("\n")}`);
      if (!(await canConnect(this.interface, this.c2sPort))) {
        throw new Error(`Prosody reported c2s active, yet ${this.c2sService} refuses connections`);
      }
    } catch (err) {
      await this.terminate();
      throw err;
    }
  }

  /** Stops the process (not the directory). */
  private async terminate(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGCONT"); // a frozen server would not act on SIGTERM until the grace period ends
      child.kill(signal);
      // This timer also keeps the event loop alive while we wait for the unref()'d child.
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    this.log.end();
    this.untrack?.();
    this.untrack = undefined;
  }

  async restart(options: { crash?: boolean } = {}): Promise<void> {
    await this.shutdown(options);
    await this.start();
  }

  async shutdown(options: { crash?: boolean } = {}): Promise<void> {
    if (this.stopped) throw new Error("shutdown() after stop()");
    await this.terminate(options.crash ? "SIGKILL" : "SIGTERM");
  }

  async start(): Promise<void> {
    if (this.stopped) throw new Error("start() after stop()");
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) throw new Error("start(): Prosody is running");
    await this.launch();
  }

  freeze(frozen: boolean): void {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) throw new Error(`freeze(${frozen}): Prosody is not running`);
    child.kill(frozen ? "SIGSTOP" : "SIGCONT");
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.terminate();
    this.child = undefined;
    removeDirSync(this.dir, "Prosody");
  }
}

/** A new component secret (random, so that a test cannot pass with a stale one). */
export const randomSecret = (): string => randomBytes(12).toString("hex");

export async function startProsody(options: ProsodyOptions = {}): Promise<ProsodyServer> {
  const o = {
    host: options.host ?? "localhost",
    components: options.components ?? [],
    extraModules: options.extraModules ?? [],
    pluginPaths: options.pluginPaths ?? [],
    extraConfig: options.extraConfig ?? "",
    interface: options.interface ?? "127.0.0.1",
    s2s: options.s2s ?? false,
    admins: options.admins ?? [],
  };
  const dir = await mkdtemp(join(tmpdir(), "dmuc-prosody-"));
  await mkdir(join(dir, "data"));
  await mkdir(join(dir, "certs"));
  // A free port can be taken between our probe and Prosody's bind: one retry with new ports.
  for (let attempt = 1; ; attempt++) {
    const [c2s, component] = (await freePorts(2, o.interface)) as [number, number];
    const ports = { c2s, component, s2s: o.s2s ? (options.s2sPort ?? 5269) : undefined };
    const server = new ProsodyProcess(dir, o, ports);
    try {
      await server.launch();
      return server;
    } catch (err) {
      if (err instanceof PortInUseError && attempt < 2 && ports.s2s === undefined) continue;
      removeDirSync(dir, "Prosody");
      throw err;
    }
  }
}
