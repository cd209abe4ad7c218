// Netsplit and netjoin on the replica (docs/PROTOCOL.md "Netsplit", "Netjoin"; XEP-0282 §Netsplit).
// A room's link is split when the room's JID bounces a stanza, when the server module says a relay
// could not reach the room's server, or when a keepalive ping stays unanswered for 30 s. While split,
// the replica relays nothing and serves its local users itself: presence changes and departures,
// groupchat among local users (each message gets an origin-id and is queued for netjoin) and private
// messages between them; entering is refused unless splitEntry is on, local moderators may kick local
// occupants, and remote occupants are shown away (replica-split-extras.ts). Only the primary's <netjoin/> ends a split: the replica
// takes the primary's roster, history and subject, and answers with its sessions and queued messages.
import xml, { type Element } from "@xmpp/xml";
import { cloneElement } from "../../xmpp/element.js";
import { audit, logEffect, send } from "../effects.js";
import { subjectMessage } from "../room/history.js";
import { iqResult, NS, type StanzaErrorSpec } from "../../xmpp/stanza.js";
import type { Jid } from "../../xmpp/jid.js";
import type { ReplicatedRoom, SplitMessage } from "./state.js";
import { buildNetjoinAnswer, buildRelay, parseNetjoin } from "./wire.js";
import { cleaned, dropLocal, onPresenceBroadcast, presenceForSelf } from "./replica-fanout.js";
import { getRoom, moduleIq, putRoom, refuse, saveReplica, touch, type ReplicaOptions, type Work } from "./replica-util.js";
import { takeMissed } from "./replica-catchup.js";
import { keepEntered, restoreAway, showAway, splitEnter, splitError, splitKick } from "./replica-split-extras.js";

/** Error conditions of a bounce that mean the room's server cannot be reached. */
export const SPLIT_CONDITIONS: ReadonlySet<string> = new Set(["remote-server-not-found", "remote-server-timeout", "service-unavailable"]);
/** The most origin-ids kept while waiting for their echo. */
const MAX_ECHOES = 500;

const NETSPLIT = "netsplit";
const ENTER_REFUSED: StanzaErrorSpec = { type: "wait", condition: "service-unavailable", text: NETSPLIT };
const UNAVAILABLE: StanzaErrorSpec = { type: "wait", condition: "recipient-unavailable", text: NETSPLIT };
const NO_VOICE: StanzaErrorSpec = { type: "auth", condition: "forbidden", text: "You have no voice in this room" };
const NOT_IN_ROOM: StanzaErrorSpec = { type: "modify", condition: "not-acceptable", text: "You are not currently connected to this chat" };
const NO_NICK: StanzaErrorSpec = { type: "cancel", condition: "item-not-found", text: "No occupant with that nickname" };

/** The defined condition of an error stanza (RFC 6120 §8.3.3), or null. */
export function errorCondition(stanza: Element): string | null {
  const error = stanza.getChild("error");
  return error?.getChildElements().find((c) => c.attrs.xmlns === NS.STANZAS && c.name !== "text")?.name ?? error?.getChildElements()[0]?.name ?? null;
}

export const isSplit = (room: ReplicatedRoom): boolean => room.splitSince !== null;

/**
 * Marks a room's link split (once): logged and audited; the tick then pings the room every 5 s. With
 * `away`, local users see the occupants behind the link as away (ReplicaOptions.splitAway).
 */
export function markSplit(work: Work, room: ReplicatedRoom, reason: string, condition: string | null = null, away = true): void {
  if (isSplit(room)) return;
  const now = work.context.now.getTime();
  const split: ReplicatedRoom = { ...room, splitSince: now, splitAway: new Set(), splitKicks: [], splitEntered: new Set() };
  putRoom(work, away ? showAway(work, split) : split);
  work.effects.push(logEffect("warn", "dmuc.link_split", { room: room.roomJid, reason, condition }));
  work.effects.push(audit({ kind: "link.split", roomJid: room.roomJid, actorJid: room.primaryJid, details: { reason, condition } }));
}

/**
 * Relays a local user's stanza to a room we do not replicate through the server module, which sends it
 * on over s2s in the user's name (rooms we replicate get submissions instead: replica-link.ts).
 */
export function relayToPrimary(work: Work, stanza: Element): void {
  work.effects.push(send(moduleIq(work, "set", buildRelay(stanza))));
}

// ---------------------------------------------------------------------------------------------------
// Serving local users during a split

