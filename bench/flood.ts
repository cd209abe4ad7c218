// Issue 15 point 1 and issue 16 point 7: one abusive client, everybody else's latency. Ten occupants
// in one room on each side (our gateway, Prosody's mod_muc on the same Prosody); one of them posts a
// probe message every 50 ms and the others measure its delivery latency, first with no flood, then
// while one other user floods: entries and exits in a loop, nick changes, presence updates, groupchat
// messages to the same room, and groupchat messages to a room of its own (16.7: does one flooding
// room delay the others?). Then for a few seconds after the flood stopped (is the backlog gone?).
// Our gateway runs at its default flood limits; Prosody's mod_muc has none (mod_muc_limits is a
// community module), so it broadcasts everything. RSS of both processes during and after each flood.
import xml, { type Element } from "@xmpp/xml";
import { readFileSync } from "node:fs";
import type { BenchOptions, Cell, Report } from "./lib/report.js";
import { fmt } from "./lib/report.js";
import { cpuPercent, isSelfPresence, joinPresence, SIDES, startMucRig, type BenchClient, type MucRig, type Side } from "./lib/muc-rig.js";
import { percentile, ratio, sleep } from "./lib/stats.js";

export const name = "flood";
export const order = 5;

const PROBE_INTERVAL_MS = 50;
const AFTER_MS = 5_000;
/** The flooder writes while its socket has less than this queued (as fast as the server takes it). */
const SOCKET_HIGH_WATER = 64 * 1024;
const BURST = 20;

type Scenario = "no flood" | "entry/exit loop" | "nick changes" | "presence updates" | "messages, same room" | "messages, another room";
const SCENARIOS: Scenario[] = ["no flood", "entry/exit loop", "nick changes", "presence updates", "messages, same room", "messages, another room"];

interface Window {
  p50: number;
  p99: number;
  samples: number;
}

interface Result {
  scenario: Scenario;
  side: Side;
  during: Window;
  after: Window;
  flooded: number;
  errorsBack: number;
  rssPeak: { gateway: number; prosody: number };
  rssAfter: { gateway: number; prosody: number };
  /** CPU% of one core during the flood. */
  cpu: { prosody: number; gateway: number };
}

function rssMb(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
  } catch {
    return NaN;
  }
}

let windowCounter = 0;

/** Probe latencies at every occupant but the sender, while `during` runs. */
async function measure(rig: MucRig, side: Side, durationMs: number): Promise<Window> {
  const room = rig.rooms[side];
  const [sender, ...receivers] = rig.occupants;
  const prefix = `w${++windowCounter} `;
  const latencies: number[] = [];
  for (const c of receivers) {
    c.listener = (el) => {
      if (el.name !== "message") return;
      const body = el.getChildText("body");
      if (body === null || !body.startsWith(prefix)) return;
      latencies.push(performance.now() - Number(body.split(" ", 3)[2]));
    };
  }
  const t0 = performance.now();
  for (let seq = 0; performance.now() - t0 < durationMs; seq++) {
    void sender!.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, `${prefix}${seq} ${performance.now().toFixed(3)}`))).catch(() => undefined);
    await sleep(PROBE_INTERVAL_MS);
  }
  rig.posted[side] += Math.floor(durationMs / PROBE_INTERVAL_MS);
  // Stragglers: wait until the last probe had time to arrive (or the window's worth of silence).
  const expected = receivers.length * Math.floor(durationMs / PROBE_INTERVAL_MS);
  const deadline = performance.now() + Math.max(durationMs, 10_000);
  while (latencies.length < expected && performance.now() < deadline) await sleep(50);
  for (const c of receivers) c.listener = undefined;
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), samples: latencies.length };
}

async function enter(c: BenchClient, room: string, nick: string, configure: boolean): Promise<void> {
  const self = c.expect(isSelfPresence(room, nick), `self-presence from ${room}`);
  await c.send(joinPresence(room, nick, 0));
  await self;
  if (!configure) return;
  await c.raw.iqCaller.request(
    xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))),
    30_000,
  );
}

/** What the flooder sends, stanza by stanza. */
async function flooder(rig: MucRig, side: Side, scenario: Scenario, n: number): Promise<{ client: BenchClient; next: (i: number) => Element }> {
  const client = await rig.connect(`flood${n}`);
  const room = rig.rooms[side];
  const nick = `flooder${n}`;
  switch (scenario) {
    case "entry/exit loop":
      return { client, next: (i) => (i % 2 === 0 ? joinPresence(room, nick, 0) : xml("presence", { to: `${room}/${nick}`, type: "unavailable" })) };
    case "nick changes":
      await enter(client, room, nick, false);
      return { client, next: (i) => xml("presence", { to: `${room}/${nick}-${i % 2}` }) };
    case "presence updates":
      await enter(client, room, nick, false);
      return { client, next: (i) => xml("presence", { to: `${room}/${nick}` }, xml("status", {}, `busy ${i}`)) };
    case "messages, same room":
      await enter(client, room, nick, false);
      return { client, next: (i) => xml("message", { to: room, type: "groupchat" }, xml("body", {}, `flood ${i}`)) };
    case "messages, another room": {
      const own = room.replace("bench@", `flood${n}@`);
      await enter(client, own, nick, true);
      return { client, next: (i) => xml("message", { to: own, type: "groupchat" }, xml("body", {}, `flood ${i}`)) };
    }
    default:
      throw new Error(`no flooder for ${scenario}`);
  }
}

