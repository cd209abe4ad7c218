// Benchmark 1 (issue 6): fan-out. One room with 10, 100 and 1000 occupants (real c2s users on one real
// Prosody), one of them sending groupchat messages at increasing offered rates, each step a bounded
// number of messages. Measured at the receivers: messages/s the room accepted (reflected to the
// sender), stanzas/s delivered to all occupants, and delivery latency (send timestamp in the body).
// Our gateway (component) against Prosody's own mod_muc on the same Prosody, with the same users,
// one service at a time (the other room idles): both share one Prosody process and two cores, so
// running them together would make each slow the other down. Steps alternate ours / Prosody.
import xml from "@xmpp/xml";
import type { BenchOptions, Cell, Report } from "./lib/report.js";
import { fmt } from "./lib/report.js";
import { cpuPercent, HISTORY, SIDES, sharedMucRig, type MucRig, type Side } from "./lib/muc-rig.js";
import { percentile, ratio, sleep } from "./lib/stats.js";

export const name = "fanout";
export const order = 1;
export const rig = "muc";

/** A step ends when every copy arrived, or when nothing arrived for this long (then copies are "lost"). */
const IDLE_MS = 10_000;
const STEP_CAP_MS = 180_000;
const WARMUP_MESSAGES = 30;
// A body of a realistic size: ~100 characters with the timestamp.
const FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor";

interface Plan {
  occupants: number;
  rates: number[];
  messages: number;
}

function plans(quick: boolean): Plan[] {
  // BENCH_FANOUT_OCCUPANTS=10,100: only those room sizes of the full run (a loaded machine cannot
  // always afford growing the 1000-occupant rooms).
  const only = process.env.BENCH_FANOUT_OCCUPANTS?.split(",").map(Number);
  if (only && !quick) return fullPlans().filter((p) => only.includes(p.occupants));
  if (quick) return [
    { occupants: 10, rates: [50, 200], messages: 50 },
    { occupants: 50, rates: [50, 200], messages: 50 },
  ];
  return fullPlans();
}

function fullPlans(): Plan[] {
  // With 1000 occupants every message is 1000 deliveries: 50 msg/s is already 50k deliveries/s, several
  // times what one Prosody process delivers, so that size gets lower rates and fewer messages.
  return [
    { occupants: 10, rates: [50, 200, 800], messages: 300 },
    { occupants: 100, rates: [50, 200, 800], messages: 300 },
    { occupants: 1000, rates: [5, 20, 80], messages: 60 },
  ];
}

interface StepResult {
  side: Side;
  occupants: number;
  rate: number;
  messages: number;
  sentPerSecond: number;
  acceptedPerSecond: number;
  deliveredPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  lost: number;
  errors: number;
  cpu: { prosody: number; gateway: number; bench: number };
}

let runCounter = 0;

async function step(rig: MucRig, side: Side, rate: number, messages: number): Promise<StepResult> {
  const room = rig.rooms[side];
  const occupants = rig.occupants;
  const sender = occupants[0]!;
  const prefix = `b${++runCounter} `;
  const expected = messages * occupants.length;
  const latencies = new Float64Array(expected);
  let received = 0;
  let echoes = 0;
  let errors = 0;
  let lastDelivery = 0;
  let lastEcho = 0;

  for (const c of occupants) {
    const isSender = c === sender;
    c.listener = (el) => {
      if (el.name !== "message") return;
      if (el.attrs.type === "error") {
        errors++;
        return;
      }
      const body = el.getChildText("body");
      if (body === null || !body.startsWith(prefix)) return;
      const now = performance.now();
      const sentAt = Number(body.split(" ", 3)[2]);
      if (received < expected) latencies[received] = now - sentAt;
      received++;
      lastDelivery = now;
      if (isSender) {
        echoes++;
        lastEcho = now;
      }
    };
  }

  const cpuBefore = rig.cpu();
  const t0 = performance.now();
  let sent = 0;
  let lastSend = t0;
  const interval = 1000 / rate;
  while (sent < messages) {
    const now = performance.now();
    const due = Math.min(messages, Math.floor((now - t0) / interval) + 1);
    for (; sent < due; sent++) {
      const stamp = performance.now();
      const body = `${prefix}${sent} ${stamp.toFixed(3)} ${FILLER}`;
      sender.send(xml("message", { to: room, type: "groupchat", id: `${prefix.trim()}-${sent}` }, xml("body", {}, body))).catch(() => errors++);
      lastSend = stamp;
    }
    if (sent < messages) await sleep(Math.max(1, t0 + sent * interval - performance.now()));
  }
  rig.posted[side] += messages;

  let lastProgress = performance.now();
  let seen = received;
  while (received < expected) {
    await sleep(20);
    const now = performance.now();
    if (received !== seen) {
      seen = received;
      lastProgress = now;
    } else if (now - lastProgress > IDLE_MS) break;
    if (now - t0 > STEP_CAP_MS) break;
  }
  const cpuAfter = rig.cpu();
  for (const c of occupants) c.listener = undefined;

  const samples = latencies.subarray(0, Math.min(received, expected));
  const seconds = (t: number) => (t - t0) / 1000;
  return {
    side,
    occupants: occupants.length,
    rate,
    messages,
    sentPerSecond: messages > 1 ? (messages - 1) / seconds(lastSend) : NaN,
    acceptedPerSecond: echoes / seconds(lastEcho),
    deliveredPerSecond: received / seconds(lastDelivery),
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: samples.length ? samples[samples.length - 1]! : NaN, // sorted by percentile()
    lost: expected - Math.min(received, expected),
    errors,
    cpu: cpuPercent(cpuBefore, cpuAfter),
  };
}

