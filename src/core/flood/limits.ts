// Flood limits on room presence (issue 15): entries, exits, nick changes and presence updates are
// counted per session and per bare JID in each room, before the engine does any work that costs
// O(occupants) (a roster, a broadcast). Entries, nick changes and rejoins beyond the allowance are
// refused with wait/policy-violation; exits are never refused (a user must be able to leave) but use up
// the allowance; presence updates beyond the session's allowance or the room's broadcast budget are
// coalesced: the latest one per session waits and is broadcast by the next tick (MucService.tick).
// Buckets refill continuously, like Prosody's util.throttle; time comes from the engine context.
import type { Element } from "@xmpp/xml";
import { NS } from "../../xmpp/stanza.js";
import type { Room } from "../room/types.js";
import { SharedMap } from "./shared-map.js";

export interface FloodLimits {
  /** Entries, exits, nick changes and rejoins per second one session may make in one room (DMUC_JOIN_RATE)... */
  readonly joinRate: number;
  /** ...and the burst above it (DMUC_JOIN_BURST); a bare JID's sessions together get twice both. */
  readonly joinBurst: number;
  /** Presence updates per second one session may have broadcast in one room (DMUC_PRESENCE_RATE)... */
  readonly presenceRate: number;
  /** ...and the burst above it (DMUC_PRESENCE_BURST); faster updates are coalesced, the latest wins. */
  readonly presenceBurst: number;
  /** Presence broadcasts per second in one room (DMUC_ROOM_PRESENCE_RATE); beyond it updates are coalesced. */
  readonly roomPresenceRate: number;
}

export const DEFAULT_FLOOD_LIMITS: FloodLimits = { joinRate: 1, joinBurst: 10, presenceRate: 1, presenceBurst: 5, roomPresenceRate: 50 };

/** How long one refusal answer covers: further refusals to the same session within it are dropped unanswered. */
export const REFUSAL_ANSWER_MS = 1_000;
/** A session refused again within this time is the same flood: audited once. */
export const REFUSAL_EPISODE_MS = 60_000;
/**
 * After a refusal, the same sender's stanzas of the same kind to the same room are dropped unread for
 * this long (no JID parsing, no room lookup): at most ten full checks a second per flooder. A message
 * bucket at its default rate gains one token per 100 ms, so a sender loses at most that token.
 */
export const MUTE_MS = 100;

/**
 * Refused messages answered per second and sender; beyond, they are dropped unanswered. A person who
 * types too fast gets every refusal (a client marks each message failed); a flooder gets ten a second,
 * not one error per stanza that its server must route back (bench/RESULTS.md "Floods": those answers
 * were half of the server's work during a message flood).
 */
export const MESSAGE_ANSWERS_PER_SECOND = 10;

/** The text of a message's wait/policy-violation, from the rate limit or while its flood is muted. */
export const SENDING_TOO_FAST = "You are sending too fast; wait a moment";
/** The text of an entry's, exit's or nick change's wait/policy-violation. */
export const TOO_MANY_ENTRIES = "Too many entries, exits or nick changes; wait a moment";

interface Bucket {
  readonly tokens: number;
  readonly at: number;
}

/** A presence update that waits for the room's budget (the latest of its session). */
export interface CoalescedPresence {
  readonly roomJid: string;
  readonly stanza: Element;
}

export interface FloodState {
  readonly buckets: SharedMap<Bucket>;
  /** `room NUL full JID` -> the latest presence update not broadcast yet. */
  readonly coalesced: SharedMap<CoalescedPresence>;
  /** Full JID -> when it was last answered a wait/policy-violation. */
  readonly refused: SharedMap<number>;
  /** muteKey() of a refused stanza -> until when its like are dropped unread. */
  readonly muted: SharedMap<number>;
  /** Full JID -> refused messages answered in the second that began at `since`. */
  readonly answers?: SharedMap<{ readonly since: number; readonly count: number }>;
}

export const emptyFloodState = (): FloodState => ({ buckets: SharedMap.empty(), coalesced: SharedMap.empty(), refused: SharedMap.empty(), muted: SharedMap.empty(), answers: SharedMap.empty() });

/** The flood state with one more refused message answered to `fullJid`, or null: its second's answers are used up. */
export function answerRefusedMessage(floods: FloodState, fullJid: string, now: number): FloodState | null {
  const answers = floods.answers ?? SharedMap.empty();
  const current = answers.get(fullJid);
  const fresh = !current || now - current.since >= 1_000;
  if (!fresh && current.count >= MESSAGE_ANSWERS_PER_SECOND) return null;
  return { ...floods, answers: answers.with(fullJid, fresh ? { since: now, count: 1 } : { since: current.since, count: current.count + 1 }) };
}