async function runScenario(rig: MucRig, side: Side, scenario: Scenario, durationMs: number, n: number): Promise<Result> {
  const rssPeak = { gateway: rssMb(rig.gateway.pid), prosody: rssMb(rig.prosody.pid) };
  const sampler = setInterval(() => {
    rssPeak.gateway = Math.max(rssPeak.gateway, rssMb(rig.gateway.pid));
    rssPeak.prosody = Math.max(rssPeak.prosody, rssMb(rig.prosody.pid));
  }, 250);
  let flooded = 0;
  let errorsBack = 0;
  try {
    if (scenario === "no flood") {
      const c0 = rig.cpu();
      const during = await measure(rig, side, durationMs);
      const cpu = cpuPercent(c0, rig.cpu());
      return { scenario, side, during, after: during, flooded, errorsBack, rssPeak, rssAfter: { gateway: rssMb(rig.gateway.pid), prosody: rssMb(rig.prosody.pid) }, cpu };
    }
    const { client, next } = await flooder(rig, side, scenario, n);
    client.listener = (el) => {
      if (el.attrs.type === "error") errorsBack++;
    };
    let flooding = true;
    const socket = client.raw.socket as unknown as { writableLength?: number } | null;
    const loop = (async () => {
      while (flooding) {
        if ((socket?.writableLength ?? 0) < SOCKET_HIGH_WATER) {
          for (let k = 0; k < BURST; k++) void client.send(next(flooded++)).catch(() => undefined);
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const c0 = rig.cpu();
    const during = await measure(rig, side, durationMs);
    const cpu = cpuPercent(c0, rig.cpu());
    flooding = false;
    await loop;
    const after = await measure(rig, side, AFTER_MS);
    client.listener = undefined;
    client.destroy();
    return { scenario, side, during, after, flooded, errorsBack, rssPeak, rssAfter: { gateway: rssMb(rig.gateway.pid), prosody: rssMb(rig.prosody.pid) }, cpu };
  } finally {
    clearInterval(sampler);
  }
}

const label = (side: Side) => (side === "ours" ? "ours" : "Prosody mod_muc");

export async function run(options: BenchOptions): Promise<Report> {
  const durationMs = options.quick ? 3_000 : 10_000;
  // Our flood limits at their defaults (the shared rig switches them off for the throughput benchmarks).
  const rig = await startMucRig({ log: options.log, gatewayEnv: { DMUC_RATE_LIMIT: undefined, DMUC_RATE_BURST: undefined } });
  const results: Result[] = [];
  try {
    await rig.grow(10);
    await measure(rig, "ours", 1_000); // warm-up
    await measure(rig, "prosody", 1_000);
    let n = 0;
    // BENCH_FLOOD=entry,nick: only the scenarios whose names start so (and the no-flood baseline).
    const only = (process.env.BENCH_FLOOD ?? "").split(",").map((x) => x.trim()).filter(Boolean);
    for (const scenario of SCENARIOS.filter((sc) => sc === "no flood" || only.length === 0 || only.some((o) => sc.startsWith(o)))) {
      for (const side of SIDES) {
        await sleep(1_000);
        const r = await runScenario(rig, side, scenario, durationMs, ++n);
        results.push(r);
        options.log(
          `flood: ${scenario}, ${label(side)}: during p50 ${fmt(r.during.p50)} / p99 ${fmt(r.during.p99)} ms, after p50 ${fmt(r.after.p50)} / p99 ${fmt(r.after.p99)} ms, ` +
            `${r.flooded} flood stanzas, ${r.errorsBack} errors back, RSS peak ${fmt(r.rssPeak.gateway, 0)} MB (gateway) ${fmt(r.rssPeak.prosody, 0)} MB (Prosody)`,
        );
      }
    }
  } finally {
    await rig.stop();
  }
  const base = (side: Side) => results.find((r) => r.scenario === "no flood" && r.side === side)!.during;
  const rows: Cell[][] = results.map((r) => [
    r.scenario,
    label(r.side),
    fmt(r.during.p50),
    fmt(r.during.p99),
    fmt(ratio(r.during.p50, base(r.side).p50), 2),
    fmt(ratio(r.during.p99, base(r.side).p99), 2),
    fmt(r.after.p50),
    fmt(r.after.p99),
    r.during.samples,
    r.flooded,
    r.errorsBack,
    fmt(r.rssPeak.gateway, 0),
    fmt(r.rssAfter.gateway, 0),
    fmt(r.rssPeak.prosody, 0),
    fmt(r.rssAfter.prosody, 0),
    fmt(r.cpu.gateway, 0),
    fmt(r.cpu.prosody, 0),
  ]);
  return {
    tables: [
      {
        title: "Others' probe latency (ms) while one user floods, and in the 5 s after; x no-flood = ratio to the same side's no-flood figure",
        columns: ["flood", "MUC", "p50", "p99", "p50 x no-flood", "p99 x no-flood", "after p50", "after p99", "probes received", "flood stanzas", "errors to flooder", "gateway RSS peak MB", "gateway RSS after", "Prosody RSS peak MB", "Prosody RSS after", "CPU% gateway", "CPU% Prosody"],
        rows,
      },
    ],
    notes: [
      `10 occupants per room; one posts a probe every ${PROBE_INTERVAL_MS} ms, the other 9 measure; each flood lasts ${durationMs / 1000} s, then ${AFTER_MS / 1000} s are measured after it`,
      "the flooder writes bursts as fast as its socket drains (one Prosody serves both MUCs and all clients); a fresh flooder user per row",
      "ours at its default limits (DMUC_JOIN_RATE/BURST, DMUC_PRESENCE_RATE/BURST, DMUC_ROOM_PRESENCE_RATE, DMUC_RATE_LIMIT/BURST); Prosody's mod_muc has no flood limit and broadcasts everything",
      "Prosody RSS is the whole server (c2s of every client and both MUCs); gateway RSS is the gateway process alone",
    ],
  };
}
