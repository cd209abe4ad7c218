// More of the replica's netsplit service (docs/PROTOCOL.md "Netsplit", "Netjoin"; issue 5):
// - away: when a link splits, local users see the occupants behind it (the non-local ones) as away,
//   and their real presence again after the netjoin (ReplicaOptions.splitAway, on by default);
// - local kicks: a local moderator may kick a local occupant during the split (muc#admin role='none');
//   the kick is carried to the primary in the netjoin answer;
// - local entry: with ReplicaOptions.splitEntry, local users may enter a split room provisionally;
//   the primary decides at the netjoin (it sends a LEAVE for those it does not admit).
import xml, { type Element } from "@xmpp/xml";
import { cloneElement } from "../../xmpp/element.js";
import { audit, logEffect, send } from "../effects.js";
import { parseHistoryRequest, replayEntry, selectHistory, subjectMessage } from "../room/history.js";
import { errorReply, iqResult, mayAnswerWithError, NS, type StanzaErrorSpec } from "../../xmpp/stanza.js";
import type { Jid } from "../../xmpp/jid.js";
import type { ReplicatedRoom, SplitKick } from "./state.js";
import { dropLocal, presenceForSelf, presenceForViewer, roleOf, rosterFor, seesJids, viewerRole, visibleTo } from "./replica-fanout.js";
import { putRoom, sendDivert, type ReplicaOptions, type Work } from "./replica-util.js";

export const SPLIT_AWAY_STATUS = "Netsplit: this server cannot be reached";

const FORBIDDEN: StanzaErrorSpec = { type: "auth", condition: "forbidden", text: "Only a moderator may kick" };
const ACROSS: StanzaErrorSpec = { type: "cancel", condition: "not-allowed", text: "cannot kick across a netsplit" };
const TOO_HIGH: StanzaErrorSpec = { type: "cancel", condition: "not-allowed", text: "An admin or owner cannot be kicked" };
const NO_NICK: StanzaErrorSpec = { type: "cancel", condition: "item-not-found", text: "No occupant with that nickname" };
const CONFLICT: StanzaErrorSpec = { type: "cancel", condition: "conflict", text: "That nickname is already in use" };
const NO_NICK_GIVEN: StanzaErrorSpec = { type: "modify", condition: "jid-malformed", text: "A nickname is required to enter" };

/** Answers a local user's stanza during a split with an error from the room (when it may be answered). */
export function splitError(work: Work, room: ReplicatedRoom, stanza: Element, spec: StanzaErrorSpec, reason: string): void {
  work.effects.push(logEffect("debug", "dmuc.split_refused", { room: room.roomJid, reason, name: stanza.name, type: stanza.attrs.type ?? null, from: stanza.attrs.from }));
  if (mayAnswerWithError(stanza)) work.effects.push(send(errorReply(stanza, { ...spec, by: room.roomJid })));
}

const nickOf = (room: ReplicatedRoom, presence: Element): string => presence.attrs.from?.slice(room.roomJid.length + 1) ?? "";
const isLocalNick = (room: ReplicatedRoom, nick: string): boolean => [...room.local.values()].includes(nick);

// ---------------------------------------------------------------------------------------------------
// Away

/** An occupant's presence shown away: its show and status replaced, everything else kept. */
export function awayPresence(presence: Element): Element {
  const copy = cloneElement(presence);
  copy.children = copy.children.filter((c) => typeof c === "string" || !((c.name === "show" || c.name === "status") && (c.attrs.xmlns === undefined || c.attrs.xmlns === "jabber:client")));
  copy.children.unshift(xml("show", {}, "away"), xml("status", {}, SPLIT_AWAY_STATUS));
  return copy;
}

/** Sends an occupant's presence to every local session, as each viewer may see it (no 110: not theirs). */
function fanOut(work: Work, room: ReplicatedRoom, presence: Element): void {
  for (const [session] of room.local) {
    const role = viewerRole(room, session);
    if (visibleTo(room, presence, role)) work.effects.push(send(presenceForViewer(presence, seesJids(room, role), session)));
  }
}

/** The link just split: every non-local occupant is shown away to the local sessions; returns the room with them noted. */
export function showAway(work: Work, room: ReplicatedRoom): ReplicatedRoom {
  const away = new Set<string>();
  for (const [nick, presence] of room.roster) {
    if (isLocalNick(room, nick)) continue;
    away.add(nick);
    fanOut(work, room, awayPresence(presence));
  }
  return { ...room, splitAway: away };
}