/**
 * What identifies "the same flood" from the raw attributes alone: sender, stanza name and the room's
 * address as sent. Null for what is never muted: IQs, exits and errors.
 */
export function muteKey(stanza: Element): string | null {
  if (stanza.name === "iq") return null;
  const type = stanza.attrs.type;
  if (type === "unavailable" || type === "error") return null;
  const to = String(stanza.attrs.to ?? "");
  const slash = to.indexOf("/");
  return `${stanza.attrs.from}\u0000${stanza.name}\u0000${slash === -1 ? to : to.slice(0, slash)}`;
}

export type FloodVerdict = "pass" | "refuse" | "coalesce";

export interface RoomPresence {
  readonly roomJid: string;
  /** Who is in the room under which nick (a DMUC2 replica passes its copy's local sessions). */
  readonly room: Pick<Room, "sessionNicks"> | undefined;
  readonly stanza: Element;
  readonly fromFull: string;
  readonly fromBare: string;
  /** The resource of `to`, as sent. */
  readonly nick: string | null;
  readonly now: number;
}

const coalescedKey = (roomJid: string, fullJid: string) => `${roomJid}\u0000${fullJid}`;

function refill(bucket: Bucket | undefined, now: number, rate: number, burst: number): number {
  if (!bucket) return burst;
  return Math.min(burst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * rate);
}

interface Take {
  key: string;
  rate: number;
  burst: number;
}

/** Takes one token from every bucket, or (all=true) from none when one is empty; soft takes never fail. */
function take(buckets: SharedMap<Bucket>, takes: Take[], now: number, all: boolean): SharedMap<Bucket> | null {
  const levels = takes.map((t) => refill(buckets.get(t.key), now, t.rate, t.burst));
  if (all && levels.some((level) => level < 1)) return null;
  let next = buckets;
  takes.forEach((t, i) => (next = next.with(t.key, { tokens: Math.max(0, levels[i]! - 1), at: now })));
  return next;
}

/**
 * Classifies a stanza to a room and takes its tokens. O(1) in the room's size: it only looks the
 * session up. Returns the verdict and the flood state to keep (unchanged for stanzas it does not count).
 */
export function admitPresence(floods: FloodState, limits: FloodLimits, p: RoomPresence): { verdict: FloodVerdict; floods: FloodState } {
  const { stanza, room, roomJid, fromFull, fromBare, now } = p;
  if (stanza.name !== "presence") return { verdict: "pass", floods };
  const type = stanza.attrs.type;
  if (type !== undefined && type !== "unavailable") return { verdict: "pass", floods };
  const current = room?.sessionNicks.get(fromFull);
  const session: Take = { key: `j\u0000${roomJid}\u0000${fromFull}`, rate: limits.joinRate, burst: limits.joinBurst };
  const user: Take = { key: `u\u0000${roomJid}\u0000${fromBare}`, rate: limits.joinRate * 2, burst: limits.joinBurst * 2 };
  const roomBudget: Take = { key: `r\u0000${roomJid}`, rate: limits.roomPresenceRate, burst: limits.roomPresenceRate };

  if (type === "unavailable") {
    if (current === undefined) return { verdict: "pass", floods };
    // An exit is never refused; what was coalesced for the session is gone with it.
    const buckets = take(floods.buckets, [session, user, roomBudget], now, false)!;
    return { verdict: "pass", floods: { ...floods, buckets, coalesced: floods.coalesced.without(coalescedKey(roomJid, fromFull)) } };
  }
  if (p.nick === null) return { verdict: "pass", floods }; // the engine answers jid-malformed

  const update = current !== undefined && current === p.nick && !stanza.getChild("x", NS.MUC);
  if (!update) {
    // An entry, a nick change or a rejoin (<x xmlns=muc/> again): each sends O(occupants) stanzas.
    const buckets = take(floods.buckets, [session, user], now, true);
    if (!buckets) return { verdict: "refuse", floods };
    // A coalesced update addressed to the old nick must not come back after a nick change.
    const coalesced = floods.coalesced.without(coalescedKey(roomJid, fromFull));
    return { verdict: "pass", floods: { ...floods, buckets: take(buckets, [roomBudget], now, false)!, coalesced } };
  }
  const own: Take = { key: `p\u0000${roomJid}\u0000${fromFull}`, rate: limits.presenceRate, burst: limits.presenceBurst };
  const key = coalescedKey(roomJid, fromFull);
  const buckets = floods.coalesced.get(key) ? null : take(floods.buckets, [own, roomBudget], now, true);
  if (!buckets) return { verdict: "coalesce", floods: { ...floods, coalesced: floods.coalesced.with(key, { roomJid, stanza }) } };
  return { verdict: "pass", floods: { ...floods, buckets } };
}

