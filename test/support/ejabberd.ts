// A throw-away ejabberd (the Debian package) for tests: own temp dir owned by user ejabberd, random
// loopback ports (c2s, one component, Erlang distribution), no epmd; the given users are registered with
// the password "password" (kept in its spool across restarts). /work/shared/notes/xmpp-servers.md has
// the facts this relies on.
import { spawn, type ChildProcess } from "node:child_process";
import { chownSync, closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { removeDirSync, track } from "./cleanup.js";
import { freePorts } from "./ports.js";

const EJABBERDCTL = process.env.EJABBERDCTL_BIN ?? "ejabberdctl";
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 15_000;

export interface EjabberdOptions {
  /** The virtual host users log in to. Default "localhost". */
  host?: string;
  components: { domain: string; secret: string }[];
  /** Users to register (password "password"). */
  users?: string[];
}

export interface EjabberdServer {
  readonly host: string;
  readonly dir: string;
  /** xmpp://127.0.0.1:c2sPort, for connectClient(). */
  readonly c2sService: string;
  /** xmpp://127.0.0.1:componentPort (DMUC_XMPP_SERVICE). */
  readonly componentService: string;
  readLog(): string;
  /** Stops and starts it again on the same ports and spool; `crash`: SIGKILL, so that it announces nothing. */
  restart(options?: { crash?: boolean }): Promise<void>;
  /** Stops it and removes its directory (unless KEEP_TEST_DIRS). Idempotent. */
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * The processes of this server: ejabberdctl's process group, and the Erlang VM that su starts in a
 * session of its own, found by its node name (unique: it contains the distribution port we chose).
 */
function serverPids(pgid: number | undefined, node: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const group = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (cmdline.split("\0").includes(node) || (pgid !== undefined && group === pgid)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone meanwhile
    }
  }
}

function ejabberdUid(): { uid: number; gid: number } {
  const [uid, gid] = ["-u", "-g"].map((flag) => Number(execFileSync("id", [flag, "ejabberd"], { encoding: "utf8" }).trim()));
  return { uid: uid!, gid: gid! };
}

export async function startEjabberd(options: EjabberdOptions): Promise<EjabberdServer> {
  const host = options.host ?? "localhost";
  const dir = await mkdtemp(join(tmpdir(), "dmuc-ejabberd-"));
  const [c2s, component, dist] = await freePorts(3);
  await mkdir(join(dir, "logs"));
  await mkdir(join(dir, "spool"));
  const services = options.components
    .map((c) => `      ${c.domain}:\n        password: "${c.secret}"`)
    .join("\n");
  await writeFile(
    join(dir, "ejabberd.yml"),
    `hosts: ["${host}"]
loglevel: info
auth_method: [internal]
auth_password_format: plain
# PLAIN only: @xmpp/client's SCRAM does not get along with this ejabberd, and PLAIN is faster in tests.
disable_sasl_mechanisms: ["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-512-PLUS", "X-OAUTH2", "DIGEST-MD5"]
listen:
  - port: ${c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  - port: ${component}
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
${services}
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
`,
  );
  await writeFile(join(dir, "ejabberdctl.cfg"), `ERL_DIST_PORT=${dist}\nINET_DIST_INTERFACE=127.0.0.1\nERLANG_NODE=dmuc${dist}@127.0.0.1\n`);
  await writeFile(join(dir, "inetrc"), "");
  const { uid, gid } = ejabberdUid();
  for (const path of [dir, join(dir, "logs"), join(dir, "spool"), join(dir, "ejabberd.yml"), join(dir, "ejabberdctl.cfg"), join(dir, "inetrc")]) chownSync(path, uid, gid);

  let child: ChildProcess | undefined;
  let untrack: (() => void) | undefined;
  let stopped = false;

  const node = `dmuc${dist}@127.0.0.1`;
  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const pgid = child?.pid;
    // SIGTERM to the VM stops it cleanly (init:stop); SIGKILL to everything is a crash.
    signalAll(serverPids(pgid, node), signal);
    const deadline = Date.now() + STOP_GRACE_MS;
    for (let pids = serverPids(pgid, node); pids.length > 0; pids = serverPids(pgid, node)) {
      if (Date.now() > deadline) signalAll(pids, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    untrack?.();
    untrack = undefined;
    child = undefined;
  };

  const launch = async (): Promise<void> => {
    const out = openSync(join(dir, "ejabberd.out"), "a");
    try {
      // Its own process group: ejabberdctl runs the Erlang VM through su, and a crash must kill all of it.
      child = spawn(
        EJABBERDCTL,
        ["--config-dir", dir, "--config", join(dir, "ejabberd.yml"), "--ctl-config", join(dir, "ejabberdctl.cfg"), "--logs", join(dir, "logs"), "--spool", join(dir, "spool"), "foreground"],
        { cwd: dir, stdio: ["ignore", out, out], detached: true },
      );
    } finally {
      closeSync(out);
    }
    child.on("error", () => undefined);
    child.unref();
    const pgid = child.pid!;
    untrack = track({
      describe: () => `ejabberd ${dir} (process group ${pgid})`,
      stopSync: () => {
        signalAll(serverPids(pgid, node), "SIGKILL");
        removeDirSync(dir, "ejabberd");
      },
      warnIfLeaked: true,
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!((await canConnect(c2s!)) && (await canConnect(component!)))) {
      if (Date.now() > deadline || serverPids(pgid, node).length === 0) {
        await terminate("SIGKILL");
        throw new Error(`ejabberd did not start:\n${readLog().split("\n").slice(-20).join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  const readLog = (): string => {
    try {
      return readFileSync(join(dir, "logs", "ejabberd.log"), "utf8");
    } catch {
      return readFileSync(join(dir, "ejabberd.out"), "utf8");
    }
  };

  await launch();
  const ctlArgs = ["--config-dir", dir, "--config", join(dir, "ejabberd.yml"), "--ctl-config", join(dir, "ejabberdctl.cfg"), "--logs", join(dir, "logs"), "--spool", join(dir, "spool")];
  try {
    for (const name of options.users ?? []) execFileSync(EJABBERDCTL, [...ctlArgs, "register", name, host, "password"], { cwd: dir, stdio: "pipe", timeout: 30_000 });
  } catch (err) {
    await terminate("SIGKILL");
    removeDirSync(dir, "ejabberd");
    throw err;
  }
  return {
    host,
    dir,
    c2sService: `xmpp://127.0.0.1:${c2s}`,
    componentService: `xmpp://127.0.0.1:${component}`,
    readLog,
    async restart(restartOptions = {}) {
      if (stopped) throw new Error("restart() after stop()");
      await terminate(restartOptions.crash ? "SIGKILL" : "SIGTERM");
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate("SIGTERM");
      removeDirSync(dir, "ejabberd");
    },
  };
}
