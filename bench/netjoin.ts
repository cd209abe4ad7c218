// Netjoin (issue 9): a replica server is split from the room while the other side sends N messages
// (default 10,000; 200 with --quick; BENCH_NETJOIN_MESSAGES overrides); then the split heals. Measured:
// the time until every user behind the split has every message, and what crossed s2s meanwhile (from
// mod_s2s_counter, all servers), against the lower bound: one copy of each missing message per split
// replica server (N stanzas, N copies' bytes).
//
// - DMUC2: our gateway on every server (room primary on avalon, replicas with mod_dmuc_replica on
//   oulubox, the split side, and on eris, the side that talks).
// - plain MUC, the peer: Prosody 0.12's mod_muc on avalon, no gateway anywhere. It has no netjoin:
//   what its occupants behind the split missed is not sent again (the row says how much arrived).
//
// The split is test/support/faults.ts's "bounce" (oulubox partitioned from every other server, what
// crosses bounces with remote-server-timeout, so both designs see it at once). Users: 2 on oulubox, 2 on
// eris; the eris users send the N messages in turn, back to back. Every federation is stopped before
// the next starts.
import xml, { type Element } from "@xmpp/xml";
import type { TestClient } from "../test/support/client.js";
import { startFederation, type Federation, type FederationServerOptions, type S2sCount } from "../test/support/federation.js";
import { injectFault } from "../test/support/faults.js";
import type { BenchOptions, Cell, Report } from "./lib/report.js";
import { mucHostsLua } from "./lib/plain-muc.js";
import { sleep } from "./lib/stats.js";

export const name = "netjoin";

const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const MUC_OWNER = "http://jabber.org/protocol/muc#owner";
const ROOM_SERVER = "avalon";
const SPLIT = "oulubox";
const TALKING = "eris";
const ENTER_TIMEOUT_MS = 60_000;
/** Links set up and one copy per replica server before the split. */
const LINKED_TIMEOUT_MS = 60_000;
const POLL_MS = 50;
/** The wait for convergence ends early when the split side got nothing new for this long. */
const STALL_MS = 30_000;

type Kind = "DMUC2" | "plain MUC";

interface Member {
  nick: string;
  server: string;
  client?: TestClient;
  /** Bench message bodies received (a Set: a duplicate is reported apart). */
  got: Set<string>;
  duplicates: number;
}

