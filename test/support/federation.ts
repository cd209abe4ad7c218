// Several federated Prosody servers on one machine, for DMUC2 (XEP-0282) tests: a room on one server,
// users on the others, optionally our gateway as a component on some of them.
//
// Each server `<name>` gets its own loopback address (127.A.B.2, .3, ... with A.B random per federation,
// so two federations, in one test process after another or in parallel processes, never share an
// address), the VirtualHost `<name>.test` and, with `gateway: true`, the component `dmuc.<name>.test`
// served by a gateway process with its own database. Servers talk plaintext s2s with dialback on the
// standard port 5269 of their address (without DNS a peer can only find the standard port); names are
// resolved by libunbound from a hosts file of the federation. Facts this relies on were measured on
// this machine: /work/shared/notes/xmpp-servers.md ("Several federated Prosody servers on one machine").
//
// Two fixture modules are loaded on every server (test/fixtures/prosody/): mod_s2s_counter counts what
// each server sends over s2s (s2sCounts()), mod_s2s_netsplit cuts a server off (stopS2s()/startS2s())
// or partitions it from some peers (partition()/unpartition()). The other faults (TCP resets, frozen,
// restarted or killed processes) act from outside; test/support/faults.ts names them all.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import xml, { type Element } from "@xmpp/xml";
import { removeDirSync, track } from "./cleanup.js";
import { connectClient, type TestClient } from "./client.js";
import { startGatewayProcess, type Env, type GatewayProcess } from "./gateway.js";
import { startTestDatabase, type TestDatabase } from "./postgres.js";
import { randomSecret, startProsody, type ProsodyServer } from "./prosody.js";

/** The project root (this file runs as dist/test/support/federation.js). */
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** Our test-only Prosody modules (Lua is not compiled: read from the source tree). */
export const FIXTURE_MODULES_DIR = join(ROOT, "test", "fixtures", "prosody");
/** The project's own Prosody modules (mod_dmuc_replica). */
export const PROJECT_MODULES_DIR = join(ROOT, "plugins", "prosody");
const DMUC_MODULE = "dmuc_replica";

export const NS_S2S_COUNTER = "urn:dmuc-gateway:test:s2s-counter";
export const NS_S2S_NETSPLIT = "urn:dmuc-gateway:test:s2s-netsplit";

const S2S_PORT = 5269;
// Generous: a gateway starting beside three others on a loaded machine can take well over 30 s.
const CONNECT_TIMEOUT_MS = 90_000;
const AUTHENTICATED = /External component successfully authenticated/;
/** The user the harness logs in as on each server to talk to the fixture modules. */
const PROBE_USER = "s2s-probe";

export interface FederationServerOptions {
  /** Lower-case DNS label: the server is `<name>.test`. */
  name: string;
  /** Run our gateway as component `dmuc.<name>.test` (own database). */
  gateway: boolean;
  /**
   * Load plugins/prosody/mod_dmuc_replica.lua on the VirtualHost, with `dmuc_replica` set to the
   * component when there is a gateway. Default: `gateway`. Skipped (with a line on stderr) while that
   * file does not exist.
   */
  dmucModule?: boolean;
  /** More gateway environment for this server (over FederationOptions.env). */
  env?: Env;
  /** Raw Lua appended to this server's global config section (e.g. options of mod_dmuc_replica). */
  prosodyConfig?: string;
  /**
   * A component of this server that the test drives itself (test/support/raw-component.ts), e.g. one
   * standing in for a hostile server; its domain resolves to this server like the others.
   */
  rawComponent?: { domain: string; secret: string };
}

export interface FederationOptions {
  servers: FederationServerOptions[];
  /** Bare JIDs: Prosody admins on every server and DMUC_ADMINS of every gateway. */
  admins?: string[];
  /** More environment for every gateway. */
  env?: Env;
  /** Script to run instead of the built gateway (as in startStack). */
  entry?: string;
}

export interface FederationServer {
  readonly name: string;
  /** `<name>.test`, the VirtualHost. */
  readonly domain: string;
  /** `dmuc.<name>.test` when the server has a gateway. */
  readonly componentDomain: string | undefined;
  /** The loopback address every port of this server binds to. */
  readonly address: string;
  readonly prosody: ProsodyServer;
  /** The current gateway process (replaced by restartGateway()); undefined without a gateway. */
  readonly gateway: GatewayProcess | undefined;
  readonly db: TestDatabase | undefined;
  /** The gateway's environment (undefined without a gateway). */
  readonly env: Env | undefined;
  /** Whether mod_dmuc_replica was loaded. */
  readonly dmucModule: boolean;
}