/**
 * A message or IQ to a room: one token from the user's bucket for that room (rate and burst of
 * DMUC_RATE_LIMIT and DMUC_RATE_BURST). Rooms of this service keep that bucket in the room
 * (plugins/limits.ts); a DMUC2 replica keeps its users' buckets for remote rooms here, so that it
 * refuses a flood before relaying it (pruned when idle longer than the join buckets refill, at the
 * defaults well after it is full again). Null when the bucket is empty.
 */
export function admitMessage(floods: FloodState, rate: { ratePerSecond: number; burst: number }, roomJid: string, fromBare: string, now: number): FloodState | null {
  const buckets = take(floods.buckets, [{ key: `m\u0000${roomJid}\u0000${fromBare}`, rate: rate.ratePerSecond, burst: rate.burst }], now, true);
  return buckets ? { ...floods, buckets } : null;
}

/**
 * The coalesced presence updates whose session and room have a token again, taken out of the state
 * (with their tokens); the shell's tick hands them to the engine.
 */
export function releaseCoalesced(floods: FloodState, limits: FloodLimits, now: number): { floods: FloodState; ready: CoalescedPresence[] } {
  if (floods.coalesced.size === 0) return { floods, ready: [] };
  let { buckets, coalesced } = floods;
  const ready: CoalescedPresence[] = [];
  for (const [key, pending] of floods.coalesced.entries()) {
    const fullJid = key.slice(pending.roomJid.length + 1);
    const own: Take = { key: `p\u0000${pending.roomJid}\u0000${fullJid}`, rate: limits.presenceRate, burst: limits.presenceBurst };
    const roomBudget: Take = { key: `r\u0000${pending.roomJid}`, rate: limits.roomPresenceRate, burst: limits.roomPresenceRate };
    const taken = take(buckets, [own, roomBudget], now, true);
    if (!taken) continue;
    buckets = taken;
    coalesced = coalesced.without(key);
    ready.push(pending);
  }
  return { floods: { ...floods, buckets, coalesced }, ready };
}

/**
 * Whether a wait/policy-violation for `fullJid` is answered (at most one per REFUSAL_ANSWER_MS, so that
 * refusing a flood costs almost nothing and does not flood the sender's server back) and audited (the
 * first of an episode).
 */
export function noteRefusal(floods: FloodState, fullJid: string, stanza: Element, now: number): { answer: boolean; audit: boolean; floods: FloodState } {
  const key = muteKey(stanza);
  if (key !== null) floods = { ...floods, muted: floods.muted.with(key, now + MUTE_MS) };
  const last = floods.refused.get(fullJid);
  if (last !== undefined && now - last < REFUSAL_ANSWER_MS) return { answer: false, audit: false, floods };
  return { answer: true, audit: last === undefined || now - last >= REFUSAL_EPISODE_MS, floods: { ...floods, refused: floods.refused.with(fullJid, now) } };
}

/** Whether the stanza is one of a flood just refused (see MUTE_MS): then it is dropped unread. */
export function isMuted(floods: FloodState, stanza: Element, now: number): boolean {
  if (floods.muted.size === 0) return false;
  const key = muteKey(stanza);
  if (key === null) return false;
  const until = floods.muted.get(key);
  return until !== undefined && now < until;
}

/** Forgets full buckets and old refusals, so that the state holds only recent senders (on each tick). */
export function pruneFloods(floods: FloodState, limits: FloodLimits, now: number): FloodState {
  // A bucket untouched for longer than the slowest refill from empty to full is full again.
  const idleMs = Math.max(limits.joinBurst / limits.joinRate, limits.presenceBurst / limits.presenceRate, 1) * 1000;
  const buckets = floods.buckets.filter((b) => now - b.at < idleMs);
  const refused = floods.refused.filter((at) => now - at < REFUSAL_EPISODE_MS);
  const muted = floods.muted.filter((until) => now < until);
  const answers = floods.answers?.filter((a) => now - a.since < 1_000);
  const same = buckets === floods.buckets && refused === floods.refused && muted === floods.muted && answers === floods.answers;
  return same ? floods : { ...floods, buckets, refused, muted, ...(answers && { answers }) };
}