/** Client elements the room asserts itself (XEP-0359 §3, XEP-0421 §4, the room's own delay). */
function isRoomAsserted(child: Element, roomJid: string): boolean {
  const ns = child.attrs.xmlns;
  return (
    (child.name === "stanza-id" && ns === NS.STANZA_ID && child.attrs.by === roomJid) ||
    (child.name === "occupant-id" && ns === NS.OCCUPANT_ID) ||
    (child.name === "delay" && ns === NS.DELAY) ||
    (child.name === "x" && (ns === NS.MUC || ns === NS.MUC_USER))
  );
}

function payload(stanza: Element, roomJid: string): Element[] {
  return stanza.children.filter((c): c is Element => typeof c !== "string" && !isRoomAsserted(c, roomJid)).map(cloneElement);
}

/** The muc#user items the room showed for an occupant, without per-event details (nick, actor, reason). */
function rosterItems(presence: Element | undefined, role?: string): Element[] {
  const items = presence?.getChild("x", NS.MUC_USER)?.getChildren("item") ?? [];
  return items.map((i) => xml("item", { affiliation: i.attrs.affiliation, role: role ?? i.attrs.role, jid: i.attrs.jid }));
}

function occupantIdOf(presence: Element | undefined): Element | null {
  const id = presence?.getChild("occupant-id", NS.OCCUPANT_ID);
  return id ? cloneElement(id) : null;
}

/** The room's presence of a local occupant, rebuilt here from what the user sent and the roster's item. */
function occupantPresence(room: ReplicatedRoom, nick: string, source: Element, unavailable: boolean): Element {
  const known = room.roster.get(nick);
  return xml(
    "presence",
    { from: `${room.roomJid}/${nick}`, type: unavailable ? "unavailable" : undefined },
    ...payload(source, room.roomJid),
    xml("x", { xmlns: NS.MUC_USER }, ...rosterItems(known, unavailable ? "none" : undefined)),
    occupantIdOf(known),
  );
}

/** The unavailable presence of an occupant the roster lists (gone from the primary's roster). */
function gonePresence(room: ReplicatedRoom, nick: string): Element {
  const known = room.roster.get(nick);
  return xml("presence", { from: `${room.roomJid}/${nick}`, type: "unavailable" }, xml("x", { xmlns: NS.MUC_USER }, ...rosterItems(known, "none")), occupantIdOf(known));
}

/**
 * A local user's stanza to a split room (diverted by the server module): served here, never relayed.
 * `from` is a user of our domain (checked by the caller).
 */
export function onSplitDiverted(work: Work, room: ReplicatedRoom, stanza: Element, to: Jid, options: ReplicaOptions): void {
  const session = stanza.attrs.from ?? "";
  const nick = room.local.get(session);
  const type = stanza.attrs.type;
  if (type === "error" || (stanza.name === "iq" && type === "result")) {
    work.effects.push(logEffect("debug", "dmuc.split_dropped", { room: room.roomJid, name: stanza.name, type, from: session }));
    return;
  }
  if (stanza.name === "presence") return splitPresence(work, room, stanza, session, nick, to, options);
  if (stanza.name === "iq" && to.resource === null && splitKick(work, room, stanza, session, nick)) return;
  if (stanza.name === "message" && type === "groupchat" && to.resource === null) return splitGroupchat(work, room, stanza, session, nick);
  if (stanza.name === "message" && type !== "groupchat" && to.resource !== null) return splitPrivate(work, room, stanza, nick, to.resource);
  splitError(work, room, stanza, UNAVAILABLE, "not served during a netsplit");
}

