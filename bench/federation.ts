// Benchmark 2 (issue 6): what one room message costs between servers. A room on one server, its
// occupants on others; N groupchat messages are sent (by occupants in turn), every occupant must get
// every message, then the s2s counter (test/fixtures/prosody/mod_s2s_counter.lua, loaded by the
// federation harness on every server) says how many stanzas and bytes crossed server-to-server links.
//
// - DMUC2: our gateway on every server: the room's primary on avalon, a replica on each user server
//   (with mod_dmuc_replica). One copy per replica server crosses s2s, plus the message coming in.
// - plain MUC: Prosody's own mod_muc as `Component "muc.avalon.test" "muc"` on avalon (no gateway
//   anywhere); the other servers' users join it over s2s: one copy per occupant crosses s2s.
//
// Lower bound for a broadcast: one copy per remote server with occupants (K), plus the one stanza the
// sender's server sends to the room (the sender is always remote here): K + 1 stanzas per message.
// Everything runs on loopback addresses (127.A.B.x), bounded in clients, messages and time; every
// federation is stopped before the next starts.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import xml, { type Element } from "@xmpp/xml";
import { startFederation, type Federation, type FederationServerOptions, type S2sCount } from "../test/support/federation.js";
import type { TestClient } from "../test/support/client.js";
import type { BenchOptions, Cell, Report } from "./lib/report.js";
import { mucHostsLua } from "./lib/plain-muc.js";

export const name = "federation";

const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const MUC_OWNER = "http://jabber.org/protocol/muc#owner";
const ROOM_SERVER = "avalon";
const JOIN_TIMEOUT_MS = 60_000;
const DELIVERY_TIMEOUT_MS = 60_000;
/** Every occupant seeing every other's presence; a miss is reported as a problem, not fatal. */
const SEEN_TIMEOUT_MS = 30_000;
const JOIN_CONCURRENCY = 10;
const LATENCY_SAMPLES = 5;

type Kind = "DMUC2" | "plain MUC";

interface Topology {
  title: string;
  /** User server name -> number of occupants from it. */
  users: [string, number][];
}

interface Member {
  nick: string;
  server: string;
  client?: TestClient;
  /** Nicks whose presence this member has seen. */
  seen: Set<string>;
  /** Bench message bodies received. */
  got: Set<string>;
  stanzaIds: Map<string, string>;
}

interface Outcome {
  kind: Kind;
  topology: Topology;
  occupants: number;
  servers: number;
  messages: number;
  all: S2sCount;
  fromRoomServer: S2sCount;
  deliveryMs: number;
  /** Median time for one message to reach the last occupant, sent alone. */
  latencyMs: number;
  joinMs: number;
  problems: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Copies every gateway's log into a new temp dir (the federation removes its own at stop). */
async function keepLogs(fed: Federation): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "bench-federation-logs-"));
  for (const server of fed.servers) if (server.gateway) await writeFile(join(dir, `${server.name}.log`), server.gateway.readLog());
  return dir;
}

async function inBatches<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await sleep(20);
  }
}

