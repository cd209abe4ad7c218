// The replica's local delivery (docs/PROTOCOL.md "Broadcasts"): one copy of each room broadcast comes
// from the primary; the replica keeps its roster, history and subject up to date and fans the stanza
// out to its local sessions, stripping real JIDs per viewer as XEP-0045 says and adding 110 for the
// occupant's own sessions. stanza-id and occupant-id pass unchanged.
import xml, { type Element } from "@xmpp/xml";
import { cloneElement } from "../../xmpp/element.js";
import { NS } from "../../xmpp/stanza.js";
import { parseJid } from "../../xmpp/jid.js";
import { logEffect, send, store } from "../effects.js";
import type { HistoryEntry, Role } from "../room/types.js";
import type { ReplicatedRoom } from "./state.js";
import { DMUC, parseBroadcastDelay } from "./wire.js";
import { putRoom, saveReplica, sendDivert, type Work } from "./replica-util.js";

const ROLES: readonly Role[] = ["moderator", "participant", "visitor", "none"];

function mucUser(presence: Element): Element | undefined {
  return presence.getChild("x", NS.MUC_USER);
}

/** The role an occupant's presence shows (its first muc#user item). */
export function roleOf(presence: Element | undefined): Role {
  const role = presence && mucUser(presence)?.getChild("item")?.attrs.role;
  return role !== undefined && (ROLES as readonly string[]).includes(role) ? (role as Role) : "none";
}

/** XEP-0045 §7.2.3-§7.2.5: who may see real JIDs, from the viewer's role in the replicated roster. */
export function seesJids(room: ReplicatedRoom, viewerRole: Role): boolean {
  return room.whois === "anyone" || viewerRole === "moderator";
}

export function viewerRole(room: ReplicatedRoom, session: string): Role {
  const nick = room.local.get(session);
  return nick === undefined ? "none" : roleOf(room.roster.get(nick));
}

/** A copy without `to` and without the elements that only travel between primary and replica. */
export function cleaned(stanza: Element): Element {
  const copy = cloneElement(stanza);
  delete copy.attrs.to;
  // The primary addresses its copy by stanza-id (so that a bounce names the message it lost) and
  // keeps the sender's own id in the dmuc element: users get the sender's id back.
  const x = copy.getChild("x", DMUC);
  if (x && x.attrs.id !== undefined) copy.attrs.id = x.attrs.id;
  else if (x && copy.attrs.id !== undefined && copy.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.id === copy.attrs.id) delete copy.attrs.id;
  copy.children = copy.children.filter((c) => typeof c === "string" || c.attrs.xmlns !== DMUC);
  return copy;
}

/** The copy of an occupant's presence for another viewer: without real JIDs unless it may see them. */
export function presenceForViewer(presence: Element, withJids: boolean, to: string): Element {
  const copy = cloneElement(presence);
  copy.attrs.to = to;
  const x = mucUser(copy);
  if (x && !withJids) {
    // Anonymous viewers get one item, as the room itself sends them, and no actor JID.
    let first = true;
    x.children = x.children.filter((c) => {
      if (typeof c === "string" || c.name !== "item") return true;
      const keep = first;
      first = false;
      return keep;
    });
    const item = x.getChild("item");
    if (item) {
      delete item.attrs.jid;
      const actor = item.getChild("actor");
      if (actor) delete actor.attrs.jid;
    }
  }
  return copy;
}

/** The copy for the occupant's own session: its JID shown, 110 and the given codes added. */
export function presenceForSelf(presence: Element, session: string, codes: readonly number[] = []): Element {
  const copy = cloneElement(presence);
  copy.attrs.to = session;
  let x = mucUser(copy);
  if (!x) {
    x = xml("x", { xmlns: NS.MUC_USER });
    copy.append(x);
  }
  const item = x.getChild("item");
  if (item && !x.getChildren("item").some((i) => i.attrs.jid)) item.attrs.jid = session;
  const present = new Set(x.getChildren("status").map((s) => s.attrs.code));
  for (const code of ["110", ...codes.map(String)]) {
    if (present.has(code)) continue;
    present.add(code);
    x.append(xml("status", { code }));
  }
  return copy;
}

/** Whether `viewer` gets an occupant's presence (muc#roomconfig_presencebroadcast; moderators see all). */
export function visibleTo(room: ReplicatedRoom, presence: Element, role: Role): boolean {
  return presence.attrs.type === "unavailable" || room.presenceBroadcast.includes(roleOf(presence)) || role === "moderator";
}

/** The roster a new local session gets: every other occupant's presence, as that viewer may see it. */
export function rosterFor(room: ReplicatedRoom, nick: string, session: string): Element[] {
  const role = roleOf(room.roster.get(nick));
  const out: Element[] = [];
  for (const [other, presence] of room.roster) {
    if (other === nick || !visibleTo(room, presence, role)) continue;
    out.push(presenceForViewer(presence, seesJids(room, role), session));
  }
  return out;
}

/** A history entry from a message the primary sent (state or broadcast), stored without `to` or delays. */
export function historyEntry(work: Work, room: ReplicatedRoom, message: Element, at: Date): HistoryEntry {
  const stanza = cleaned(message);
  stanza.children = stanza.children.filter((c) => typeof c === "string" || !c.is("delay", NS.DELAY));
  const sid = stanza.getChildren("stanza-id", NS.STANZA_ID).find((s) => s.attrs.by === room.roomJid) ?? stanza.getChild("stanza-id", NS.STANZA_ID);
  return {
    stanzaId: sid?.attrs.id ?? work.context.newId(),
    nick: parseJid(message.attrs.from)?.resource ?? "",
    occupantId: stanza.getChild("occupant-id", NS.OCCUPANT_ID)?.attrs.id ?? "",
    // The primary never tells a replica who sent a message.
    senderJid: "",
    at,
    stanza,
    chars: stanza.toString().length,
  };
}