function splitPresence(work: Work, room: ReplicatedRoom, stanza: Element, session: string, nick: string | undefined, to: Jid, options: ReplicaOptions): void {
  const type = stanza.attrs.type;
  if (nick === undefined) {
    // Entering is the primary's decision (XEP-0282's "DANGER"): refused until the netjoin, unless
    // splitEntry lets local users in provisionally.
    if (type === undefined) splitEnter(work, room, stanza, session, to, options, ENTER_REFUSED);
    else if (type !== "unavailable") splitError(work, room, stanza, UNAVAILABLE, "presence from a non-occupant during a netsplit");
    return;
  }
  if (type === "unavailable") {
    const others = [...room.local].filter(([s, n]) => n === nick && s !== session);
    const splitPresences = new Map(room.splitPresences);
    splitPresences.delete(session);
    const splitLeft = new Set(room.splitLeft ?? []).add(session);
    if (others.length > 0) {
      // Another session of the occupant stays: only this one leaves.
      work.effects.push(send(presenceForSelf(occupantPresence(room, nick, stanza, true), session)));
      const local = new Map(room.local);
      local.delete(session);
      putRoom(work, { ...room, local, splitPresences, splitLeft });
    } else {
      onPresenceBroadcast(work, room, occupantPresence(room, nick, stanza, true), nick);
      const after = getRoom(work, room.roomJid)!;
      putRoom(work, { ...after, splitPresences, splitGone: new Set(after.splitGone).add(nick), splitLeft });
    }
    work.effects.push(logEffect("info", "dmuc.split_left", { room: room.roomJid, session, nick }));
    return;
  }
  if (type !== undefined || to.resource !== nick) {
    // Subscriptions, probes and nick changes wait for the primary.
    splitError(work, room, stanza, UNAVAILABLE, to.resource !== nick ? "nick change during a netsplit" : "presence type not served during a netsplit");
    return;
  }
  onPresenceBroadcast(work, room, occupantPresence(room, nick, stanza, false), nick);
  const after = getRoom(work, room.roomJid)!;
  putRoom(work, { ...after, splitPresences: new Map(after.splitPresences).set(session, cloneElement(stanza)) });
}

function withTo(stanza: Element, to: string): Element {
  const copy = cloneElement(stanza);
  copy.attrs.to = to;
  return copy;
}

function roleOfNick(room: ReplicatedRoom, nick: string): string {
  return room.roster.get(nick)?.getChild("x", NS.MUC_USER)?.getChild("item")?.attrs.role ?? "none";
}

/**
 * The local copy of a local user's groupchat message, as the room would send it, without a stanza-id
 * (the primary assigns those when it takes the message).
 */
export function localGroupchat(room: ReplicatedRoom, stanza: Element, nick: string): Element {
  return xml(
    "message",
    { type: "groupchat", from: `${room.roomJid}/${nick}`, id: stanza.attrs.id, "xml:lang": stanza.attrs["xml:lang"] },
    ...payload(stanza, room.roomJid),
    occupantIdOf(room.roster.get(nick)),
  );
}

function splitGroupchat(work: Work, room: ReplicatedRoom, stanza: Element, session: string, nick: string | undefined): void {
  if (nick === undefined) return splitError(work, room, stanza, NOT_IN_ROOM, "groupchat from a non-occupant during a netsplit");
  if (!room.splitChat) return splitError(work, room, stanza, UNAVAILABLE, "the room does not allow chat during a netsplit");
  const role = roleOfNick(room, nick);
  if (role === "visitor" || role === "none") return splitError(work, room, stanza, NO_VOICE, "no voice");
  if (stanza.getChild("subject") && !stanza.getChild("body")) return splitError(work, room, stanza, UNAVAILABLE, "subject change during a netsplit");
  const body = payload(stanza, room.roomJid);
  let originId = body.find((c) => c.is("origin-id", NS.STANZA_ID))?.attrs.id;
  if (!originId) {
    originId = work.context.newId();
    body.push(xml("origin-id", { xmlns: NS.STANZA_ID, id: originId }));
  }
  const local = localGroupchat(room, xml("message", { id: stanza.attrs.id, "xml:lang": stanza.attrs["xml:lang"] }, ...body), nick);
  for (const [other] of room.local) work.effects.push(send(withTo(local, other)));
  let next = room;
  if (stanza.getChild("body")) {
    const queued: SplitMessage = {
      session,
      at: work.context.now,
      stanza: xml("message", { from: session, to: room.roomJid, type: "groupchat", id: stanza.attrs.id, "xml:lang": stanza.attrs["xml:lang"] }, ...body),
    };
    next = { ...room, splitQueue: [...room.splitQueue, queued] };
  }
  putRoom(work, next);
  work.effects.push(logEffect("debug", "dmuc.split_chat", { room: room.roomJid, nick, originId, queued: next.splitQueue.length }));
}

function splitPrivate(work: Work, room: ReplicatedRoom, stanza: Element, nick: string | undefined, target: string): void {
  if (nick === undefined) return splitError(work, room, stanza, NOT_IN_ROOM, "private message from a non-occupant during a netsplit");
  if (!room.splitChat) return splitError(work, room, stanza, UNAVAILABLE, "the room does not allow chat during a netsplit");
  if (!room.roster.has(target)) return splitError(work, room, stanza, NO_NICK, "no such nick");
  const sessions = [...room.local].filter(([, n]) => n === target).map(([s]) => s);
  if (sessions.length === 0) return splitError(work, room, stanza, UNAVAILABLE, "private message to a remote occupant during a netsplit");
  const out = xml(
    "message",
    { type: stanza.attrs.type, id: stanza.attrs.id, from: `${room.roomJid}/${nick}`, "xml:lang": stanza.attrs["xml:lang"] },
    ...stanza.children.filter((c): c is Element => typeof c !== "string" && !c.is("x", NS.MUC_USER)).map(cloneElement),
    // Marks the message as a MUC private message for the recipient's client (XEP-0045 §7.5).
    xml("x", { xmlns: NS.MUC_USER }),
  );
  for (const session of sessions) work.effects.push(send(withTo(out, session)));
}

