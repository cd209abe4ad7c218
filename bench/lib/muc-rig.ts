// The rig of benchmarks 1 and 3: ONE Prosody that serves two MUC domains side by side,
//   dmuc.localhost  our gateway (dist/src/main.js) as an XEP-0114 component, with its PostgreSQL
//   pmuc.localhost  Prosody's own mod_muc (Component "pmuc.localhost" "muc")
// and a crowd of real @xmpp/client users, each in one room of each service (bench@dmuc.localhost and
// bench@pmuc.localhost). Same server, same clients, same process settings: only the MUC differs.
// Domains of equal length, so that stanzas are the same size on both paths.
//
// Growing the rooms costs N^2/2 presence deliveries per room (every newcomer sees everyone and is
// seen by everyone), so the rig grows them once (10 -> 100 -> 1000) and benchmarks 1 and 3 share it
// when they run in one process (bench/run.ts keeps it between them, then releases it).
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { client as xmppClient, type Client } from "@xmpp/client";
import xml, { type Element } from "@xmpp/xml";
import { startGatewayProcess, type GatewayProcess } from "../../test/support/gateway.js";
import { startTestDatabase, type TestDatabase } from "../../test/support/postgres.js";
import { startProsody, type ProsodyServer } from "../../test/support/prosody.js";
import { PROJECT_MODULES_DIR } from "../../test/support/federation.js";

export const NS_MUC = "http://jabber.org/protocol/muc";
export const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
const NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner";

export type Side = "ours" | "prosody";
export const SIDES: readonly Side[] = ["ours", "prosody"];

export const HISTORY = 50;
const CONNECT_BATCH = 50;
const JOIN_BATCH = 25;
const TIMEOUT_MS = 60_000;

/** A logged-in user with no inbox: a benchmark sets `listener`; `expect` waits for one stanza. */
export class BenchClient {
  /** Gets every stanza that no expect() took. */
  listener: ((el: Element) => void) | undefined;
  private readonly waiters: { test: (el: Element) => boolean; done: (el: Element) => void }[] = [];

  constructor(
    readonly raw: Client,
    readonly jid: string,
    readonly nick: string,
  ) {
    raw.on("stanza", (el: Element) => {
      for (let i = 0; i < this.waiters.length; i++) {
        const w = this.waiters[i]!;
        if (w.test(el)) {
          this.waiters.splice(i, 1);
          return w.done(el);
        }
      }
      this.listener?.(el);
    });
  }

  /** Registers a waiter now (call before sending what it answers); resolves with the first match. */
  expect(test: (el: Element) => boolean, what: string, timeoutMs = TIMEOUT_MS): Promise<Element> {
    return new Promise((resolve, reject) => {
      const waiter = {
        test,
        done: (el: Element) => {
          clearTimeout(timer);
          resolve(el);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`${this.jid}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  send(el: Element): Promise<void> {
    return this.raw.send(el);
  }

  /** Drops the connection without a goodbye (the rig stops Prosody first). */
  destroy(): void {
    this.raw.removeAllListeners("stanza");
    (this.raw.socket as { destroy?: () => void } | null | undefined)?.destroy?.();
  }
}

export const isSelfPresence = (room: string, nick: string) => (el: Element): boolean =>
  el.name === "presence" &&
  el.attrs.from === `${room}/${nick}` &&
  el.attrs.type !== "error" &&
  !!el.getChild("x", NS_MUC_USER)?.getChildren("status").some((s) => s.attrs.code === "110");

const isError = (room: string) => (el: Element): boolean => el.attrs.type === "error" && (el.attrs.from ?? "").startsWith(room);

/** CPU seconds (user + system) a process has used so far, from /proc. */
function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15) in clock ticks
  } catch {
    return NaN;
  }
}

export interface CpuSnapshot {
  at: number;
  prosody: number;
  gateway: number;
  bench: number;
}

export interface MucRig {
  readonly prosody: ProsodyServer;
  readonly gateway: GatewayProcess;
  /** Room JID per side. */
  readonly rooms: Record<Side, string>;
  /** Users in both rooms; occupants[0] created (and owns) both rooms. */
  readonly occupants: BenchClient[];
  /** Messages posted to each room so far (its history holds the last HISTORY of them). */
  readonly posted: Record<Side, number>;
  /** Adds users until `n` are in both rooms. */
  grow(n: number): Promise<void>;
  /** A user who is in no room yet (stopped with the rig). */
  connect(username: string): Promise<BenchClient>;
  cpu(): CpuSnapshot;
  stop(): Promise<void>;
}

export async function connectBenchClient(service: string, username: string): Promise<BenchClient> {
  const raw = xmppClient({ service, domain: "localhost", resource: "bench", credentials: (auth) => auth({ username, password: "password" }) });
  raw.reconnect.stop();
  raw.on("error", () => undefined); // an 'error' without a listener would crash the run
  let timer: NodeJS.Timeout | undefined;
  try {
    const jid = await Promise.race([
      raw.start(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${username}: no login within ${TIMEOUT_MS} ms`)), TIMEOUT_MS))),
    ]);
    return new BenchClient(raw, jid.toString(), username);
  } catch (err) {
    (raw.socket as { destroy?: () => void } | undefined)?.destroy?.();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export const joinPresence = (room: string, nick: string, maxStanzas?: number): Element =>
  xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: NS_MUC }, maxStanzas === undefined ? null : xml("history", { maxstanzas: String(maxStanzas) })));