/** Appends to the replica's history (kept to its limit), storing the new rows; known stanza-ids are skipped. */
export function appendHistory(work: Work, room: ReplicatedRoom, entries: HistoryEntry[]): ReplicatedRoom {
  const known = new Set(room.history.map((e) => e.stanzaId));
  const fresh = entries.filter((e) => !known.has(e.stanzaId) && known.add(e.stanzaId));
  if (fresh.length === 0) return room;
  for (const entry of fresh) work.effects.push(store({ op: "history.append", roomJid: room.roomJid, entry, archived: false }));
  const history = [...room.history, ...fresh];
  return { ...room, history: history.slice(Math.max(0, history.length - room.historyLimit)) };
}

/** Removes local sessions; when none is left, the module stops diverting the room to us. */
export function dropLocal(work: Work, room: ReplicatedRoom, sessions: Iterable<string>): ReplicatedRoom {
  const local = new Map(room.local);
  for (const session of sessions) local.delete(session);
  if (local.size === room.local.size) return room;
  if (local.size === 0) sendDivert(work, room.roomJid, false);
  return { ...room, local };
}

/** A presence broadcast: fan-out with per-viewer copies, then the roster updated. */
export function onPresenceBroadcast(work: Work, room: ReplicatedRoom, presence: Element, nick: string): void {
  // Our users never saw that nick (or saw it leave here during a netsplit): nothing to tell them.
  if (presence.attrs.type === "unavailable" && !room.roster.has(nick) && ![...room.local.values()].includes(nick)) return;
  const own = [...room.local].filter(([, n]) => n === nick).map(([session]) => session);
  const copy = cleaned(presence);
  for (const [session] of room.local) {
    if (own.includes(session)) {
      work.effects.push(send(presenceForSelf(copy, session)));
      continue;
    }
    const role = viewerRole(room, session);
    if (visibleTo(room, copy, role)) work.effects.push(send(presenceForViewer(copy, seesJids(room, role), session)));
  }
  const roster = new Map(room.roster);
  let next: ReplicatedRoom = room;
  if (presence.attrs.type === "unavailable") {
    roster.delete(nick);
    const x = mucUser(presence);
    const newNick = x?.getChild("item")?.attrs.nick;
    if (newNick && x?.getChildren("status").some((s) => s.attrs.code === "303")) {
      // Nick change: the local sessions follow; the new nick's presence comes next.
      const local = new Map([...room.local].map(([session, n]) => [session, n === nick ? newNick : n] as [string, string]));
      next = { ...room, local };
    } else {
      // The occupant is gone (the primary sent <leave/> first); sessions still listed are dropped.
      next = dropLocal(work, room, own);
    }
  } else {
    roster.set(nick, copy);
  }
  putRoom(work, { ...next, roster });
}

/**
 * The room's broadcast of a message we sent back at netjoin (same origin-id): the room without that
 * origin-id, or null when the message is not one of ours coming back.
 */
export function takeEcho(room: ReplicatedRoom, message: Element): ReplicatedRoom | null {
  const originId = message.getChild("origin-id", NS.STANZA_ID)?.attrs.id;
  if (!originId || !room.echoes.has(originId)) return null;
  const echoes = new Set(room.echoes);
  echoes.delete(originId);
  return { ...room, echoes };
}

/**
 * A groupchat message or subject change: kept for history, the dmuc element removed, fanned out. A
 * message our users sent during a netsplit, coming back from the primary, is stored (it has the room's
 * stanza-id now) but not delivered again: they saw it when it was sent.
 */
export function onMessageBroadcast(work: Work, room: ReplicatedRoom, message: Element): void {
  // A message we hold already (the netjoin's catch-up brought it, and the primary's stream too) was
  // delivered then: once is enough.
  const stanzaId = message.getChild("stanza-id", NS.STANZA_ID)?.attrs.id;
  if (message.getChild("body") && stanzaId !== undefined && room.history.some((e) => e.stanzaId === stanzaId)) {
    work.effects.push(logEffect("debug", "dmuc.broadcast_known", { room: room.roomJid, stanzaId }));
    return;
  }
  const at = parseBroadcastDelay(message) ?? work.context.now;
  const copy = cleaned(message);
  const echo = takeEcho(room, message);
  let next = echo ?? room;
  if (message.getChild("body")) next = appendHistory(work, next, [historyEntry(work, room, message, at)]);
  const subject = message.getChild("subject");
  if (subject && !message.getChild("body")) {
    next = { ...next, subject: { text: subject.getText(), nick: parseJid(message.attrs.from)?.resource ?? null, at } };
    saveReplica(work, next);
  }
  if (echo) work.effects.push(logEffect("debug", "dmuc.echo_stored", { room: room.roomJid, stanzaId: next.history.at(-1)?.stanzaId ?? null }));
  else {
    for (const [session] of room.local) {
      const out = cloneElement(copy);
      out.attrs.to = session;
      work.effects.push(send(out));
    }
  }
  putRoom(work, next);
}

/** Anything else the room sends to the replica (one-to-one types, errors) is not for fan-out. */
export function ignoreFromRoom(work: Work, room: ReplicatedRoom, stanza: Element): void {
  work.effects.push(logEffect("debug", "dmuc.replica_ignored", { room: room.roomJid, name: stanza.name, type: stanza.attrs.type ?? null }));
}