async function measure(kind: Kind, topology: Topology, messages: number, log: (m: string) => void): Promise<Outcome> {
  const userServers = topology.users.map(([server]) => server);
  const servers: FederationServerOptions[] =
    kind === "DMUC2"
      ? [ROOM_SERVER, ...userServers].map((server) => ({ name: server, gateway: true }))
      : [
          { name: ROOM_SERVER, gateway: false, prosodyConfig: `${mucHostsLua(ROOM_SERVER)}\nComponent "muc.${ROOM_SERVER}.test" "muc"` },
          ...userServers.map((server) => ({ name: server, gateway: false, prosodyConfig: mucHostsLua(ROOM_SERVER) })),
        ];
  const roomDomain = kind === "DMUC2" ? `dmuc.${ROOM_SERVER}.test` : `muc.${ROOM_SERVER}.test`;
  const room = `bench@${roomDomain}`;
  const members: Member[] = topology.users.flatMap(([server, n]) =>
    Array.from({ length: n }, (_, i) => ({ nick: `${server}-${i}`, server, seen: new Set<string>(), got: new Set<string>(), stanzaIds: new Map<string, string>() })),
  );
  const problems: string[] = [];
  log(`${kind}, ${topology.title}: starting ${servers.length} servers`);
  const fed: Federation = await startFederation({ servers, env: { DMUC_LOG_LEVEL: process.env.BENCH_DMUC_LOG_LEVEL ?? "info", DMUC_RATE_BURST: "1000", DMUC_RATE_LIMIT: "1000" } });
  try {
    const t0 = performance.now();
    const enter = async (m: Member): Promise<void> => {
      const c = await fed.connect(m.nick, m.server);
      m.client = c;
      c.raw.on("stanza", (el: Element) => {
        const from = String(el.attrs.from ?? "");
        if (!from.startsWith(`${room}/`)) return;
        const nick = from.slice(room.length + 1);
        if (el.name === "presence" && el.attrs.type !== "unavailable") m.seen.add(nick);
        if (el.name === "message" && el.attrs.type === "groupchat") {
          const body = el.getChildText("body");
          if (body?.startsWith("bench-")) {
            if (m.got.has(body)) problems.push(`${m.nick} got ${body} twice`);
            m.got.add(body);
            m.stanzaIds.set(body, el.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.id ?? "");
          }
        }
      });
      await c.sendPresence();
      await c.send(xml("presence", { to: `${room}/${m.nick}` }, xml("x", { xmlns: MUC })));
      await c.waitFor(
        (el) => el.name === "presence" && el.attrs.from === `${room}/${m.nick}` && !!el.getChild("x", MUC_USER)?.getChildren("status").some((s) => s.attrs.code === "110"),
        JOIN_TIMEOUT_MS,
        `${m.nick}'s own presence`,
      );
    };
    const linkActive = async (server: string): Promise<void> => {
      if (kind !== "DMUC2") return;
      await fed.server(ROOM_SERVER).gateway!.waitForEvent("dmuc.link_active", (e) => e.replica === `dmuc.${server}.test` && e.room === room, JOIN_TIMEOUT_MS);
    };

    // The owner creates the room and accepts the default configuration (instant room).
    const owner = members[0]!;
    await enter(owner);
    await owner.client!.request(
      xml("iq", { type: "set", to: room }, xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))),
      JOIN_TIMEOUT_MS,
    );
    // DMUC2: the first user of each server makes the primary link that server's replica; the others
    // then enter through it (the steady state this benchmark is about).
    await linkActive(owner.server);
    for (const server of userServers) {
      const first = members.find((m) => m.server === server && !m.client);
      if (!first) continue;
      await enter(first);
      await linkActive(server);
    }
    await inBatches(members.filter((m) => !m.client), JOIN_CONCURRENCY, enter);
    await waitUntil(() => members.every((m) => m.seen.size >= members.length), SEEN_TIMEOUT_MS, () => {
      const behind = members.filter((m) => m.seen.size < members.length);
      const missing = behind[0] ? members.filter((m) => !behind[0]!.seen.has(m.nick)).map((m) => m.nick) : [];
      return `${behind.length} occupants have not seen everybody (e.g. ${behind[0]?.nick}: ${behind[0]?.seen.size}/${members.length}, missing ${missing.join(", ")})`;
    }).catch(async (err: Error) => problems.push(`after joining: ${err.message}; gateway logs kept in ${await keepLogs(fed)}`));
    const joinMs = performance.now() - t0;
    log(`${kind}, ${topology.title}: ${members.length} occupants in, sending ${messages} messages`);

    await sleep(500); // let any trailing join traffic be routed before zeroing
    await fed.resetS2sCounts();
    const t1 = performance.now();
    for (let i = 0; i < messages; i++) {
      const sender = members[(i * 7 + 1) % members.length]!; // in turn, across the servers
      await sender.client!.send(xml("message", { to: room, type: "groupchat", id: `b${i}` }, xml("body", {}, `bench-${i} ${"x".repeat(60)}`)));
    }
    await waitUntil(() => members.every((m) => m.got.size >= messages), DELIVERY_TIMEOUT_MS, () => {
      const behind = members.filter((m) => m.got.size < messages);
      return `${behind.length} occupants are missing messages (e.g. ${behind[0]?.nick}: ${behind[0]?.got.size}/${messages})`;
    }).catch((err: Error) => problems.push(`delivery (the counts below are of an incomplete run): ${err.message}`));
    const deliveryMs = performance.now() - t1;
    await sleep(300);
    const counts = await fed.s2sCounts();
    for (let i = 0; i < messages; i++) {
      const body = [...members[0]!.got].find((b) => b.startsWith(`bench-${i} `));
      const ids = new Set(members.map((m) => (body ? m.stanzaIds.get(body) : undefined)));
      if (ids.size !== 1) problems.push(`message ${i}: ${ids.size} different stanza-ids`);
    }
    // Latency apart from the counts: one message at a time, until the last occupant has it.
    const latencies: number[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const body = `bench-lat${i} ${"x".repeat(60)}`;
      const sender = members[(i * 11 + 3) % members.length]!;
      const t = performance.now();
      await sender.client!.send(xml("message", { to: room, type: "groupchat", id: `l${i}` }, xml("body", {}, body)));
      const ok = await waitUntil(() => members.every((m) => m.got.has(body)), DELIVERY_TIMEOUT_MS, () => `latency message ${i} not delivered to all`).then(
        () => true,
        (err: Error) => (problems.push(err.message), false),
      );
      if (!ok) break;
      latencies.push(performance.now() - t);
    }
    latencies.sort((a, b) => a - b);
    return {
      kind,
      topology,
      latencyMs: latencies.length > 0 ? latencies[Math.floor(latencies.length / 2)]! : NaN,
      occupants: members.length,
      servers: servers.length,
      messages,
      all: counts.sum(),
      fromRoomServer: counts.sum({ from: (d) => d === roomDomain || d === `${ROOM_SERVER}.test` }),
      deliveryMs,
      joinMs,
      problems,
    };
  } finally {
    log(`${kind}, ${topology.title}: stopping the servers`);
    await fed.stop();
  }
}