/** What one server sent over s2s to another (or a sum of such). */
export interface S2sCount {
  message: number;
  presence: number;
  iq: number;
  /** Any other stanza routed to s2s (not message/presence/iq, not dialback). */
  other: number;
  /** message + presence + iq + other. */
  stanzas: number;
  /** Dialback's db:verify (the receiving server asking the sender's server); not in `stanzas`. */
  dialback: number;
  /** Serialised size of everything counted, dialback included. */
  bytes: number;
}

export interface S2sPairCount extends S2sCount {
  /** Sending domain (a VirtualHost or a component, e.g. dmuc.avalon.test). */
  from: string;
  /** Receiving domain. */
  to: string;
}

export interface S2sCounts {
  /** Every (from, to) pair with something sent since the last reset. */
  readonly pairs: readonly S2sPairCount[];
  /** from -> to (domains); zeros when nothing was sent. */
  between(from: string, to: string): S2sCount;
  /** Sum over the pairs that match (a domain, or a predicate on it); no filter: everything. */
  sum(filter?: { from?: string | ((domain: string) => boolean); to?: string | ((domain: string) => boolean) }): S2sCount;
}

export interface Federation {
  readonly servers: readonly FederationServer[];
  /** The hosts file libunbound reads on every server. */
  readonly hostsFile: string;
  server(name: string): FederationServer;
  /** user@<serverName>.test, logged in (no presence sent); stopped with the federation. */
  connect(user: string, serverName: string, resource?: string): Promise<TestClient>;
  /**
   * What every server has handed to s2s since the last reset (mod_s2s_counter), merged. A stanza is
   * counted when it is routed, so anything a test has seen arrive is counted; wait for the deliveries
   * (or round-trip through the receiving entities) before asking.
   */
  s2sCounts(): Promise<S2sCounts>;
  /** Zeroes the counts on every server. Make sure earlier traffic is done (same caveat as above). */
  resetS2sCounts(): Promise<void>;
  /**
   * Cuts `name` off from every other server (mod_s2s_netsplit): its s2s links are closed, its s2s port
   * refuses connections, and what it would send to another server bounces with remote-server-not-found
   * (as does what others send to it). Its own users and component stay connected.
   */
  stopS2s(name: string): Promise<void>;
  /** Ends stopS2s(name): the port is open again, links are set up again by the next stanza. */
  startS2s(name: string): Promise<void>;
  /**
   * Partitions `name` from `peers` (server names) while every s2s link stays up: what either side
   * routes to the other is dropped, and with mode "bounce" answered with remote-server-timeout, with
   * "drop" answered by nothing at all. Both ends block, so nothing crosses in either direction.
   */
  partition(name: string, peers: readonly string[], mode: "bounce" | "drop"): Promise<void>;
  /** Ends partition(name, peers). */
  unpartition(name: string, peers: readonly string[]): Promise<void>;
  /**
   * Resets every established TCP connection of `name`'s s2s (its Prosody's sockets to or from port
   * 5269) in the kernel (`ss -K`): both ends see a reset, what was in flight is gone. Returns how
   * many connections were reset.
   */
  resetS2s(name: string): Promise<number>;
  /** SIGSTOP to `name`'s Prosody: it stops reading and writing, its connections stay open. */
  freeze(name: string): void;
  /** SIGCONT: the frozen Prosody goes on. */
  thaw(name: string): void;
  /** Stops `name`'s Prosody (SIGTERM; its users and component are disconnected). */
  stopProsody(name: string): Promise<void>;
  /** Starts `name`'s Prosody again on the same address and ports (its gateway reconnects by itself). */
  startProsody(name: string): Promise<void>;
  /** SIGKILL to `name`'s gateway (a crash: nothing flushed, no goodbye). */
  killGateway(name: string): Promise<void>;
  /** Starts `name`'s gateway again on the same database after killGateway(); waits until Prosody accepted it. */
  startGateway(name: string): Promise<GatewayProcess>;
  /** Every gateway process `name` has run, oldest first (their logs stay readable after they end). */
  gatewayRuns(name: string): readonly GatewayProcess[];
  /** Stops the gateway of `name` and starts a new one on the same database; waits until it is connected. */
  restartGateway(name: string): Promise<GatewayProcess>;
  /** Clients, gateways, Prosody servers, databases, the temp dir, in that order. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------

const NAME = /^[a-z][a-z0-9-]{0,30}$/;

/** A random 127.A.B.0/24 block; servers get .2, .3, ... */
function randomBlock(): string {
  const a = 2 + Math.floor(Math.random() * 253);
  const b = Math.floor(Math.random() * 256);
  return `127.${a}.${b}`;
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Addresses for `n` servers whose s2s port is free (a few tries with other blocks). */
async function pickAddresses(n: number): Promise<string[]> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const block = randomBlock();
    const addresses = Array.from({ length: n }, (_, i) => `${block}.${i + 2}`);
    const free = await Promise.all(addresses.map((a) => canBind(a, S2S_PORT)));
    if (free.every(Boolean)) return addresses;
  }
  throw new Error(
    `no free block of ${n} loopback addresses with port ${S2S_PORT} free: is a server listening on *:${S2S_PORT} (ss -ltnp | grep ${S2S_PORT}), e.g. a system Prosody?`,
  );
}