/** After the netjoin's roster diff: the real presence of every occupant shown away and still here (unless the diff sent it). */
export function restoreAway(work: Work, room: ReplicatedRoom, alreadySent: ReadonlySet<string>): number {
  let restored = 0;
  for (const nick of room.splitAway ?? []) {
    const presence = room.roster.get(nick);
    if (!presence || alreadySent.has(nick) || isLocalNick(room, nick)) continue;
    fanOut(work, room, presence);
    restored++;
  }
  return restored;
}

// ---------------------------------------------------------------------------------------------------
// Local kicks

/** A kick request (muc#admin set of one item with a nick and role='none'), or null. */
function kickRequest(stanza: Element): { nick: string; reason?: string } | null {
  if (stanza.name !== "iq" || stanza.attrs.type !== "set") return null;
  const query = stanza.getChild("query", NS.MUC_ADMIN);
  const items = query?.getChildren("item") ?? [];
  const item = items[0];
  if (items.length !== 1 || !item || item.attrs.role !== "none" || !item.attrs.nick || item.attrs.affiliation !== undefined) return null;
  const reason = item.getChildText("reason");
  return { nick: item.attrs.nick, ...(reason && { reason }) };
}

/**
 * An IQ from a local occupant during a split: a kick of a local occupant by a local moderator is done
 * here and recorded for the netjoin answer. Returns false when the IQ is not a kick.
 */
