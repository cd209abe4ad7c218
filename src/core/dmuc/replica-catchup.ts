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
 * `deliver`) delivered to local users with their delay; our own users' messages coming back are stored
 * only (they saw them). Returns the room and the stanza-id of the last message given, had or not.
 */
export function takeMissed(
  work: Work,
  room: ReplicatedRoom,
  messages: readonly Element[],
  deliver: boolean,
  until: string | null = null,
): { room: ReplicatedRoom; stored: number; delivered: number; last: string | null; reachedLive: boolean } {
  let current = room;
  const known = new Set(current.history.map((e) => e.stanzaId));
  const fresh: HistoryEntry[] = [];
  const toDeliver: HistoryEntry[] = [];
  let last: string | null = null;
  let reachedLive = false;
  for (const message of messages) {
    const entry = historyEntry(work, current, message, delayOf(message) ?? work.context.now);
    if (until !== null && entry.stanzaId === until) {
      reachedLive = true;
      break;
    }
    last = entry.stanzaId;
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
  for (const entry of toDeliver) for (const [session] of current.local) work.effects.push(send(replayEntry(entry, current.roomJid, session)));
  return { room: current, stored: fresh.length, delivered: toDeliver.length, last, reachedLive };
}

/**
 * After a netjoin: read what the room stored since the last message we have (or since the split when
 * we have none). A catch-up already under way (cut by a restart or a new split) goes on from its place.
 */
export function startCatchUp(work: Work, roomJid: string, since: Date, deliver: boolean): void {
  const room = getRoom(work, roomJid);
  if (!room) return;
  const under = room.catchUp;
  // A new netjoin follows a new split: what comes live from now on starts after a new gap (until: null).
  const catchUp: CatchUp = under
    ? { since: under.since < since ? under.since : since, after: under.after, deliver, asked: null, until: null }
    : { since, after: room.history.at(-1)?.stanzaId ?? null, deliver, asked: null, until: null };
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
  const taken = takeMissed(work, room, page.messages, room.catchUp.deliver, room.catchUp.until ?? null);
  const after = taken.last ?? room.catchUp.after;
  work.effects.push(logEffect("debug", "dmuc.catchup_page", { room: room.roomJid, messages: page.messages.length, stored: taken.stored, delivered: taken.delivered, complete: page.complete }));
  if (page.complete || taken.reachedLive || taken.last === null) {
    putRoom(work, { ...taken.room, catchUp: null });
    work.effects.push(logEffect("info", "dmuc.catchup_done", { room: room.roomJid, after }));
    return;
  }
  askPage(work, { ...taken.room, catchUp: { ...room.catchUp, after } });
}

/**
 * A message the room broadcast to us live: during a catch-up, the first one marks where the catch-up
 * ends (it and what follows came on the link; read again, they could reach users twice).
 */
export function noteLive(work: Work, roomJid: string, message: Element): void {
  const room = getRoom(work, roomJid);
  if (!room?.catchUp || (room.catchUp.until ?? null) !== null || message.name !== "message" || message.attrs.type !== "groupchat") return;
  const sid = message.getChildren("stanza-id", NS.STANZA_ID).find((s) => s.attrs.by === roomJid)?.attrs.id;
  if (sid) putRoom(work, { ...room, catchUp: { ...room.catchUp, until: sid } });
}

/** A page asked for and not answered within the link timeout: asked again, from the same place. */
export function tickCatchUp(work: Work, roomJid: string, options: ReplicaOptions): void {
  const room = getRoom(work, roomJid);
  if (!room?.catchUp || room.catchUp.asked === null || room.link.end.kind !== "active") return;
  if (work.context.now.getTime() - room.catchUp.asked < linkTimers(room, options).splitAfterMs) return;
  askPage(work, { ...room, catchUp: room.catchUp });
}
