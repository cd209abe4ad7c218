// A netjoin's catch-up on the replica (docs/PROTOCOL.md "Netjoin"): after the netjoin's roster, the
// replica reads what it missed from the room's history one page at a time, each page asked for from
// the last message it has (in the room's order), so that a split of any length reaches it without
// flooding s2s, and a replica restarted halfway goes on from where it was (the position is committed).
import xml, { type Element } from "@xmpp/xml";
import { logEffect, send } from "../effects.js";
import { replayEntry } from "../room/history.js";
import { NS } from "../../xmpp/stanza.js";
import type { HistoryEntry } from "../room/types.js";
import type { CatchUp, PendingQuery, ReplicatedRoom } from "./state.js";
import { buildCatchUpRequest, DMUC, parseCatchUpPage } from "./wire.js";
import { appendHistory, historyEntry, takeEcho } from "./replica-fanout.js";
import { getRoom, linkTimers, putRoom, setPending, touch, type ReplicaOptions, type Work } from "./replica-util.js";

function delayOf(message: Element): Date | null {
  const stamp = message.getChild("delay", NS.DELAY)?.attrs.stamp;
  const at = stamp ? new Date(stamp) : null;
  return at && !Number.isNaN(at.getTime()) ? at : null;
}

/**
 * Messages of the room we may lack, in the room's order: those we do not have are stored and (with
 * `deliver`) delivered to local users with their delay, except to the sessions the primary says it
 * served them to directly while we were down (`served`); our own users' messages coming back are stored
 * only (they saw them). Returns the room and the stanza-id of the last message given, had or not.
 */
export function takeMissed(
  work: Work,
  room: ReplicatedRoom,
  messages: readonly Element[],
  deliver: boolean,
  live: ReadonlySet<string> = new Set(),
  served: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
): { room: ReplicatedRoom; stored: number; delivered: number; last: string | null } {
  let current = room;
  const known = new Set(current.history.map((e) => e.stanzaId));
  const fresh: HistoryEntry[] = [];
  const toDeliver: HistoryEntry[] = [];
  let last: string | null = null;
  for (const message of messages) {
    const entry = historyEntry(work, current, message, delayOf(message) ?? work.context.now);
    last = entry.stanzaId;
    // Came live on the link since the catch-up started: stored and delivered then (our history may
    // have dropped it since, past its length).
    if (live.has(entry.stanzaId)) continue;
    // A retracted message (its tombstone) keeps its place in the order, and is not delivered.
    if (!message.getChild("body")) continue;
    if (known.has(entry.stanzaId)) continue;
    known.add(entry.stanzaId);
    fresh.push(entry);
    const echoed = takeEcho(current, message);
    if (echoed) current = echoed;
    else toDeliver.push(entry);
  }
  current = appendHistory(work, current, fresh);
  if (!deliver) toDeliver.length = 0;
  for (const entry of toDeliver) {
    const had = served.get(entry.stanzaId);
    for (const [session] of current.local) if (!had?.has(session)) work.effects.push(send(replayEntry(entry, current.roomJid, session)));
  }
  return { room: current, stored: fresh.length, delivered: toDeliver.length, last };
}

/**
 * After a netjoin: read what the room stored after the split point the primary gave (`splitAfter`: the
 * last message we surely have, in the room's order; null: none, read from the split's time), or without
 * one after the last message we have (or since the split when we have none). Not by time, and not from our own last message when the primary
 * knows better: a message that reached us early, past a gap, would hide the gap. A catch-up already
 * under way (cut by a restart or a new split) goes on from its place, or from the new split point when
 * that is older.
 */
