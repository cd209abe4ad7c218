// Benchmark 3 (issue 6): joining a big room. Time for a user to enter a room with 1000 occupants and
// HISTORY history messages: from sending the join presence to receiving the subject (which ends the
// join, XEP-0045 §7.2.16), on the way receiving 1000 occupants' presences, its own, and the history.
// Our gateway against Prosody's own mod_muc on the same Prosody (see bench/lib/muc-rig.ts), joins
// alternating between the two; median of a few joins. The joiner leaves after each join.
import xml, { type Element } from "@xmpp/xml";
import type { BenchOptions, Cell, Report } from "./lib/report.js";
import { fmt } from "./lib/report.js";
import { HISTORY, isSelfPresence, joinPresence, SIDES, sharedMucRig, type BenchClient, type MucRig, type Side } from "./lib/muc-rig.js";
import { median, ratio, sleep } from "./lib/stats.js";

export const name = "join";
export const order = 3;
export const rig = "muc";

const NICK = "joiner";
const TIMEOUT_MS = 60_000;

interface Sample {
  side: Side;
  /** join presence sent -> subject received */
  totalMs: number;
  /** join presence sent -> own presence (status 110) received */
  selfMs: number;
  presences: number;
  history: number;
}

const fromRoom = (room: string, el: Element) => el.attrs.from === room || (el.attrs.from ?? "").startsWith(`${room}/`);

/** Posts messages until the room's history holds HISTORY of them. */
async function fillHistory(rig: MucRig, side: Side): Promise<void> {
  const missing = HISTORY - rig.posted[side];
  if (missing <= 0) return;
  const owner = rig.occupants[0]!;
  const room = rig.rooms[side];
  const last = `history ${missing - 1}`;
  const done = owner.expect((el) => el.name === "message" && el.getChildText("body") === last, `the echo of ${last}`, TIMEOUT_MS);
  for (let i = 0; i < missing; i++) await owner.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, `history ${i}`)));
  await done;
  rig.posted[side] += missing;
}

async function joinOnce(rig: MucRig, joiner: BenchClient, side: Side): Promise<Sample> {
  const room = rig.rooms[side];
  const n = rig.occupants.length;
  let presences = 0;
  let history = 0;
  let selfAt = NaN;
  const isSelf = isSelfPresence(room, NICK);
  joiner.listener = (el) => {
    if (!fromRoom(room, el)) return;
    if (el.name === "presence") {
      presences++;
      if (Number.isNaN(selfAt) && isSelf(el)) selfAt = performance.now();
    } else if (el.name === "message" && el.getChild("body") && el.getChild("delay", "urn:xmpp:delay")) history++;
  };
  // The others see the newcomer arrive and leave: wait for those broadcasts too, so that one join's
  // tail is not the next join's load.
  let arrivals = 0;
  let departures = 0;
  for (const c of rig.occupants) {
    c.listener = (el) => {
      if (el.name !== "presence" || el.attrs.from !== `${room}/${NICK}`) return;
      if (el.attrs.type === "unavailable") departures++;
      else arrivals++;
    };
  }
  const subject = joiner.expect(
    (el) => el.name === "message" && fromRoom(room, el) && el.getChild("subject") !== undefined && el.getChild("body") === undefined,
    `the subject of ${room}`,
    TIMEOUT_MS,
  );
  const t0 = performance.now();
  await joiner.send(joinPresence(room, NICK, HISTORY));
  await subject;
  const totalMs = performance.now() - t0;
  const sample: Sample = { side, totalMs, selfMs: selfAt - t0, presences, history };

  const gone = joiner.expect((el) => el.name === "presence" && el.attrs.from === `${room}/${NICK}` && el.attrs.type === "unavailable", "own unavailable presence", TIMEOUT_MS);
  await joiner.send(xml("presence", { to: `${room}/${NICK}`, type: "unavailable" }));
  await gone;
  const deadline = performance.now() + TIMEOUT_MS;
  while ((arrivals < n || departures < n) && performance.now() < deadline) await sleep(20);
  joiner.listener = undefined;
  for (const c of rig.occupants) c.listener = undefined;
  if (arrivals < n || departures < n) throw new Error(`${side}: only ${arrivals}/${n} occupants saw the joiner arrive and ${departures}/${n} leave`);
  await sleep(300);
  return sample;
}

const label = (side: Side) => (side === "ours" ? "ours" : "Prosody mod_muc");

export async function run(options: BenchOptions): Promise<Report> {
  const occupants = options.quick ? 50 : 1000;
  const joins = options.quick ? 2 : 5;
  const rig = await sharedMucRig({ log: options.log });
  options.log(`join: growing both rooms to ${occupants} occupants`);
  await rig.grow(occupants);
  if (rig.occupants.length !== occupants) throw new Error(`the rooms have ${rig.occupants.length} occupants, not ${occupants}`);
  for (const side of SIDES) await fillHistory(rig, side);
  const joiner = await rig.connect("joiner");

  // One unmeasured join per room first (JIT, caches).
  for (const side of SIDES) await joinOnce(rig, joiner, side);
  const samples: Sample[] = [];
  for (let i = 0; i < joins; i++) {
    for (const side of i % 2 === 0 ? SIDES : [...SIDES].reverse()) {
      const s = await joinOnce(rig, joiner, side);
      samples.push(s);
      options.log(`join: ${label(side)} ${fmt(s.totalMs)} ms (own presence after ${fmt(s.selfMs)} ms), ${s.presences} presences, ${s.history} history messages`);
    }
  }

  const per = (side: Side) => samples.filter((s) => s.side === side);
  const rows: Cell[][] = SIDES.map((side) => {
    const s = per(side);
    const totals = s.map((x) => x.totalMs);
    return [
      label(side),
      occupants,
      s.length,
      fmt(median(totals)),
      fmt(Math.min(...totals)),
      fmt(Math.max(...totals)),
      fmt(median(s.map((x) => x.selfMs))),
      [...new Set(s.map((x) => x.presences))].join("/"),
      [...new Set(s.map((x) => x.history))].join("/"),
    ];
  });
  const ours = median(per("ours").map((x) => x.totalMs));
  const theirs = median(per("prosody").map((x) => x.totalMs));
  return {
    tables: [
      {
        title: `Joining a room with ${occupants} occupants and ${HISTORY} history messages (join presence sent -> subject received)`,
        columns: ["MUC", "occupants", "joins", "median ms", "min ms", "max ms", "median ms to own presence", "presences received", "history received"],
        rows,
      },
      {
        title: "Joining, ours / Prosody mod_muc (<1 is better for us)",
        columns: ["occupants", "median join time ratio"],
        rows: [[occupants, fmt(ratio(ours, theirs), 2)]],
      },
    ],
    notes: [
      `the joiner asks for <history maxstanzas='${HISTORY}'/>; joins alternate ours / Prosody, after one unmeasured join per room`,
      "each join also broadcasts the newcomer's presence to every occupant (and its departure afterwards); the next join starts once all occupants got both",
    ],
  };
}
