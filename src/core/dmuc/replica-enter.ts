// ENTER and LEAVE on the replica (docs/PROTOCOL.md "Entering and leaving"): an ENTER is accepted only
// after the server module confirms that the session sent available directed presence to the room;
// then the user gets the roster, its own presence, the history and the subject from our copy.
import type { Element } from "@xmpp/xml";
import { audit, logEffect, send } from "../effects.js";
import { parseHistoryRequest, replayEntry, selectHistory, subjectMessage } from "../room/history.js";
import { iqResult } from "../../xmpp/stanza.js";
import { cloneElement } from "../../xmpp/element.js";
import { bareString, parseJid } from "../../xmpp/jid.js";
import type { HistoryEntry } from "../room/types.js";
import type { PendingQuery, ReplicatedRoom } from "./state.js";
import { buildDirectedQuery, parseEnter, parseLeave } from "./wire.js";
import { dropLocal, presenceForSelf, rosterFor } from "./replica-fanout.js";
import { getRoom, isLocalUser, moduleIq, putRoom, refuse, sendDivert, setPending, touch, type ReplicaOptions, type Work } from "./replica-util.js";

type Directed = Extract<PendingQuery, { kind: "directed" }>;

const BAD_REQUEST = { type: "modify", condition: "bad-request" } as const;
const UNKNOWN_NICK = { type: "cancel", condition: "unexpected-request", text: "The room's presence of this nick is unknown" } as const;

/** <enter/> from the registered primary: checks, then asks the server module about directed presence. */
export function onEnter(work: Work, room: ReplicatedRoom, iq: Element, payload: Element): void {
  const enter = parseEnter(payload);
  if (!enter) {
    refuse(work, iq, "malformed enter", { roomJid: room.roomJid, spec: BAD_REQUEST });
    return;
  }
  if (!isLocalUser(work.settings, parseJid(enter.jid))) {
    refuse(work, iq, "enter for a user of another domain", { roomJid: room.roomJid });
    return;
  }
  if (!room.roster.has(enter.nick)) {
    refuse(work, iq, "enter for a nick without presence", { roomJid: room.roomJid, spec: UNKNOWN_NICK });
    return;
  }
  if (room.splitLeft?.has(enter.jid)) {
    // Back in the room: a later LEAVE is news again.
    const splitLeft = new Set(room.splitLeft);
    splitLeft.delete(enter.jid);
    putRoom(work, { ...room, splitLeft: splitLeft.size > 0 ? splitLeft : undefined });
  }
  // Even a silent ENTER is verified: otherwise a primary could make us deliver a room to anybody.
  const id = work.context.newId();
  setPending(work, id, { kind: "directed", roomJid: room.roomJid, session: enter.jid, enterIq: cloneElement(iq), sent: work.context.now.getTime(), after: room.history.at(-1)?.stanzaId, roster: room.roster });
  work.effects.push(send(moduleIq(work, "get", buildDirectedQuery(enter.jid, room.roomJid), id)));
}

/**
 * The module's answer (true / false / null for an error or no answer): the user is taken and served,
 * or the primary hears `forbidden` and delivers to the user directly.
 */