export interface RigOptions {
  log(message: string): void;
  /** Gateway environment over the rig's (e.g. the flood benchmark puts the flood limits back to their defaults). */
  gatewayEnv?: Record<string, string | undefined>;
}

export async function startMucRig(options: RigOptions): Promise<MucRig> {
  const secret = randomBytes(12).toString("hex");
  const occupants: BenchClient[] = [];
  const extras: BenchClient[] = [];
  let prosody: ProsodyServer | undefined;
  let db: TestDatabase | undefined;
  let gateway: GatewayProcess | undefined;

  // Servers first: users leaving one by one would cost N^2/2 presence broadcasts per room (minutes at
  // 1000 occupants, longer than the gateway's stop grace); with Prosody gone their sockets just close.
  const stop = async (): Promise<void> => {
    const all = [...occupants.splice(0), ...extras.splice(0)];
    const errors: unknown[] = [];
    const closeClients = async () => {
      for (const c of all) c.destroy();
    };
    for (const step of [() => gateway?.stop(), () => prosody?.stop(), closeClients, () => db?.stop()]) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "stopping the MUC rig failed");
  };

  try {
    // BENCH_MULTICAST=1: the server runs plugins/prosody/mod_dmuc_multicast.lua for our component, and the
    // gateway (which discovers it) hands it one stanza per broadcast variant (issue 14).
    const multicast = process.env.BENCH_MULTICAST === "1";
    prosody = await startProsody({
      components: [{ domain: "dmuc.localhost", secret }],
      ...(multicast ? { pluginPaths: [PROJECT_MODULES_DIR], extraModules: ["dmuc_multicast"] } : {}),
      extraConfig: [
        ...(multicast ? ['dmuc_multicast_component = "dmuc.localhost"'] : []),
        // Prosody's default is 256 KB/s per c2s connection; the sender of benchmark 1 needs more
        // (mod_limits is not loaded by the test config, this is belt and braces).
        "limits = { c2s = { rate = \"100mb/s\" } }",
        // Prosody leaves Nagle's algorithm on by default; it delays what Prosody writes to the component
        // (one stanza per write) by up to ~40 ms a message, while mod_muc hardly notices (bench/RESULTS.md).
        "network_settings = { nagle = false }",
        // BENCH_PROSODY_EXTRA: more global Lua for experiments (a later assignment wins)
        ...(process.env.BENCH_PROSODY_EXTRA ? [process.env.BENCH_PROSODY_EXTRA] : []),
        // /work/shared/notes/postgres-and-speed.md: 1.5-2x the delivery rate of the default GC.
        'gc = { mode = "generational" }',
        // The test config logs at debug level, every stanza: a benchmark would measure the logging.
        // Relative to Prosody's working directory, i.e. the same file test/support/prosody.ts reads.
        'log = { { levels = { min = "info" }, to = "file", filename = "prosody.log" } }',
        'Component "pmuc.localhost" "muc"',
        `\tmuc_room_default_history_length = ${HISTORY}`,
        `\tmax_history_messages = ${HISTORY}`,
      ].join("\n"),
    });
    db = await startTestDatabase();
    const mark = prosody.logMark();
    gateway = await startGatewayProcess({
      env: {
        DMUC_XMPP_SERVICE: prosody.componentService,
        DMUC_DOMAIN: "dmuc.localhost",
        DMUC_SECRET: secret,
        DATABASE_URL: db.url,
        DMUC_LOG_LEVEL: "info",
        // Prosody's mod_muc has no per-occupant flood limit (that is the community mod_muc_limits):
        // switch ours off too, or the sender of benchmark 1 gets policy-violation errors.
        DMUC_RATE_LIMIT: "1000000",
        DMUC_RATE_BURST: "1000000",
        DMUC_MAX_HISTORY_MESSAGES: String(HISTORY),
        // BENCH_PROFILE_DIR=/some/dir: a CPU profile of the gateway (see bench/lib/cpu-profile.ts)
        // BENCH_GATEWAY_NODE_OPTIONS: more Node options for the gateway only (experiments)
        NODE_OPTIONS:
          [process.env.BENCH_PROFILE_DIR ? `--import ${new URL("./cpu-profile.js", import.meta.url).href}` : "", process.env.BENCH_GATEWAY_NODE_OPTIONS ?? ""]
            .filter(Boolean)
            .join(" ") || undefined,
        BENCH_PROFILE_DIR: process.env.BENCH_PROFILE_DIR,
        ...options.gatewayEnv,
      },
    });
    const gaveUp = new AbortController();
    void gateway.exited.then(() => gaveUp.abort());
    try {
      await prosody.waitForLog(/External component successfully authenticated/, 60_000, { from: mark, signal: gaveUp.signal });
    } catch (err) {
      throw new Error(`the gateway did not connect: ${(err as Error).message}\n-- its log:\n${gateway.readLog().split("\n").slice(-30).join("\n")}`);
    } finally {
      gaveUp.abort();
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  const server = prosody;
  const rooms: Record<Side, string> = { ours: "bench@dmuc.localhost", prosody: "bench@pmuc.localhost" };
  const posted: Record<Side, number> = { ours: 0, prosody: 0 };

  const connectMany = async (usernames: string[]): Promise<BenchClient[]> => {
    const out: BenchClient[] = [];
    for (let i = 0; i < usernames.length; i += CONNECT_BATCH) {
      out.push(...(await Promise.all(usernames.slice(i, i + CONNECT_BATCH).map((u) => connectBenchClient(server.c2sService, u)))));
    }
    return out;
  };

  const join = async (c: BenchClient, room: string): Promise<void> => {
    const self = isSelfPresence(room, c.nick);
    const error = isError(room);
    const answer = c.expect((el) => self(el) || error(el), `self-presence from ${room}`);
    await c.send(joinPresence(room, c.nick, 0));
    const first = await answer;
    if (first.attrs.type === "error") throw new Error(`${c.nick} could not join ${room}: ${first.toString()}`);
  };

  const createRooms = async (owner: BenchClient): Promise<void> => {
    for (const side of SIDES) {
      await join(owner, rooms[side]);
      // Both services lock a new room until its owner submits a configuration (XEP-0045 §10.1.2).
      await owner.raw.iqCaller.request(
        xml(
          "iq",
          { type: "set", to: rooms[side] },
          xml(
            "query",
            { xmlns: NS_MUC_OWNER },
            xml(
              "x",
              { xmlns: "jabber:x:data", type: "submit" },
              xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
              // both services default to 20
              xml("field", { var: "muc#roomconfig_historylength" }, xml("value", {}, String(HISTORY))),
            ),
          ),
        ),
        TIMEOUT_MS,
      );
    }
  };

  const rig: MucRig = {
    prosody: server,
    gateway: gateway!,
    rooms,
    occupants,
    posted,
    async grow(n) {
      if (occupants.length >= n) return;
      const started = Date.now();
      const from = occupants.length;
      const fresh = await connectMany(Array.from({ length: n - from }, (_, i) => `u${from + i}`));
      options.log(`  ${fresh.length} users logged in (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      const joinStarted = Date.now();
      if (occupants.length === 0) {
        const owner = fresh.shift()!;
        await createRooms(owner);
        occupants.push(owner);
      }
      // Batches join together; each user enters our room, then Prosody's.
      for (let i = 0; i < fresh.length; i += JOIN_BATCH) {
        const batch = fresh.slice(i, i + JOIN_BATCH);
        try {
          await Promise.all(batch.map(async (c) => {
            for (const side of SIDES) await join(c, rooms[side]);
          }));
        } catch (err) {
          const tail = gateway!.readLog().split("\n").filter((l) => !l.includes('"level":"debug"')).slice(-10).join("\n");
          throw new Error(`${(err as Error).message}\n-- the gateway's log (last lines):\n${tail}`, { cause: err });
        }
        occupants.push(...batch);
        if (occupants.length % 200 < JOIN_BATCH && occupants.length < n) options.log(`  ${occupants.length} occupants so far (${((Date.now() - joinStarted) / 1000).toFixed(0)} s)`);
      }
      options.log(`  ${occupants.length} occupants in both rooms (joins took ${((Date.now() - joinStarted) / 1000).toFixed(1)} s)`);
    },
    async connect(username) {
      const c = await connectBenchClient(server.c2sService, username);
      extras.push(c);
      return c;
    },
    cpu: () => ({ at: performance.now(), prosody: processCpuSeconds(server.pid), gateway: processCpuSeconds(gateway?.pid), bench: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 }),
    stop,
  };
  return rig;
}

/** CPU use between two snapshots, in percent of one core. */
export function cpuPercent(a: CpuSnapshot, b: CpuSnapshot): { prosody: number; gateway: number; bench: number } {
  const seconds = (b.at - a.at) / 1000;
  const pct = (x: number, y: number) => (seconds > 0 ? ((y - x) / seconds) * 100 : NaN);
  return { prosody: pct(a.prosody, b.prosody), gateway: pct(a.gateway, b.gateway), bench: pct(a.bench, b.bench) };
}

// ---------------------------------------------------------------------------------------------------
// One rig shared by the benchmarks of one run (bench/run.ts releases it)

let shared: Promise<MucRig> | undefined;

export function sharedMucRig(options: RigOptions): Promise<MucRig> {
  shared ??= startMucRig(options);
  shared.catch(() => (shared = undefined));
  return shared;
}

export async function releaseSharedMucRig(): Promise<void> {
  const rig = shared;
  shared = undefined;
  if (rig) await (await rig.catch(() => undefined))?.stop();
}