export function startCatchUp(work: Work, roomJid: string, since: Date, deliver: boolean, splitAfter?: string | null): void {
  const room = getRoom(work, roomJid);
  if (!room) return;
  const under = room.catchUp;
  const order = (id: string | null) => (id === null ? -1 : room.history.findIndex((e) => e.stanzaId === id));
  // What came live during a catch-up cut by a new split was delivered then: still not delivered again.
  const catchUp: CatchUp = under
    ? {
        since: under.since < since ? under.since : since,
        after: splitAfter === null ? null : splitAfter !== undefined && under.after !== null && order(splitAfter) >= 0 && order(splitAfter) < order(under.after) ? splitAfter : under.after,
        deliver,
        asked: null,
        live: under.live ?? new Set(),
      }
    : { since, after: splitAfter !== undefined ? splitAfter : (room.history.at(-1)?.stanzaId ?? null), deliver, asked: null, live: new Set() };
  askPage(work, { ...room, catchUp });
}

function askPage(work: Work, room: ReplicatedRoom & { catchUp: CatchUp }): void {
  // One page in flight: an answer to an earlier request (one that timed out, or of an earlier netjoin) is not taken.
  for (const [old, q] of work.state.dmuc.pending) if (q.kind === "catchup" && q.roomJid === room.roomJid) setPending(work, old, null);
  const id = work.context.newId();
  const now = work.context.now.getTime();
  work.effects.push(send(xml("iq", { type: "get", id, from: work.settings.domain, to: room.primaryJid }, buildCatchUpRequest({ since: room.catchUp.since, after: room.catchUp.after }))));
  putRoom(work, { ...room, catchUp: { ...room.catchUp, asked: now } });
  setPending(work, id, { kind: "catchup", roomJid: room.roomJid, sent: now });
  touch(work, room.roomJid, { sent: true });
}

/** A page (or an error) from the room: stored and delivered, then the next page, or the end. */
export function onCatchUpAnswer(work: Work, id: string, query: Extract<PendingQuery, { kind: "catchup" }>, answer: Element): void {
  setPending(work, id, null);
  const room = getRoom(work, query.roomJid);
  if (!room?.catchUp) return;
  const page = answer.attrs.type === "result" ? parseCatchUpPage(answer.getChild("catchup", DMUC)) : null;
  if (!page) {
    // Asked again after the link timeout (tickCatchUp), from the same place.
    work.effects.push(logEffect("warn", "dmuc.catchup_failed", { room: room.roomJid, condition: answer.getChild("error")?.getChildElements()[0]?.name ?? "malformed" }));
    return;
  }
  const taken = takeMissed(work, room, page.messages, room.catchUp.deliver, room.catchUp.live ?? new Set(), page.served);
  const after = taken.last ?? room.catchUp.after;
  work.effects.push(logEffect("debug", "dmuc.catchup_page", { room: room.roomJid, messages: page.messages.length, stored: taken.stored, delivered: taken.delivered, complete: page.complete }));
  if (page.complete || taken.last === null) {
    putRoom(work, { ...taken.room, catchUp: null });
    work.effects.push(logEffect("info", "dmuc.catchup_done", { room: room.roomJid, after }));
    return;
  }
  askPage(work, { ...taken.room, catchUp: { ...room.catchUp, after } });
}

/**
 * A message the room broadcast to us live: during a catch-up, noted so that a page bringing it again
 * (read from the history table) does not reach users twice.
 */
export function noteLive(work: Work, roomJid: string, message: Element): void {
  const room = getRoom(work, roomJid);
  if (!room?.catchUp || message.name !== "message" || message.attrs.type !== "groupchat") return;
  const sid = message.getChildren("stanza-id", NS.STANZA_ID).find((s) => s.attrs.by === roomJid)?.attrs.id;
  if (sid && !room.catchUp.live?.has(sid)) putRoom(work, { ...room, catchUp: { ...room.catchUp, live: new Set(room.catchUp.live).add(sid) } });
}

/** A page asked for and not answered within the link timeout: asked again, from the same place. */
export function tickCatchUp(work: Work, roomJid: string, options: ReplicaOptions): void {
  const room = getRoom(work, roomJid);
  if (!room?.catchUp || room.catchUp.asked === null || room.link.end.kind !== "active") return;
  if (work.context.now.getTime() - room.catchUp.asked < linkTimers(room, options).splitAfterMs) return;
  askPage(work, { ...room, catchUp: room.catchUp });
}