const per = (x: number, n: number, digits = 1): string => (x / n).toFixed(digits);

export async function run(options: BenchOptions): Promise<Report> {
  const messages = options.quick ? 5 : 20;
  const topologies: Topology[] = [
    { title: "XEP-0282 scenario: 7 users on 3 servers", users: [["oulubox", 3], ["eris", 2], ["vesa", 2]] },
    options.quick
      ? { title: "larger: 20 occupants on 4 servers", users: [["s1", 5], ["s2", 5], ["s3", 5], ["s4", 5]] }
      : { title: "larger: 200 occupants on 4 servers", users: [["s1", 50], ["s2", 50], ["s3", 50], ["s4", 50]] },
  ];
  const outcomes: Outcome[] = [];
  for (const topology of topologies) {
    for (const kind of ["DMUC2", "plain MUC"] as Kind[]) outcomes.push(await measure(kind, topology, messages, options.log));
  }

  const rows: Cell[][] = [];
  for (const o of outcomes) {
    const k = o.topology.users.length;
    const other = outcomes.find((x) => x.topology === o.topology && x.kind !== o.kind)!;
    const dmuc = o.kind === "DMUC2" ? o : other;
    const muc = o.kind === "DMUC2" ? other : o;
    rows.push([
      o.topology.title,
      o.kind,
      String(o.occupants),
      per(o.fromRoomServer.message, o.messages),
      String(k),
      per(o.all.stanzas, o.messages),
      String(k + 1),
      Math.round(o.all.bytes / o.messages),
      Math.round(o.fromRoomServer.bytes / Math.max(1, o.fromRoomServer.message)),
      `${((o.all.stanzas / o.messages) / (k + 1)).toFixed(2)}x`,
      o.kind === "DMUC2" ? `${(muc.all.stanzas / dmuc.all.stanzas).toFixed(1)}x fewer stanzas, ${(muc.all.bytes / dmuc.all.bytes).toFixed(1)}x fewer bytes` : "-",
      Math.round(o.deliveryMs),
      Math.round(o.latencyMs),
      o.problems.length === 0 ? "ok" : `${o.problems.length} problem(s), see notes`,
    ]);
  }
  const notes: string[] = [
    `${messages} groupchat messages per row (bodies of ~70 characters), sent by occupants in turn; counted from the reset (after every occupant saw every other's presence) until every occupant had every message. Counts come from mod_s2s_counter (every stanza a server hands to s2s, all servers, dialback excluded from stanzas, included in bytes).`,
    `"room copies/msg": messages the room's server sent over s2s per message (for DMUC2 from dmuc.${ROOM_SERVER}.test to the replicas; for plain MUC from muc.${ROOM_SERVER}.test to each occupant). "s2s stanzas/msg": every stanza on every s2s link (the sender's message to the room, the room's copies, and anything else: IQs, presences), per message.`,
    "Lower bound: one copy per remote server with occupants (K) plus the sender's message to the room (K + 1); no server-to-server design can send less when every occupant is remote.",
    `DMUC2 runs our gateway on every server (room primary on avalon, replicas with mod_dmuc_replica elsewhere); plain MUC runs Prosody 0.12's mod_muc on avalon and no gateway anywhere. Same Prosody, same loopback, same clients. "all delivered ms": from the first of the messages sent back to back to the last occupant's last copy; "one msg ms": median of ${LATENCY_SAMPLES} messages sent one at a time after the counted run, to the last occupant (loopback; includes the client library and the benchmark's own process receiving every copy).`,
    `Setup (not in the counts): room created and configured by its first occupant; joins ${JOIN_CONCURRENCY} at a time; join time per row: ${outcomes.map((o) => `${o.kind} ${o.occupants}: ${(o.joinMs / 1000).toFixed(1)} s`).join(", ")}.`,
  ];
  for (const o of outcomes) {
    const pairs = `${o.kind}, ${o.occupants} occupants: messages ${o.all.message}, presences ${o.all.presence}, iqs ${o.all.iq}, other ${o.all.other}, dialback ${o.all.dialback}, bytes ${o.all.bytes}`;
    notes.push(`Raw totals — ${pairs}.`);
    for (const p of o.problems.slice(0, 5)) notes.push(`PROBLEM (${o.kind}, ${o.occupants}): ${p}`);
  }
  return {
    tables: [
      {
        title: "s2s traffic per room message",
        columns: ["topology", "kind", "occupants", "room copies/msg", "lower bound (K)", "s2s stanzas/msg", "lower bound (K+1)", "s2s bytes/msg", "bytes/room copy", "vs lower bound", "DMUC2 vs plain MUC", "all delivered ms", "one msg ms", "check"],
        rows,
      },
    ],
    notes,
  };
}
