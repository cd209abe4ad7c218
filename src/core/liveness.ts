// Ghost occupants (issue 10): the room verifies that its occupants' sessions still exist, with an
// XEP-0199 ping from the room to each session's full JID (as XEP-0410 has clients ping themselves).
// A server that restarted, or a session that ended while this gateway was away, leaves occupants that
// nobody will ever announce as gone; their server answers the ping with an error (RFC 6120 §10.5.4:
// service-unavailable for a full JID that has no session) and the room removes them as Prosody's MUC
// removes an occupant whose client bounced a stanza (status 333, "Kicked: service unavailable").
//
// When: every session once after each (re)connection of the component (which includes the occupants
// restored at start), then each session once per interval. Pure: time comes with the tick.
//
// A DMUC2 replica verifies the local sessions it serves in remote rooms the same way, pinging them from
// its own address (the answer stays on the users' server); a gone one is reported to the primary as
// the bounce it amounts to (plugins/liveness.ts), and the primary removes it as it would any.
import xml, { type Element } from "@xmpp/xml";
import { logEffect, send, type Effect } from "./effects.js";
import type { ServiceState } from "./service.js";
import { NS } from "../xmpp/stanza.js";

/** A ping sent to one session of one room. */
export interface LivenessCheck {
  readonly roomJid: string;
  /** The session's full JID. */
  readonly jid: string;
  readonly sentAt: number;
}

export interface SessionRef {
  readonly roomJid: string;
  readonly jid: string;
  /** Set for a session this gateway serves as a DMUC2 replica (the room is remote): the replica's address, which pings it. */
  readonly replica?: string;
}

export interface LivenessState {
  /** Pings not answered yet, by IQ id. */
  readonly pending: ReadonlyMap<string, LivenessCheck>;
  /** Sessions waiting for their ping, oldest first (everyone after a reconnection). */
  readonly queue: readonly SessionRef[];
  /** Up to when (ms) the periodic schedule has been applied. */
  readonly sweptAt: number | null;
}

export const emptyLivenessState = (): LivenessState => ({ pending: new Map(), queue: [], sweptAt: null });

export interface LivenessOptions {
  /** Each session is pinged once per this many seconds; 0 turns the periodic check off. */
  intervalSeconds: number;
  /** A ping unanswered after this long counts as a session that is gone. */
  timeoutMs: number;
  /** Pings in flight at once (a reconnection with many occupants is spread over several ticks). */
  maxInFlight: number;
}

export const DEFAULT_LIVENESS_OPTIONS: LivenessOptions = { intervalSeconds: 900, timeoutMs: 60_000, maxInFlight: 200 };

/**
 * Error conditions that mean the addressee is gone (Prosody's muc/util.lib.lua kickable errors).
 * An error without a defined condition counts too, as in Prosody.
 */
const GONE_CONDITIONS = new Set([
  "gone",
  "internal-server-error",
  "item-not-found",
  "jid-malformed",
  "recipient-unavailable",
  "redirect",
  "remote-server-not-found",
  "remote-server-timeout",
  "service-unavailable",
]);

export function errorConditionOf(stanza: Element): string | undefined {
  return stanza
    .getChild("error")
    ?.getChildElements()
    .find((c) => c.attrs.xmlns === NS.STANZAS && c.name !== "text")?.name;
}

/** Whether an error stanza from a session says that the session is gone. */
export function meansGone(stanza: Element): boolean {
  const condition = errorConditionOf(stanza);
  return condition === undefined || GONE_CONDITIONS.has(condition);
}

export function livenessOf(state: ServiceState): LivenessState {
  return state.liveness ?? emptyLivenessState();
}

/** FNV-1a of a session: spreads the periodic pings over the interval. */
function slotOf(key: string, slots: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % slots;
}

/**
 * The sessions this gateway verifies: its rooms' occupants except those a DMUC2 replica serves (their
 * liveness is the replica's), and, as a replica (`replica`: its address), the local sessions it serves
 * in remote rooms.
 */
function* checkedSessions(state: ServiceState, replica: string | undefined): Generator<SessionRef> {
  for (const room of state.rooms.values()) {
    const links = state.dmuc.links.get(room.jid);
    for (const occupant of room.occupants.values()) {
      for (const jid of occupant.sessions.keys()) {
        if (links && [...links.values()].some((link) => link.members.has(jid))) continue;
        yield { roomJid: room.jid, jid };
      }
    }
  }
  if (replica === undefined) return;
  for (const room of state.dmuc.replicated.values()) {
    for (const jid of room.local.keys()) yield { roomJid: room.roomJid, jid, replica };
  }
}