// ---------------------------------------------------------------------------------------------------
// Netjoin

/** A presence in a canonical form (attributes sorted, no `to`/`id`), to tell a changed one from a copy. */
function canonical(el: Element, top = true): string {
  const attrs = Object.entries(el.attrs)
    .filter(([name, value]) => value !== undefined && !(top && (name === "to" || name === "id")))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`);
  const children = el.children.map((c) => (typeof c === "string" ? JSON.stringify(c.trim()) : canonical(c, false))).filter((c) => c !== '""');
  return `<${el.name} ${attrs.join(" ")}>${children.join("")}</${el.name}>`;
}

function sameSubject(a: ReplicatedRoom["subject"], b: ReplicatedRoom["subject"]): boolean {
  return a?.text === b?.text && a?.nick === b?.nick && a?.at.getTime() === b?.at.getTime();
}

/**
 * <netjoin/> from the registered primary: its roster replaces ours (local sessions see the difference),
 * the messages we lack are stored and delivered with their delay, settings and subject applied; the
 * answer carries our sessions and the messages our users sent during the split. Returns the presences
 * local users changed during the split, for the caller to submit to the primary as if sent now.
 */
export function onNetjoin(work: Work, room: ReplicatedRoom, iq: Element, element: Element): NetjoinSubmissions | null {
  const netjoin = parseNetjoin(element);
  if (!netjoin) {
    refuse(work, iq, "malformed netjoin", { roomJid: room.roomJid, spec: { type: "modify", condition: "bad-request" } });
    return null;
  }
  const roomJid = room.roomJid;
  const wasSplit = isSplit(room);
  // catchup='false': the primary served our users directly during the split, so they have it all
  // already; the replica only brings its copy up to date.
  const catchUp = element.attrs.catchup !== "false";
  let current = room;
  if (netjoin.config) {
    current = { ...current, whois: netjoin.config.whois, presenceBroadcast: netjoin.config.presenceBroadcast, splitChat: netjoin.config.splitChat !== false };
    putRoom(work, current);
  }

  // The roster: the primary's, except the nicks that left here during the split (the primary learns it
  // from our answer) and the local occupants' own newer presences (relayed after the answer).
  const given = new Map<string, Element>();
  for (const presence of netjoin.presences) {
    const nick = presence.attrs.from?.startsWith(`${roomJid}/`) ? presence.attrs.from.slice(roomJid.length + 1) : "";
    if (nick === "" || presence.attrs.type === "unavailable") continue;
    given.set(nick, cleaned(presence));
  }
  for (const nick of current.splitGone) given.delete(nick);
  // Users who entered here during the split are listed in our answer: the primary decides on them.
  current = keepEntered(work, current, given);
  putRoom(work, current);
  for (const [session] of current.splitPresences) {
    const nick = current.local.get(session);
    const ours = nick !== undefined ? current.roster.get(nick) : undefined;
    if (nick !== undefined && ours && given.has(nick)) given.set(nick, ours);
  }
  let rosterChanges = 0;
  for (const nick of [...current.roster.keys()]) {
    if (given.has(nick)) continue;
    current = getRoom(work, roomJid)!;
    if (catchUp) onPresenceBroadcast(work, current, gonePresence(current, nick), nick);
    else {
      const roster = new Map(current.roster);
      roster.delete(nick);
      const gone = [...current.local].filter(([, n]) => n === nick).map(([session]) => session);
      putRoom(work, { ...dropLocal(work, current, gone), roster });
    }
    rosterChanges++;
  }
  const sent = new Set<string>();
  for (const [nick, presence] of given) {
    current = getRoom(work, roomJid)!;
    const known = current.roster.get(nick);
    if (known && canonical(known) === canonical(presence)) continue;
    sent.add(nick);
    if (catchUp) onPresenceBroadcast(work, current, presence, nick);
    else putRoom(work, { ...current, roster: new Map(current.roster).set(nick, presence) });
    rosterChanges++;
  }
  current = getRoom(work, roomJid)!;
  // The occupants shown away since the split are back (those the diff did not just send).
  const restored = catchUp ? restoreAway(work, current, sent) : 0;

  // Messages the netjoin carries itself (ours asks for them page by page afterwards: replica-catchup.ts),
  // in the primary's order: stored, then delivered as catch-up with their delay, except to the sessions
  // the primary served them to directly while we were down (they have them).
  const missed = takeMissed(work, current, netjoin.history, catchUp, new Set(), netjoin.served);
  current = missed.room;

  if (netjoin.subject && !sameSubject(current.subject, netjoin.subject)) {
    // Users see the subject again only when it changed (not when only its time differs by a hair).
    const changed = current.subject?.text !== netjoin.subject.text || current.subject?.nick !== netjoin.subject.nick;
    current = { ...current, subject: netjoin.subject };
    if (changed && catchUp) for (const [session] of current.local) work.effects.push(send(subjectMessage(roomJid, current.subject, session, work.context.newId())));
  }
  if (netjoin.config || netjoin.subject) saveReplica(work, current);

  // Our side: the sessions still here. What they said during the split is submitted on the link after
  // this answer (by the caller), each with its time: numbered and kept until the primary acknowledges
  // it, so that neither side's restart loses it or has it taken twice (docs/PROTOCOL.md "Durability").
  const splitMessages = current.splitQueue.map((q) => ({ stanza: cloneElement(q.stanza), at: q.at }));
  // A session whose unavailable presence is still on the link (submitted, not acknowledged) has left:
  // the primary takes that presence before or after this answer, and listed here it would look like
  // a user who entered during the split, whom the primary admits again.
  const leaving = new Set(
    current.link.end.channel.outbox.unacked.flatMap(({ item }) => (item.stanza.name === "presence" && item.stanza.attrs.type === "unavailable" ? [item.stanza.attrs.from] : [])),
  );
  const occupants = [...current.local].filter(([jid]) => !leaving.has(jid)).map(([jid, nick]) => ({ jid, nick }));
  const echoes = [...current.echoes, ...current.splitQueue.map((q) => q.stanza.getChild("origin-id", NS.STANZA_ID)?.attrs.id ?? "").filter((id) => id !== "")];
  const kicks = (current.splitKicks ?? []).map((k) => ({ ...k }));
  // The presences of users who entered here are not relayed: to the primary, before it admits them,
  // they would be new joins.
  const entered = current.splitEntered ?? new Set<string>();
  const relays = [...current.splitPresences].filter(([session]) => current.local.has(session) && !entered.has(current.local.get(session)!));
  current = {
    ...current,
    splitSince: null,
    splitQueue: [],
    splitPresences: new Map(),
    splitGone: new Set(),
    splitAway: undefined,
    splitKicks: undefined,
    splitEntered: undefined,
    echoes: new Set(echoes.slice(Math.max(0, echoes.length - MAX_ECHOES))),
  };
  putRoom(work, current);
  work.effects.push(send(iqResult(iq, buildNetjoinAnswer({ occupants, messages: [], kicks }))));
  touch(work, roomJid, { sent: true });

  const counts = { received: missed.stored, delivered: missed.delivered, sent: splitMessages.length, occupants: occupants.length, rosterChanges, ...(kicks.length > 0 && { kicks: kicks.length }), ...(restored > 0 && { restored }) };
  work.effects.push(logEffect("info", "dmuc.link_healed", { room: roomJid, wasSplit, catchUp, since: netjoin.since.toISOString(), splitSince: room.splitSince, ...counts }));
  work.effects.push(audit({ kind: "link.healed", roomJid, actorJid: room.primaryJid, details: { wasSplit, ...counts } }));
  // The presences local users changed during the split reach the primary as if sent now.
  return { messages: splitMessages, presences: relays.map(([, presence]) => cloneElement(presence)), since: netjoin.since, catchUp, ...(netjoin.after !== undefined && { after: netjoin.after }) };
}

/**
 * What a netjoin leaves the replica to do: submit its users' split-time messages (with their time),
 * then their changed presences, then read what it missed (since the split; delivered with `catchUp`).
 */
export interface NetjoinSubmissions {
  readonly messages: readonly { readonly stanza: Element; readonly at: Date }[];
  readonly presences: readonly Element[];
  readonly since: Date;
  readonly catchUp: boolean;
  /** The primary's split point: the last message of the room we surely have (null: none; the catch-up reads after it). */
  readonly after?: string | null;
}