const zero = (): S2sCount => ({ message: 0, presence: 0, iq: 0, other: 0, stanzas: 0, dialback: 0, bytes: 0 });

function addInto(total: S2sCount, c: S2sCount): S2sCount {
  for (const k of Object.keys(total) as (keyof S2sCount)[]) total[k] += c[k];
  return total;
}

function makeCounts(pairs: S2sPairCount[]): S2sCounts {
  const matches = (domain: string, f: string | ((d: string) => boolean) | undefined): boolean =>
    f === undefined || (typeof f === "string" ? domain === f : f(domain));
  return {
    pairs,
    between: (from, to) => pairs.filter((p) => p.from === from && p.to === to).reduce(addInto, zero()),
    sum: (filter = {}) => pairs.filter((p) => matches(p.from, filter.from) && matches(p.to, filter.to)).reduce(addInto, zero()),
  };
}

function parsePairs(result: Element): S2sPairCount[] {
  const query = result.getChild("query", NS_S2S_COUNTER);
  if (!query) throw new Error(`mod_s2s_counter answered without a query: ${result.toString()}`);
  return query.getChildren("pair").map((p) => {
    const n = (k: string): number => Number(p.attrs[k] ?? 0);
    const count = { message: n("message"), presence: n("presence"), iq: n("iq"), other: n("other"), dialback: n("dialback"), bytes: n("bytes") };
    return { from: String(p.attrs.from), to: String(p.attrs.to), ...count, stanzas: count.message + count.presence + count.iq + count.other };
  });
}

interface ServerState {
  name: string;
  domain: string;
  componentDomain: string | undefined;
  address: string;
  secret: string;
  dmucModule: boolean;
  options: FederationServerOptions;
  prosody?: ProsodyServer;
  db?: TestDatabase;
  gateway?: GatewayProcess;
  /** Every gateway process started for this server, the current one last. */
  runs: GatewayProcess[];
  env?: Env;
}

const run = promisify(execFile);

/** The established TCP connections of process `pid` with port `port` at either end, as ss filters. */
async function socketsOf(pid: number, port: number): Promise<string[]> {
  const { stdout } = await run("ss", ["-tnpH", "state", "established", `( sport = :${port} or dport = :${port} )`]);
  const filters: string[] = [];
  for (const line of stdout.split("\n")) {
    if (!line.includes(`pid=${pid},`)) continue;
    const ends = line.split(/\s+/).filter((t) => /^\d+\.\d+\.\d+\.\d+:\d+$/.test(t));
    if (ends.length !== 2) throw new Error(`cannot read the addresses of this ss line: ${line}`);
    const [local, remote] = ends.map((e) => e.split(":")) as [[string, string], [string, string]];
    filters.push(`src ${local[0]} sport = :${local[1]} dst ${remote[0]} dport = :${remote[1]}`);
  }
  return filters;
}