interface Outcome {
  kind: Kind;
  messages: number;
  /** Time for the talking side to have every message (the split lasted at least that long). */
  sendMs: number;
  /** From the heal to the last split-side user's last message; null when it never came. */
  convergeMs: number | null;
  /** Messages the split-side user with the fewest had when the wait ended. */
  delivered: number;
  duplicates: number;
  /** Everything on s2s from the heal until convergence (or the end of the wait). */
  s2s: S2sCount;
  /** Bytes of one live copy of a bench message to the split server, measured before the split. */
  copyBytes: number;
  waitedMs: number;
  problems: string[];
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

const body = (i: number) => `netjoin-${i} ${"x".repeat(60)}`;

async function measure(kind: Kind, messages: number, log: (m: string) => void): Promise<Outcome> {
  const names = [ROOM_SERVER, SPLIT, TALKING];
  const servers: FederationServerOptions[] =
    kind === "DMUC2"
      ? names.map((server) => ({ name: server, gateway: true }))
      : names.map((server) => ({
          name: server,
          gateway: false,
          prosodyConfig: server === ROOM_SERVER ? `${mucHostsLua(ROOM_SERVER)}\nComponent "muc.${ROOM_SERVER}.test" "muc"` : mucHostsLua(ROOM_SERVER),
        }));
  const roomDomain = kind === "DMUC2" ? `dmuc.${ROOM_SERVER}.test` : `muc.${ROOM_SERVER}.test`;
  const room = `netjoin@${roomDomain}`;
  const splitTarget = kind === "DMUC2" ? `dmuc.${SPLIT}.test` : `${SPLIT}.test`;
  const members: Member[] = [SPLIT, SPLIT, TALKING, TALKING].map((server, i) => ({ nick: `${server}-${i % 2}`, server, got: new Set<string>(), duplicates: 0 }));
  const splitSide = members.filter((m) => m.server === SPLIT);
  const talkers = members.filter((m) => m.server === TALKING);
  const problems: string[] = [];
  log(`${kind}: starting ${servers.length} servers`);
  // The message rate is what is measured against: no flood limit in the way (as in bench/federation.ts).
  const fed: Federation = await startFederation({ servers, env: { DMUC_LOG_LEVEL: process.env.BENCH_DMUC_LOG_LEVEL ?? "info", DMUC_RATE_BURST: "100000", DMUC_RATE_LIMIT: "100000" } });
  try {
    for (const m of members) {
      const c = await fed.connect(m.nick, m.server);
      m.client = c;
      c.raw.on("stanza", (el: Element) => {
        if (el.name !== "message" || el.attrs.type !== "groupchat" || !String(el.attrs.from ?? "").startsWith(`${room}/`)) return;
        const text = el.getChildText("body");
        if (!text?.startsWith("netjoin-") && !text?.startsWith("warm-")) return;
        if (m.got.has(text)) m.duplicates++;
        m.got.add(text);
      });
      await c.sendPresence();
      await c.send(xml("presence", { to: `${room}/${m.nick}` }, xml("x", { xmlns: MUC }, xml("history", { maxstanzas: "0" }))));
      await c.waitFor(
        (el) => el.name === "presence" && el.attrs.from === `${room}/${m.nick}` && !!el.getChild("x", MUC_USER)?.getChildren("status").some((s) => s.attrs.code === "110"),
        ENTER_TIMEOUT_MS,
        `${m.nick}'s own presence`,
      );
      if (m === members[0]) {
        await c.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))), ENTER_TIMEOUT_MS);
      }
    }

    // Warm-up: until a message reaches the split server as one copy (DMUC2: to its replica, once
    // its link is up; plain MUC: one per occupant), which gives the size of one copy.
    let copyBytes = 0;
    const deadline = Date.now() + LINKED_TIMEOUT_MS;
    for (let i = 0; ; i++) {
      await fed.resetS2sCounts();
      const warm = `warm-${i}`;
      await talkers[0]!.client!.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, warm)));
      if (!(await until(() => members.every((m) => m.got.has(warm)), ENTER_TIMEOUT_MS))) throw new Error(`${kind}: the warm-up message ${warm} did not reach everyone`);
      const copies = (await fed.s2sCounts()).between(roomDomain, splitTarget);
      const expected = kind === "DMUC2" ? 1 : splitSide.length;
      if (copies.message === expected) {
        copyBytes = copies.bytes / copies.message;
        break;
      }
      if (Date.now() > deadline) throw new Error(`${kind}: the room never sent ${expected} copy(ies) of a message to ${splitTarget} (last: ${copies.message})`);
      await sleep(500);
    }

    log(`${kind}: splitting ${SPLIT} off, ${messages} messages from ${TALKING}`);
    const fault = await injectFault(fed, { kind: "bounce", server: SPLIT });
    const t0 = performance.now();
    for (let i = 0; i < messages; i++) {
      await talkers[i % talkers.length]!.client!.send(xml("message", { to: room, type: "groupchat", id: `n${i}` }, xml("body", {}, body(i))));
    }
    const all = Array.from({ length: messages }, (_, i) => body(i));
    // The split must last until the talking side has everything: healing earlier would measure the
    // primary's backlog, not the netjoin. Generous: a loaded 2-core machine did 10,000 in over 200 s.
    const sendTimeout = Math.max(120_000, messages * 100);
    if (!(await until(() => talkers.every((m) => all.every((b) => m.got.has(b))), sendTimeout))) {
      problems.push(`the talking side did not get its own ${messages} messages within ${sendTimeout / 1000} s`);
    }
    const sendMs = performance.now() - t0;

    log(`${kind}: healing the split`);
    await fed.resetS2sCounts();
    await fault.heal();
    const t1 = performance.now();
    // Until complete; or until nothing more arrived for STALL_MS (the rest is not coming), at most waitMs.
    const waitMs = Math.max(60_000, messages * 20);
    const count = () => Math.min(...splitSide.map((m) => m.got.size));
    let last = { n: count(), at: performance.now() };
    const complete = () => splitSide.every((m) => all.every((b) => m.got.has(b)));
    const converged = await until(() => {
      if (count() !== last.n) last = { n: count(), at: performance.now() };
      return complete() || performance.now() - last.at > STALL_MS;
    }, waitMs).then((done) => done && complete());
    const convergeMs = converged ? performance.now() - t1 : null;
    const waitedMs = performance.now() - t1;
    const s2s = (await fed.s2sCounts()).sum();
    const delivered = Math.min(...splitSide.map((m) => all.filter((b) => m.got.has(b)).length));
    if (!converged) problems.push(`after ${(waitedMs / 1000).toFixed(0)} s (the last ${STALL_MS / 1000} s without progress, or the limit) the split side had ${delivered} of ${messages} messages`);
    return { kind, messages, sendMs, convergeMs, delivered, duplicates: members.reduce((n, m) => n + m.duplicates, 0), s2s, copyBytes, waitedMs, problems };
  } finally {
    log(`${kind}: stopping the servers`);
    await fed.stop();
  }
}