export function splitKick(work: Work, room: ReplicatedRoom, stanza: Element, session: string, actorNick: string | undefined): boolean {
  const request = kickRequest(stanza);
  if (!request) return false;
  if (actorNick === undefined || roleOf(room.roster.get(actorNick)) !== "moderator") {
    splitError(work, room, stanza, FORBIDDEN, "kick by a non-moderator during a netsplit");
    return true;
  }
  const target = room.roster.get(request.nick);
  if (!target) {
    splitError(work, room, stanza, NO_NICK, "kick of an unknown nick during a netsplit");
    return true;
  }
  const kicked = [...room.local].filter(([, n]) => n === request.nick).map(([s]) => s);
  if (kicked.length === 0) {
    splitError(work, room, stanza, ACROSS, "kick of a remote occupant during a netsplit");
    return true;
  }
  const item = target.getChild("x", NS.MUC_USER)?.getChild("item");
  if (item?.attrs.affiliation === "owner" || item?.attrs.affiliation === "admin") {
    splitError(work, room, stanza, TOO_HIGH, "kick of an admin or owner");
    return true;
  }
  const unavailable = xml(
    "presence",
    { from: `${room.roomJid}/${request.nick}`, type: "unavailable" },
    xml(
      "x",
      { xmlns: NS.MUC_USER },
      xml("item", { affiliation: item?.attrs.affiliation ?? "none", role: "none", jid: item?.attrs.jid }, xml("actor", { nick: actorNick }), request.reason ? xml("reason", {}, request.reason) : null),
      xml("status", { code: "307" }),
    ),
    target.getChild("occupant-id", NS.OCCUPANT_ID) ? cloneElement(target.getChild("occupant-id", NS.OCCUPANT_ID)!) : null,
  );
  // The kicked sessions first (with 110), then everybody else here.
  for (const s of kicked) work.effects.push(send(presenceForSelf(unavailable, s)));
  for (const [other] of room.local) {
    if (kicked.includes(other)) continue;
    work.effects.push(send(presenceForViewer(unavailable, seesJids(room, viewerRole(room, other)), other)));
  }
  const roster = new Map(room.roster);
  roster.delete(request.nick);
  const splitPresences = new Map(room.splitPresences);
  for (const s of kicked) splitPresences.delete(s);
  const entered = room.splitEntered?.has(request.nick) ?? false;
  // A user who entered during the split is unknown to the primary: there is nothing to tell it.
  const records: SplitKick[] = entered ? [] : kicked.map((jid) => ({ jid, nick: request.nick, actor: session, ...(request.reason && { reason: request.reason }) }));
  const splitEntered = new Set(room.splitEntered ?? []);
  splitEntered.delete(request.nick);
  const next = dropLocal(work, room, kicked);
  putRoom(work, {
    ...next,
    roster,
    splitPresences,
    splitGone: new Set(room.splitGone).add(request.nick),
    splitLeft: new Set([...(room.splitLeft ?? []), ...kicked]),
    splitKicks: [...(room.splitKicks ?? []), ...records],
    splitEntered,
  });
  work.effects.push(send(iqResult(stanza)));
  const details = { nick: request.nick, sessions: kicked, reason: request.reason ?? null, entered };
  work.effects.push(logEffect("info", "dmuc.split_kick", { room: room.roomJid, actor: session, ...details }));
  work.effects.push(audit({ kind: "dmuc.split_kick", roomJid: room.roomJid, actorJid: session, details }));
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Local entry

/** Client elements of a join presence that go into the occupant's presence (not the MUC x, not room-asserted ids). */
function ownChildren(stanza: Element): Element[] {
  return stanza.children
    .filter((c): c is Element => typeof c !== "string")
    .filter((c) => !(c.name === "x" && (c.attrs.xmlns === NS.MUC || c.attrs.xmlns === NS.MUC_USER)) && !c.is("occupant-id", NS.OCCUPANT_ID) && !c.is("stanza-id", NS.STANZA_ID) && !c.is("delay", NS.DELAY))
    .map(cloneElement);
}

/**
 * Available presence from a non-occupant to a split room. Refused unless splitEntry is on and it is a
 * MUC join; then a free nick is admitted here, provisionally (participant, affiliation none).
 */
export function splitEnter(work: Work, room: ReplicatedRoom, stanza: Element, session: string, to: Jid, options: ReplicaOptions, refused: StanzaErrorSpec): void {
  const join = stanza.getChild("x", NS.MUC);
  if (!options.splitEntry || !join) return splitError(work, room, stanza, refused, "entering during a netsplit");
  const nick = to.resource;
  if (nick === null || nick === "") return splitError(work, room, stanza, NO_NICK_GIVEN, "no nick");
  if (room.roster.has(nick)) return splitError(work, room, stanza, CONFLICT, "nick taken");
  const self = xml(
    "presence",
    { from: `${room.roomJid}/${nick}` },
    ...ownChildren(stanza),
    xml("x", { xmlns: NS.MUC_USER }, xml("item", { affiliation: "none", role: "participant", jid: session })),
  );
  const next: ReplicatedRoom = {
    ...room,
    local: new Map(room.local).set(session, nick),
    roster: new Map(room.roster).set(nick, self),
    splitEntered: new Set(room.splitEntered ?? []).add(nick),
  };
  putRoom(work, next);
  if (room.local.size === 0) sendDivert(work, room.roomJid, true);
  const away = next.splitAway ?? new Set<string>();
  for (const presence of rosterFor(next, nick, session)) work.effects.push(send(away.has(nickOf(next, presence)) ? awayPresence(presence) : presence));
  work.effects.push(send(presenceForSelf(self, session, room.whois === "anyone" ? [100] : [])));
  const entries = selectHistory(next.history, parseHistoryRequest(join), work.context.now, options.maxHistoryMessages);
  for (const entry of entries) work.effects.push(send(replayEntry(entry, room.roomJid, session)));
  work.effects.push(send(subjectMessage(room.roomJid, next.subject, session, work.context.newId())));
  for (const [other] of room.local) {
    const role = viewerRole(next, other);
    if (visibleTo(next, self, role)) work.effects.push(send(presenceForViewer(self, seesJids(next, role), other)));
  }
  work.effects.push(logEffect("info", "dmuc.split_entered", { room: room.roomJid, session, nick }));
  work.effects.push(audit({ kind: "dmuc.split_entered", roomJid: room.roomJid, actorJid: session, details: { nick } }));
}

/**
 * At netjoin, before the roster diff: the nicks entered here during the split stay in the roster
 * (the primary decides on them from our answer), except where the primary's roster has the nick
 * already (somebody else took it meanwhile): those sessions leave here (their own unavailable, 110).
 */
export function keepEntered(work: Work, room: ReplicatedRoom, given: Map<string, Element>): ReplicatedRoom {
  let next = room;
  for (const nick of room.splitEntered ?? []) {
    const sessions = [...next.local].filter(([, n]) => n === nick).map(([s]) => s);
    const ours = next.roster.get(nick);
    if (sessions.length === 0 || !ours) continue;
    if (!given.has(nick)) {
      given.set(nick, ours);
      continue;
    }
    const gone = cloneElement(ours);
    gone.attrs.type = "unavailable";
    gone.children = gone.children.filter((c) => typeof c === "string" || c.is("x", NS.MUC_USER));
    const item = gone.getChild("x", NS.MUC_USER)?.getChild("item");
    if (item) item.attrs.role = "none";
    for (const s of sessions) work.effects.push(send(presenceForSelf(gone, s)));
    const roster = new Map(next.roster);
    roster.delete(nick);
    const splitEntered = new Set(next.splitEntered ?? []);
    splitEntered.delete(nick);
    next = { ...dropLocal(work, next, sessions), roster, splitEntered };
    work.effects.push(logEffect("info", "dmuc.split_entry_lost", { room: room.roomJid, nick, sessions }));
  }
  return next;
}