function luaString(value: string): string {
  if (/[\x00-\x1f]/.test(value)) throw new Error(`unexpected control character in ${JSON.stringify(value)}`);
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export async function startFederation(options: FederationOptions): Promise<Federation> {
  const names = options.servers.map((s) => s.name);
  for (const name of names) if (!NAME.test(name)) throw new Error(`bad server name ${JSON.stringify(name)} (a lower-case DNS label)`);
  if (new Set(names).size !== names.length) throw new Error(`server names must be distinct: ${names.join(", ")}`);
  if (names.length === 0) throw new Error("a federation needs at least one server");
  const admins = options.admins ?? [];
  const replicaModuleFile = join(PROJECT_MODULES_DIR, `mod_${DMUC_MODULE}.lua`);
  const haveReplicaModule = existsSync(replicaModuleFile);

  const dir = await mkdtemp(join(tmpdir(), "dmuc-federation-"));
  // the servers are tracked by their own helpers; this is for the hosts file and data dirs
  const untrack = track({ describe: () => `federation ${dir}`, stopSync: () => removeDirSync(dir, "federation"), warnIfLeaked: false });
  const states: ServerState[] = [];
  const clients: TestClient[] = [];
  const probes = new Map<string, Promise<TestClient>>();
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      const errors: unknown[] = [];
      const all = async (steps: (Promise<unknown> | undefined)[]): Promise<void> => {
        for (const r of await Promise.allSettled(steps)) if (r.status === "rejected") errors.push(r.reason);
      };
      const probeClients = await Promise.allSettled([...probes.values()]);
      await all([...clients.splice(0), ...probeClients.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []))].map((c) => c.stop()));
      await all(states.map((s) => s.gateway?.stop()));
      await all(states.map((s) => s.prosody?.stop()));
      await all(states.map((s) => s.db?.stop()));
      removeDirSync(dir, "federation");
      untrack();
      if (errors.length > 0) throw new AggregateError(errors, "stopping the federation failed");
    })());

  const waitForComponent = async (s: ServerState, gw: GatewayProcess, from: number): Promise<void> => {
    const gaveUp = new AbortController();
    void gw.exited.then(() => gaveUp.abort());
    try {
      await s.prosody!.waitForLog(AUTHENTICATED, CONNECT_TIMEOUT_MS, { from, signal: gaveUp.signal });
    } catch (err) {
      throw new Error(
        `the gateway of ${s.name} did not connect to Prosody: ${(err as Error).message}\n-- the gateway's log:\n${gw.readLog().split("\n").slice(-40).join("\n")}`,
      );
    } finally {
      gaveUp.abort();
    }
  };

  const launchGateway = async (s: ServerState): Promise<GatewayProcess> => {
    const from = s.prosody!.logMark();
    const gw = await startGatewayProcess({ env: s.env!, ...(options.entry ? { entry: options.entry } : {}) });
    s.gateway = gw;
    s.runs.push(gw);
    await waitForComponent(s, gw, from);
    return gw;
  };

  try {
    const addresses = await pickAddresses(names.length);
    const hostsLines: string[] = [];
    for (const [i, o] of options.servers.entries()) {
      const domain = `${o.name}.test`;
      const componentDomain = o.gateway ? `dmuc.${domain}` : undefined;
      const wantsModule = o.dmucModule ?? o.gateway;
      if (wantsModule && !haveReplicaModule) {
        process.stderr.write(`[federation] ${replicaModuleFile} does not exist yet: mod_${DMUC_MODULE} not loaded on ${domain}\n`);
      }
      states.push({
        name: o.name,
        domain,
        componentDomain,
        address: addresses[i]!,
        secret: randomSecret(),
        dmucModule: wantsModule && haveReplicaModule,
        options: o,
        runs: [],
      });
      hostsLines.push(`${addresses[i]} ${domain}${componentDomain ? ` ${componentDomain}` : ""}${o.rawComponent ? ` ${o.rawComponent.domain}` : ""}`);
    }
    const hostsFile = join(dir, "hosts");
    const resolvConf = join(dir, "resolv.conf");
    await writeFile(hostsFile, hostsLines.join("\n") + "\n");
    // Nothing answers on 127.0.0.1:53; .test is one of libunbound's built-in local zones (NXDOMAIN at once).
    await writeFile(resolvConf, "nameserver 127.0.0.1\n");
    await mkdir(join(dir, "data"));

    // Every Prosody and every database at once; gateways once their server and database are up.
    const startServer = async (s: ServerState): Promise<void> => {
      const pluginPaths = [FIXTURE_MODULES_DIR, ...(s.dmucModule ? [PROJECT_MODULES_DIR] : [])];
      const extraConfig = [
        `unbound = { hoststxt = ${luaString(hostsFile)}; resolvconf = ${luaString(resolvConf)} }`,
        ...(s.dmucModule && s.componentDomain ? [`dmuc_replica = ${luaString(s.componentDomain)}`] : []),
        ...(s.options.prosodyConfig ? [s.options.prosodyConfig] : []),
      ].join("\n");
      // allSettled: when one fails, the other must still be recorded in `s` for stop() to clean it up
      const [prosodyStarted, dbStarted] = await Promise.allSettled([
        startProsody({
          host: s.domain,
          interface: s.address,
          s2s: true,
          s2sPort: S2S_PORT,
          admins,
          pluginPaths,
          extraModules: ["s2s_counter", "s2s_netsplit", ...(s.dmucModule ? [DMUC_MODULE] : [])],
          extraConfig,
          components: [
            ...(s.componentDomain ? [{ domain: s.componentDomain, secret: s.secret, validateFromAddresses: false }] : []),
            ...(s.options.rawComponent ? [{ domain: s.options.rawComponent.domain, secret: s.options.rawComponent.secret }] : []),
          ],
        }).then((p) => (s.prosody = p)),
        s.componentDomain ? startTestDatabase().then((d) => (s.db = d)) : undefined,
      ]);
      if (prosodyStarted.status === "rejected") throw prosodyStarted.reason;
      if (dbStarted.status === "rejected") throw dbStarted.reason;
      const prosody = prosodyStarted.value;
      const db = dbStarted.value;
      if (!s.componentDomain) return;
      const dataDir = join(dir, "data", s.name);
      await mkdir(dataDir);
      s.env = {
        DMUC_XMPP_SERVICE: prosody.componentService,
        DMUC_DOMAIN: s.componentDomain,
        DMUC_LOCAL_DOMAIN: s.domain,
        DMUC_SECRET: s.secret,
        DMUC_ADMINS: admins.join(","),
        DATABASE_URL: db!.url,
        DMUC_DATA_DIR: dataDir,
        DMUC_LOG_LEVEL: "debug",
        ...options.env,
        ...s.options.env,
      };
      await launchGateway(s);
    };
    const started = await Promise.allSettled(states.map(startServer));
    const failures = started.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, `starting the federation failed: ${failures.map(String).join("; ")}`);

    const byName = (name: string): ServerState => {
      const s = states.find((x) => x.name === name);
      if (!s) throw new Error(`no server ${JSON.stringify(name)} in this federation (${names.join(", ")})`);
      return s;
    };
    const view = (s: ServerState): FederationServer => ({
      name: s.name,
      domain: s.domain,
      componentDomain: s.componentDomain,
      address: s.address,
      prosody: s.prosody!,
      get gateway() {
        return s.gateway;
      },
      db: s.db,
      env: s.env,
      dmucModule: s.dmucModule,
    });
    const views = states.map(view);

    const login = (s: ServerState, username: string, resource?: string): Promise<TestClient> =>
      connectClient({ service: s.prosody!.c2sService, domain: s.domain, username, ...(resource ? { resource } : {}) });
    const probe = (s: ServerState): Promise<TestClient> => {
      let p = probes.get(s.name);
      if (!p) {
        p = login(s, PROBE_USER, "harness");
        probes.set(s.name, p);
        p.catch(() => probes.delete(s.name));
      }
      return p;
    };
    const ask = async (s: ServerState, type: "get" | "set", child: Element): Promise<Element> => {
      let client = await probe(s);
      if (!client.online) {
        // its server was restarted since: log in again
        probes.delete(s.name);
        client = await probe(s);
      }
      return client.request(xml("iq", { type, to: s.domain }, child));
    };
    const domainsOf = (names: readonly string[]): string[] => names.map((n) => byName(n).domain);
    const block = async (name: string, peers: readonly string[], child: (peer: string) => Element): Promise<void> => {
      const s = byName(name);
      if (peers.includes(name)) throw new Error(`${name} cannot be partitioned from itself`);
      // Both ends, at once: a stanza already on its way is dropped by whichever end sees it.
      await Promise.all([
        ...domainsOf(peers).map((peer) => ask(s, "set", child(peer))),
        ...peers.map((peer) => ask(byName(peer), "set", child(s.domain))),
      ]);
    };
    const prosodyOf = (name: string): ProsodyServer => byName(name).prosody!;

    return {
      servers: views,
      hostsFile,
      server: (name) => views[states.indexOf(byName(name))]!,
      async connect(user, serverName, resource) {
        if (stopping) throw new Error("connect() after stop()");
        const c = await login(byName(serverName), user, resource);
        clients.push(c);
        return c;
      },
      async s2sCounts() {
        const answers = await Promise.all(states.map((s) => ask(s, "get", xml("query", { xmlns: NS_S2S_COUNTER }))));
        return makeCounts(answers.flatMap(parsePairs));
      },
      async resetS2sCounts() {
        await Promise.all(states.map((s) => ask(s, "set", xml("query", { xmlns: NS_S2S_COUNTER }))));
      },
      async stopS2s(name) {
        const s = byName(name);
        const mark = s.prosody!.logMark();
        await ask(s, "set", xml("cut", { xmlns: NS_S2S_NETSPLIT }));
        await s.prosody!.waitForLog(/Deactivated service 's2s'/, 5_000, { from: mark });
      },
      async startS2s(name) {
        const s = byName(name);
        const mark = s.prosody!.logMark();
        await ask(s, "set", xml("restore", { xmlns: NS_S2S_NETSPLIT }));
        await s.prosody!.waitForLog(/Activated service 's2s'/, 5_000, { from: mark });
        const failed = s.prosody!.readLog().split("\n").slice(mark).filter((l) => l.includes("Failed to open server port"));
        if (failed.length > 0) throw new Error(`${s.domain} could not reopen its s2s port:\n${failed.join("\n")}`);
      },
      partition: (name, peers, mode) => block(name, peers, (peer) => xml("block", { xmlns: NS_S2S_NETSPLIT, peer, mode })),
      unpartition: (name, peers) => block(name, peers, (peer) => xml("unblock", { xmlns: NS_S2S_NETSPLIT, peer })),
      async resetS2s(name) {
        const pid = prosodyOf(name).pid;
        if (pid === undefined) throw new Error(`${name}'s Prosody is not running`);
        const sockets = await socketsOf(pid, S2S_PORT);
        // One socket at a time: a filter naming both ends exactly touches no other federation's links.
        for (const filter of sockets) await run("ss", ["-K", ...filter.split(" ")]);
        // ss -K says nothing when the kernel cannot do it: check that the connections are gone.
        const left = (await socketsOf(pid, S2S_PORT)).filter((f) => sockets.includes(f));
        if (left.length > 0) throw new Error(`ss -K did not reset ${left.join("; ")} (it needs root and a kernel with CONFIG_INET_DIAG_DESTROY)`);
        return sockets.length;
      },
      freeze: (name) => prosodyOf(name).freeze(true),
      thaw: (name) => prosodyOf(name).freeze(false),
      async stopProsody(name) {
        await prosodyOf(name).shutdown();
        probes.delete(name);
      },
      async startProsody(name) {
        await prosodyOf(name).start();
      },
      async killGateway(name) {
        const s = byName(name);
        if (!s.gateway) throw new Error(`${s.domain} has no gateway`);
        await s.gateway.kill();
      },
      async startGateway(name) {
        const s = byName(name);
        if (!s.componentDomain) throw new Error(`${s.domain} has no gateway`);
        const status = s.gateway ? await Promise.race([s.gateway.exited, Promise.resolve(undefined)]) : null;
        if (s.gateway && status === undefined) throw new Error(`${s.domain}'s gateway is still running`);
        return launchGateway(s);
      },
      gatewayRuns: (name) => [...byName(name).runs],
      async restartGateway(name) {
        const s = byName(name);
        if (!s.componentDomain) throw new Error(`${s.domain} has no gateway`);
        await s.gateway?.stop();
        return launchGateway(s);
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
