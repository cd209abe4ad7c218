// A replica forgets a room none of its users is in (issue 16 point 4): a copy, its link and its
// keepalives cost something for every room a user once entered, and a stranger's rooms must not stay.
//
// When the tick has seen the room without local users for FORGET_GRACE_MS (a user who comes back
// within it finds the copy as it was), the replica tells the primary it leaves (<unreplicate/>) and
// keeps the copy until the answer: a result means the primary dropped the link (a user of ours entering
// later is linked again from the start), so the copy and its row go; an error (`conflict`: the primary
// sees one of our users in the room, whose ENTER is on its way) or no answer keeps the copy, and the
// grace starts again. Only over a link that is up: a split room is given up by the link's own probes.
import xml, { type Element } from "@xmpp/xml";
import { audit, logEffect, send, store } from "../effects.js";
import { NS } from "../../xmpp/stanza.js";
import type { PendingQuery, ReplicatedRoom } from "./state.js";
import { buildUnreplicate } from "./wire.js";
import { isSplit } from "./replica-split.js";
import { getRoom, putRoom, sendDivert, setPending, touch, type Work } from "./replica-util.js";

/** How long a room stays without local users before the replica leaves it. */
export const FORGET_GRACE_MS = 60_000;
/** An <unreplicate/> unanswered this long is given up (tried again after the grace). */
const ANSWER_TIMEOUT_MS = 30_000;

type Unreplicate = Extract<PendingQuery, { kind: "unreplicate" }>;

/** The tick's part: counts the grace, asks the primary when it is over. */
export function forgetIfEmpty(work: Work, room: ReplicatedRoom): void {
  const now = work.context.now.getTime();
  if (room.local.size > 0) {
    if (room.emptySince !== undefined) putRoom(work, { ...room, emptySince: undefined });
    return;
  }
  for (const [id, query] of work.state.dmuc.pending) {
    if (query.kind !== "unreplicate" || query.roomJid !== room.roomJid) continue;
    if (now - query.sent >= ANSWER_TIMEOUT_MS) finishUnreplicate(work, id, query, null);
    return;
  }
  if (room.emptySince === undefined) {
    putRoom(work, { ...room, emptySince: now });
    return;
  }
  if (now - room.emptySince < FORGET_GRACE_MS || isSplit(room) || room.link.end.kind !== "active") return;
  const id = work.context.newId();
  setPending(work, id, { kind: "unreplicate", roomJid: room.roomJid, sent: now });
  work.effects.push(send(xml("iq", { type: "set", id, from: work.settings.domain, to: room.primaryJid }, buildUnreplicate())));
  touch(work, room.roomJid, { sent: true });
}

/** The primary's answer (null: none came): forget the room, or keep it and count the grace again. */
export function finishUnreplicate(work: Work, id: string, query: Unreplicate, answer: Element | null): void {
  setPending(work, id, null);
  const room = getRoom(work, query.roomJid);
  if (!room) return;
  if (answer?.attrs.type !== "result") {
    putRoom(work, { ...room, emptySince: work.context.now.getTime() });
    const condition = answer?.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === NS.STANZAS)?.name ?? null;
    work.effects.push(logEffect("info", "dmuc.unreplicate_refused", { room: room.roomJid, condition }));
    return;
  }
  // Users who came in meanwhile (the primary took our leaving first) are told the room is gone for them.
  for (const [session, nick] of room.local) {
    work.effects.push(send(xml("presence", { type: "unavailable", from: `${room.roomJid}/${nick}`, to: session }, xml("x", { xmlns: NS.MUC_USER }, xml("item", { affiliation: "none", role: "none" }), xml("status", { code: "110" }), xml("status", { code: "332" })))));
  }
  if (room.local.size > 0) sendDivert(work, room.roomJid, false);
  const replicated = new Map(work.state.dmuc.replicated);
  replicated.delete(room.roomJid);
  work.state = { ...work.state, dmuc: { ...work.state.dmuc, replicated } };
  work.effects.push(store({ op: "room.delete", roomJid: room.roomJid }));
  work.effects.push(logEffect("info", "dmuc.replica_forgotten", { room: room.roomJid }));
  work.effects.push(audit({ kind: "dmuc.replica_forgotten", roomJid: room.roomJid, actorJid: null, details: { primary: room.primaryJid } }));
}
