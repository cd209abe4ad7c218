// Shared pieces of the DMUC2 replica role (docs/PROTOCOL.md): state access, refusals, and the IQs to
// the server module on the users' server. Pure: time and ids come from the EngineContext.
import xml, { type Element } from "@xmpp/xml";
import { audit, logEffect, send, store, type Effect } from "../effects.js";
import type { EngineContext, ServiceSettings, ServiceState } from "../service.js";
import { errorReply, mayAnswerWithError, type StanzaErrorSpec } from "../../xmpp/stanza.js";
import type { Jid } from "../../xmpp/jid.js";
import type { PendingQuery, ReplicatedRoom } from "./state.js";
import { buildDivert } from "./wire.js";
import { DEFAULT_LINK_TIMERS, type LinkTimers } from "./link/channel.js";

/** The shortest keepalive a replica accepts (seconds). */
export const MIN_KEEPALIVE_SECONDS = 10;
/** How long the server module has to answer a <directed/> query before the ENTER is refused (ms). */
// Well within the primary's link timeout (5 s by default), which the ENTER's answer must beat.
export const DIRECTED_TIMEOUT_MS = 3_000;
/** How long a <divert/>/<undivert/> answer is waited for, only to log a failure (ms). */
export const MODULE_IQ_TIMEOUT_MS = 60_000;

export interface ReplicaOptions {
  /** The most history messages the replica keeps per room and sends on entering. */
  maxHistoryMessages: number;
  /** A submission unacknowledged (or a probe unanswered) this long splits the link (ms); 5 s by default. */
  linkTimeoutMs?: number;
  /** How often a split room is first probed (ms; then less often); 5 s by default. */
  splitPingMs?: number;
  /**
   * Where the users' server has no mod_dmuc_replica (ejabberd...), accept the ENTER of the primary we
   * registered with without checking the user's directed presence (DMUC_TRUST_PRIMARY_ENTER): broadcast
   * fan-out then works without the module, at the price of trusting that primary's word.
   */
  trustPrimaryEnter?: boolean;
  /**
   * When a room's link splits, show the occupants behind it (the non-local ones) as away to local
   * users, and their real presence again after the netjoin (DMUC_SPLIT_AWAY; default true).
   */
  splitAway?: boolean;
  /**
   * Let local users enter a split room (provisionally: the primary decides at the netjoin); when false,
   * entering is refused with wait/service-unavailable "netsplit" (default false).
   */
  splitEntry?: boolean;
}

/** The link timers of a room: its negotiated keepalive, the operator's timeout and probe interval. */
export function linkTimers(room: ReplicatedRoom, options: ReplicaOptions): LinkTimers {
  return {
    ...DEFAULT_LINK_TIMERS,
    keepaliveMs: room.keepaliveSeconds * 1000,
    splitAfterMs: options.linkTimeoutMs ?? DEFAULT_LINK_TIMERS.splitAfterMs,
    probeMs: options.splitPingMs ?? DEFAULT_LINK_TIMERS.probeMs,
  };
}

/** What every replica handler works on: a stanza's request or a timer tick. */
export interface Work {
  state: ServiceState;
  readonly settings: ServiceSettings;
  readonly context: EngineContext;
  readonly effects: Effect[];
}

export const FORBIDDEN: StanzaErrorSpec = { type: "auth", condition: "forbidden" };

export function isLocalUser(settings: ServiceSettings, jid: Jid | null): boolean {
  return !!jid && !!settings.localDomain && jid.local !== null && jid.domain === settings.localDomain;
}

export function getRoom(work: Work, roomJid: string): ReplicatedRoom | undefined {
  return work.state.dmuc.replicated.get(roomJid);
}

export function putRoom(work: Work, room: ReplicatedRoom): void {
  const replicated = new Map(work.state.dmuc.replicated).set(room.roomJid, room);
  work.state = { ...work.state, dmuc: { ...work.state.dmuc, replicated } };
}

export function setPending(work: Work, id: string, query: PendingQuery | null): void {
  const pending = new Map(work.state.dmuc.pending);
  if (query) pending.set(id, query);
  else pending.delete(id);
  work.state = { ...work.state, dmuc: { ...work.state.dmuc, pending } };
}

/** Marks traffic on a room's link: `heard` from the primary, `sent` to it. */
export function touch(work: Work, roomJid: string, what: { heard?: boolean; sent?: boolean }): void {
  const room = getRoom(work, roomJid);
  if (!room) return;
  const now = work.context.now.getTime();
  putRoom(work, {
    ...room,
    lastHeard: what.heard ? now : room.lastHeard,
    lastSent: what.sent ? now : room.lastSent,
  });
}

/** Persists a replicated room's settings and subject (a rooms row with role 'replica'). */
export function saveReplica(work: Work, room: ReplicatedRoom): void {
  work.effects.push(
    store({
      op: "replica.save",
      roomJid: room.roomJid,
      primaryJid: room.primaryJid,
      config: { whois: room.whois, presenceBroadcast: [...room.presenceBroadcast], keepaliveSeconds: room.keepaliveSeconds, historyLimit: room.historyLimit, splitChat: room.splitChat },
      subject: room.subject,
    }),
  );
}

/**
 * Every refusal is answered (when the stanza may be), logged as dmuc.refused and audited. `from`
 * replaces the error's sender when the refused stanza was addressed to somebody else's JID (a
 * diverted stanza): a component may only send from its own domain.
 */
export function refuse(
  work: Work,
  stanza: Element,
  reason: string,
  options: { roomJid?: string | null; spec?: StanzaErrorSpec; from?: string } = {},
): true {
  const spec = options.spec ?? FORBIDDEN;
  const fields = { reason, name: stanza.name, type: stanza.attrs.type ?? null, from: stanza.attrs.from, to: stanza.attrs.to, condition: spec.condition };
  work.effects.push(logEffect("warn", "dmuc.refused", { room: options.roomJid ?? null, ...fields }));
  work.effects.push(audit({ kind: "dmuc.refused", roomJid: options.roomJid ?? null, actorJid: stanza.attrs.from ?? null, details: fields }));
  if (mayAnswerWithError(stanza)) {
    const reply = errorReply(stanza, { ...spec, text: spec.text ?? reason });
    if (options.from) reply.attrs.from = options.from;
    work.effects.push(send(reply));
  }
  return true;
}

/** An IQ from the replica to the server module (the bare local domain). */
export function moduleIq(work: Work, type: "get" | "set", payload: Element, id = work.context.newId()): Element {
  return xml("iq", { type, id, from: work.settings.domain, to: work.settings.localDomain }, payload);
}

/** Sends <divert/> or <undivert/> for a room; the answer is only logged when it is an error. */
export function sendDivert(work: Work, roomJid: string, on: boolean): void {
  const id = work.context.newId();
  setPending(work, id, { kind: "replica-iq", roomJid, sent: work.context.now.getTime() });
  work.effects.push(send(moduleIq(work, "set", buildDivert(roomJid, on), id)));
  work.effects.push(logEffect("info", on ? "dmuc.divert" : "dmuc.undivert", { room: roomJid }));
}