/** Whether the session is still one to verify (it may have left while waiting for its ping). */
function stillThere(state: ServiceState, ref: SessionRef): boolean {
  if (ref.replica === undefined) return !!state.rooms.get(ref.roomJid)?.sessionNicks.has(ref.jid);
  return !!state.dmuc.replicated.get(ref.roomJid)?.local.has(ref.jid);
}

/**
 * After the component (re)connected: every session is verified again, pings in flight are void.
 * `replica`: this gateway's address when it is a DMUC2 replica.
 */
export function verifyEveryone(state: ServiceState, replica?: string): ServiceState {
  return { ...state, liveness: { ...livenessOf(state), pending: new Map(), queue: [...checkedSessions(state, replica)] } };
}

/** Adds one session to the queue (an IQ bounce hints that it may be gone). */
export function verifySession(state: ServiceState, ref: SessionRef): ServiceState {
  const liveness = livenessOf(state);
  const known = liveness.queue.some((q) => q.roomJid === ref.roomJid && q.jid === ref.jid) || [...liveness.pending.values()].some((p) => p.roomJid === ref.roomJid && p.jid === ref.jid);
  return known ? state : { ...state, liveness: { ...liveness, queue: [...liveness.queue, ref] } };
}

export function buildRoomPing(ref: SessionRef, id: string): Element {
  return xml("iq", { type: "get", id, from: ref.replica ?? ref.roomJid, to: ref.jid }, xml("ping", { xmlns: NS.PING }));
}

export interface TickResult {
  state: ServiceState;
  /** Sessions whose ping was not answered in time. */
  timedOut: LivenessCheck[];
}

/**
 * One timer tick: queues the sessions whose periodic turn came, sends pings up to the in-flight limit
 * and reports the pings that timed out (the caller removes those sessions). `replica`: this gateway's
 * address when it is a DMUC2 replica.
 */
export function livenessTick(state: ServiceState, now: number, newId: () => string, options: LivenessOptions, effects: Effect[], replica?: string): TickResult {
  let liveness = livenessOf(state);
  const timedOut: LivenessCheck[] = [];
  let pending = liveness.pending;
  for (const [id, check] of liveness.pending) {
    if (now - check.sentAt < options.timeoutMs) continue;
    if (pending === liveness.pending) pending = new Map(pending);
    (pending as Map<string, LivenessCheck>).delete(id);
    timedOut.push(check);
  }

  let queue = liveness.queue;
  let sweptAt = liveness.sweptAt ?? now;
  if (options.intervalSeconds > 0) {
    const slots = options.intervalSeconds;
    const from = Math.floor(sweptAt / 1000);
    const to = Math.floor(now / 1000);
    if (to > from) {
      // The seconds passed since the last tick, at most one whole interval.
      const due = new Set<number>();
      for (let s = Math.max(from + 1, to - slots + 1); s <= to; s++) due.add(s % slots);
      const waiting = new Set([...queue, ...pending.values()].map((r) => `${r.roomJid}\n${r.jid}`));
      const added: SessionRef[] = [];
      for (const ref of checkedSessions(state, replica)) {
        const key = `${ref.roomJid}\n${ref.jid}`;
        if (due.has(slotOf(key, slots)) && !waiting.has(key)) added.push(ref);
      }
      if (added.length > 0) queue = [...queue, ...added];
    }
    sweptAt = now;
  }

  const room = Math.max(0, options.maxInFlight - pending.size);
  if (room > 0 && queue.length > 0) {
    const batch = queue.slice(0, room);
    queue = queue.slice(batch.length);
    const next = new Map(pending);
    for (const ref of batch) {
      // A session that left meanwhile needs no ping.
      if (!stillThere(state, ref)) continue;
      const id = `live-${newId()}`;
      next.set(id, { ...ref, sentAt: now });
      effects.push(send(buildRoomPing(ref, id)));
    }
    pending = next;
  }
  if (timedOut.length > 0) effects.push(logEffect("info", "liveness.timeouts", { sessions: timedOut.map((c) => `${c.roomJid} ${c.jid}`) }));

  liveness = { pending, queue, sweptAt };
  return { state: { ...state, liveness }, timedOut };
}

/** The check an IQ answer belongs to (same id, from the session pinged), if any. */
export function checkAnswered(state: ServiceState, stanza: Element, from: string): { id: string; check: LivenessCheck } | undefined {
  const id = stanza.attrs.id;
  if (stanza.name !== "iq" || (stanza.attrs.type !== "result" && stanza.attrs.type !== "error") || !id) return undefined;
  const check = livenessOf(state).pending.get(id);
  return check && check.jid === from ? { id, check } : undefined;
}

export function withoutCheck(state: ServiceState, id: string): ServiceState {
  const liveness = livenessOf(state);
  const pending = new Map(liveness.pending);
  pending.delete(id);
  return { ...state, liveness: { ...liveness, pending } };
}