/** Unmeasured messages through both rooms, so that neither side is measured cold (JIT, caches). */
async function warmUp(rig: MucRig): Promise<void> {
  for (const side of SIDES) await step(rig, side, 200, WARMUP_MESSAGES);
}

const label = (side: Side) => (side === "ours" ? "ours" : "Prosody mod_muc");

export async function run(options: BenchOptions): Promise<Report> {
  const rig = await sharedMucRig({ log: options.log });
  const results: StepResult[] = [];
  let warm = false;
  for (const plan of plans(options.quick)) {
    options.log(`fanout: growing both rooms to ${plan.occupants} occupants`);
    await rig.grow(plan.occupants);
    if (!warm) {
      await warmUp(rig);
      warm = true;
    }
    for (const rate of plan.rates) {
      for (const side of SIDES) {
        await sleep(500); // let the previous step's stragglers and GC settle
        const r = await step(rig, side, rate, plan.messages);
        results.push(r);
        options.log(
          `fanout: ${plan.occupants} occupants, ${rate} msg/s offered, ${label(side)}: ${fmt(r.deliveredPerSecond)} delivered/s, ` +
            `p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, lost ${r.lost}, errors ${r.errors}`,
        );
      }
    }
    const offline = rig.occupants.filter((c) => c.raw.status !== "online").length;
    if (offline > 0) throw new Error(`${offline} users lost their connection during the run`);
  }

  const rows: Cell[][] = results.map((r) => [
    r.occupants,
    r.rate,
    r.messages,
    label(r.side),
    fmt(r.sentPerSecond),
    fmt(r.acceptedPerSecond),
    fmt(r.deliveredPerSecond),
    fmt(r.p50),
    fmt(r.p99),
    fmt(r.max),
    r.lost + r.errors,
    fmt(r.cpu.prosody, 0),
    fmt(r.cpu.gateway, 0),
    fmt(r.cpu.bench, 0),
  ]);
  const ratioRows: Cell[][] = [];
  for (const r of results.filter((x) => x.side === "ours")) {
    const p = results.find((x) => x.side === "prosody" && x.occupants === r.occupants && x.rate === r.rate)!;
    ratioRows.push([
      r.occupants,
      r.rate,
      fmt(ratio(r.acceptedPerSecond, p.acceptedPerSecond), 2),
      fmt(ratio(r.deliveredPerSecond, p.deliveredPerSecond), 2),
      fmt(ratio(r.p50, p.p50), 2),
      fmt(ratio(r.p99, p.p99), 2),
      fmt(ratio(r.cpu.prosody + r.cpu.gateway, p.cpu.prosody), 2),
    ]);
  }
  return {
    tables: [
      {
        title: "Fan-out: one sender, every occupant receives (latency = send to receipt, at each receiver)",
        columns: ["occupants", "offered msg/s", "messages", "MUC", "sent msg/s", "accepted msg/s", "delivered stanzas/s", "p50 ms", "p99 ms", "max ms", "lost", "CPU% Prosody", "CPU% gateway", "CPU% bench"],
        rows,
      },
      {
        title: "Fan-out, ours / Prosody mod_muc (throughput: >1 is better for us; latency: <1 is better for us)",
        columns: ["occupants", "offered msg/s", "accepted", "delivered/s", "p50 latency", "p99 latency", "server CPU% (Prosody+gateway vs Prosody)"],
        rows: ratioRows,
      },
    ],
    notes: [
      "one Prosody (c2s, and both MUCs), our gateway with its PostgreSQL, and this benchmark's clients share the machine; CPU% is of one core over the step",
      "accepted = messages reflected to the sender per second; delivered = copies received by all occupants (sender included) per second; both from the first send to the last receipt",
      `same settings on both sides: Prosody gc generational, network_settings nagle = false, log level info, no flood limit (ours: DMUC_RATE_LIMIT off), room history ${HISTORY}; ours also stores every message in PostgreSQL before broadcasting it, mod_muc keeps history in memory`,
      `lost = copies that never arrived (waited ${IDLE_MS / 1000} s of silence) plus error replies; ${WARMUP_MESSAGES} unmeasured warm-up messages per room first`,
    ],
  };
}