export function finishEnter(work: Work, id: string, query: Directed, answer: boolean | null | "no-module", options: ReplicaOptions): void {
  const present = answer === "no-module" ? (options.trustPrimaryEnter ? true : null) : answer;
  if (answer === "no-module") {
    work.effects.push(logEffect(options.trustPrimaryEnter ? "info" : "warn", "dmuc.no_module", { room: query.roomJid, session: query.session, trusted: options.trustPrimaryEnter === true }));
  }
  setPending(work, id, null);
  const iq = query.enterIq;
  const room = getRoom(work, query.roomJid);
  const enter = parseEnter(iq.getChild("enter"));
  if (!room || !enter || room.primaryJid !== bareString(parseJid(iq.attrs.from)!)) {
    refuse(work, iq, "the link ended before the check", { roomJid: query.roomJid, spec: { type: "cancel", condition: "item-not-found" } });
    return;
  }
  if (present !== true) {
    refuse(work, iq, present === false ? "no directed presence to the room" : "directed presence not verified", { roomJid: room.roomJid });
    touch(work, room.roomJid, { sent: true });
    return;
  }
  const self = room.roster.get(enter.nick);
  if (!self) {
    refuse(work, iq, "enter for a nick without presence", { roomJid: room.roomJid, spec: UNKNOWN_NICK });
    touch(work, room.roomJid, { sent: true });
    return;
  }
  const next: ReplicatedRoom = { ...room, local: new Map(room.local).set(enter.jid, enter.nick) };
  putRoom(work, next);
  if (room.local.size === 0) sendDivert(work, room.roomJid, true);
  if (!enter.silent) {
    const to = enter.jid;
    for (const presence of rosterFor(next, enter.nick, to)) work.effects.push(send(presence));
    work.effects.push(send(presenceForSelf(self, to, enter.codes)));
    const entries = selectHistory(next.history, parseHistoryRequest(iq.getChild("enter")!), work.context.now, options.maxHistoryMessages);
    for (const entry of entries) work.effects.push(send(replayEntry(entry, room.roomJid, to)));
    work.effects.push(send(subjectMessage(room.roomJid, next.subject, to, work.context.newId())));
    // What was broadcast while the check was out (the primary counted the user ours from the ENTER on)
    // and the history asked for did not include, as the first live messages after the subject.
    const chosen = new Set(entries.map((e) => e.stanzaId));
    for (const entry of broadcastSince(next, query)) if (!chosen.has(entry.stanzaId)) work.effects.push(send(replayEntry(entry, room.roomJid, to)));
  } else {
    // A user moved onto us is already in the room: what was broadcast while its check was out it
    // has not seen from anyone (the primary counted it ours already), so it gets it now.
    const viewer = rosterFor(next, enter.nick, enter.jid);
    for (const presence of viewer) {
      const nick = presence.attrs.from?.slice(room.roomJid.length + 1) ?? "";
      const before = query.roster?.get(nick);
      if (before !== next.roster.get(nick)) work.effects.push(send(presence));
    }
    for (const [nick, before] of query.roster ?? []) {
      if (nick === enter.nick || next.roster.has(nick)) continue;
      const gone = cloneElement(before);
      gone.attrs = { from: `${room.roomJid}/${nick}`, to: enter.jid, type: "unavailable" };
      work.effects.push(send(gone));
    }
    for (const entry of broadcastSince(next, query)) work.effects.push(send(replayEntry(entry, room.roomJid, enter.jid)));
  }
  work.effects.push(send(iqResult(iq)));
  work.effects.push(logEffect("info", "dmuc.entered", { room: room.roomJid, session: enter.jid, nick: enter.nick, silent: enter.silent }));
  work.effects.push(audit({ kind: "dmuc.entered", roomJid: room.roomJid, actorJid: enter.jid, details: { nick: enter.nick, silent: enter.silent } }));
  touch(work, room.roomJid, { sent: true });
}

/** The messages stored since the ENTER came (none if the one newest then is no longer kept). */
function broadcastSince(room: ReplicatedRoom, query: Directed): readonly HistoryEntry[] {
  const start = query.after === undefined ? 0 : room.history.findIndex((e) => e.stanzaId === query.after) + 1;
  return start > 0 || query.after === undefined ? room.history.slice(start) : [];
}

/** <leave/>: the user's own unavailable presence delivered, the session dropped from the local list. */
export function onLeave(work: Work, room: ReplicatedRoom, iq: Element, payload: Element): void {
  const leave = parseLeave(payload);
  if (!leave || (leave.presence && bareString(parseJid(leave.presence.attrs.from) ?? { local: null, domain: "", resource: null }) !== room.roomJid)) {
    refuse(work, iq, "malformed leave", { roomJid: room.roomJid, spec: BAD_REQUEST });
    return;
  }
  if (!isLocalUser(work.settings, parseJid(leave.jid))) {
    refuse(work, iq, "leave for a user of another domain", { roomJid: room.roomJid });
    return;
  }
  // An ENTER still waiting for the module is void now.
  for (const [id, query] of work.state.dmuc.pending) {
    if (query.kind === "directed" && query.roomJid === room.roomJid && query.session === leave.jid) {
      setPending(work, id, null);
      refuse(work, query.enterIq, "left before the check ended", { roomJid: room.roomJid });
    }
  }
  // A session that left here during a netsplit was told then: the primary's LEAVE at netjoin is not news.
  if (leave.presence && !room.splitLeft?.has(leave.jid)) {
    const out = cloneElement(leave.presence);
    out.attrs.to = leave.jid;
    work.effects.push(send(out));
  }
  const current = getRoom(work, room.roomJid) ?? room;
  const splitLeft = new Set(current.splitLeft ?? []);
  splitLeft.delete(leave.jid);
  putRoom(work, dropLocal(work, { ...current, splitLeft: splitLeft.size > 0 ? splitLeft : undefined }, [leave.jid]));
  work.effects.push(send(iqResult(iq)));
  work.effects.push(logEffect("info", "dmuc.left", { room: room.roomJid, session: leave.jid }));
}

/** Answers to the ENTER that never got the module's answer. */
export function expireDirected(work: Work, options: ReplicaOptions, timeoutMs: number): void {
  const now = work.context.now.getTime();
  for (const [id, query] of work.state.dmuc.pending) {
    if (query.kind === "directed" && now - query.sent >= timeoutMs) finishEnter(work, id, query, null, options);
  }
}