export async function run(options: BenchOptions): Promise<Report> {
  const messages = Number(process.env.BENCH_NETJOIN_MESSAGES ?? (options.quick ? 200 : 10_000));
  if (!Number.isInteger(messages) || messages < 1) throw new Error(`BENCH_NETJOIN_MESSAGES must be a positive integer, not ${process.env.BENCH_NETJOIN_MESSAGES}`);
  const outcomes: Outcome[] = [];
  for (const kind of ["DMUC2", "plain MUC"] as Kind[]) outcomes.push(await measure(kind, messages, options.log));

  const rows: Cell[][] = outcomes.map((o) => {
    const boundBytes = o.messages * o.copyBytes;
    return [
      o.kind,
      o.messages,
      (o.sendMs / 1000).toFixed(1),
      `${o.delivered} / ${o.messages}`,
      o.duplicates,
      o.convergeMs === null ? `never (stopped after ${(o.waitedMs / 1000).toFixed(0)} s)` : (o.convergeMs / 1000).toFixed(2),
      o.s2s.stanzas,
      o.messages,
      `${(o.s2s.stanzas / o.messages).toFixed(2)}x`,
      Math.round(o.s2s.bytes),
      Math.round(boundBytes),
      `${(o.s2s.bytes / boundBytes).toFixed(2)}x`,
    ];
  });
  const notes = [
    `One split server (${SPLIT}, 2 users) partitioned from every other server (what crosses bounces with remote-server-timeout); during the split 2 users on ${TALKING} send N messages (~70-character bodies) back to back; then the partition is lifted. "split lasted": until the talking side had all N. "converge": from the heal until both split-side users have all N (live copies before the split was noticed, catch-up after).`,
    `Lower bound: one copy of each missing message per split replica server: N stanzas, and N times the bytes of one live copy to ${SPLIT} measured before the split (DMUC2 ${Math.round(outcomes[0]?.copyBytes ?? 0)} B, plain MUC ${Math.round(outcomes[1]?.copyBytes ?? 0)} B per copy). s2s counts are every stanza every server handed to s2s from the heal until convergence (or the end of the wait), dialback excluded from stanzas, included in bytes; a netjoin that carries many messages in one IQ counts as one stanza, hence the bytes columns.`,
    "Settings at their defaults except the flood limit (DMUC_RATE_LIMIT/BURST 100000): the benchmark offers messages as fast as the clients send them.",
  ];
  for (const o of outcomes) {
    notes.push(`Raw totals after the heal — ${o.kind}: messages ${o.s2s.message}, presences ${o.s2s.presence}, iqs ${o.s2s.iq}, other ${o.s2s.other}, dialback ${o.s2s.dialback}, bytes ${o.s2s.bytes}.`);
    for (const p of o.problems) notes.push(`PROBLEM (${o.kind}): ${p}`);
  }
  return {
    tables: [
      {
        title: `netjoin after a split during which ${messages} messages were sent`,
        columns: ["MUC", "N", "split lasted s", "split side got", "duplicates", "converge s", "s2s stanzas", "bound", "vs bound", "s2s bytes", "bound bytes", "vs bound bytes"],
        rows,
      },
    ],
    notes,
  };
}
