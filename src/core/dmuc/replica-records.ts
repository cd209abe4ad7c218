// Keeps a replica's local sessions in the occupants table (rows of its 'replica' room), so that a
// restarted replica still knows whom it serves: a write when a session is taken or let go.
import { store, type Effect } from "../effects.js";
import type { Role } from "../room/types.js";
import { NS } from "../../xmpp/stanza.js";
import type { StoredLinkPosition } from "../store-writes.js";
import type { Element } from "@xmpp/xml";
import { freshRestoredStream, restoredStream, type LinkStream } from "./link/stream.js";
import type { Outgoing } from "./link/sequence.js";
import type { CatchUp, DmucState, SplitMessage, Submission } from "./state.js";

const STORED_ROLES: readonly Role[] = ["moderator", "participant", "visitor"];

export function localSessionWrites(before: DmucState["replicated"], after: DmucState["replicated"], effects: Effect[]): void {
  if (before === after) return;
  for (const [roomJid, room] of after) {
    const old = before.get(roomJid);
    if (old?.local === room.local && old.roster === room.roster) continue;
    for (const [session, nick] of room.local) {
      const presence = room.roster.get(nick);
      if (!presence || (old?.local.get(session) === nick && old.roster.get(nick) === presence)) continue;
      const item = presence.getChild("x", NS.MUC_USER)?.getChild("item");
      const role = STORED_ROLES.find((r) => r === item?.attrs.role) ?? "participant";
      const occupantId = presence.getChild("occupant-id", NS.OCCUPANT_ID)?.attrs.id ?? "";
      effects.push(store({ op: "occupant.save", roomJid, nick, jid: session, role, occupantId, presence }));
    }
    for (const session of old?.local.keys() ?? []) {
      if (!room.local.has(session)) effects.push(store({ op: "occupant.delete", roomJid, jid: session }));
    }
  }
}

/**
 * Keeps a replica's link durable (docs/PROTOCOL.md "Durability"): its place in both streams, the
 * origin-ids its users saw early, and the queue of what its users sent that the primary has not
 * acknowledged (submissions on the link, messages kept for the netjoin). The rows are written in the
 * same transaction as the change, before anything that follows from it is sent: a submission leaves
 * only once its row is committed, and a restarted replica resends exactly what was not acknowledged.
 */
export function linkStateWrites(before: DmucState["replicated"], after: DmucState["replicated"], effects: Effect[]): void {
  if (before === after) return;
  for (const [roomJid, room] of after) {
    const old = before.get(roomJid);
    if (old?.link === room.link && old.echoes === room.echoes && old.splitQueue === room.splitQueue && old.catchUp === room.catchUp) continue;
    const out = room.link.end.channel.outbox;
    const inbox = room.link.end.channel.inbox;
    const oldOut = old?.link.end.channel.outbox;
    const sameStream = old?.link.id === room.link.id;
    if (!old || !sameStream || oldOut!.nextSeq !== out.nextSeq || old.link.peer !== room.link.peer || old.link.end.channel.inbox.applied !== inbox.applied || !sameSet(old.echoes, room.echoes) || !sameCatchUp(old.catchUp, room.catchUp)) {
      const catchUp = room.catchUp ? { since: room.catchUp.since, after: room.catchUp.after } : null;
      const position = { outStream: room.link.id, outNextSeq: out.nextSeq, inStream: room.link.peer, inApplied: inbox.applied, earlyOriginIds: [...room.echoes], catchUp };
      effects.push(store({ op: "link.position", roomJid, peerJid: room.primaryJid, position }));
    }
    // Acknowledged (or, for a stream given up, every row of it).
    if (old && oldOut!.unacked.length > 0) {
      const firstLeft = sameStream ? (out.unacked[0]?.seq ?? out.nextSeq) : oldOut!.nextSeq;
      if (oldOut!.unacked[0]!.seq < firstLeft) effects.push(store({ op: "queue.acknowledged", roomJid, stream: old.link.id, upTo: firstLeft - 1 }));
    }
    if (old?.splitQueue !== room.splitQueue) {
      const kept = old?.splitQueue ?? [];
      const appended = kept.every((q, i) => room.splitQueue[i] === q);
      if (!appended) effects.push(store({ op: "queue.split-taken", roomJid }));
      for (const q of room.splitQueue.slice(appended ? kept.length : 0)) effects.push(store({ op: "queue.add", roomJid, stream: null, seq: null, stanza: q.stanza, at: q.at }));
    }
    const firstNew = sameStream ? oldOut!.nextSeq : 1;
    for (const e of out.unacked) {
      if (e.seq >= firstNew) effects.push(store({ op: "queue.add", roomJid, stream: room.link.id, seq: e.seq, stanza: e.item.stanza, at: new Date(e.item.at) }));
    }
  }
}

/** The committed part of a catch-up: where it reads from (not when it last asked). */
function sameCatchUp(a: CatchUp | null | undefined, b: CatchUp | null | undefined): boolean {
  if (!a || !b) return !a === !b;
  return a.since.getTime() === b.since.getTime() && a.after === b.after;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/** A committed row of a replica's queue (what queue.add wrote and no acknowledgement deleted). */
export interface QueuedStanza {
  readonly stream: string | null;
  readonly seq: number | null;
  readonly stanza: Element;
  readonly at: Date;
}

/**
 * A replica's link as it committed it, for a restarted replica: its stream with the submissions the
 * primary had not acknowledged (sent again, with their numbers, when the room answers), its place in
 * the primary's stream, the origin-ids its users saw early, and the messages its users sent during a
 * split, kept for the netjoin. Nothing committed (a link older than the durable link): a new stream `newId`.
 */
export function restoredReplicaLink(
  position: StoredLinkPosition | null,
  queued: readonly QueuedStanza[],
  newId: string,
  now: number,
): { link: LinkStream<Submission>; splitQueue: SplitMessage[]; echoes: Set<string>; catchUp: CatchUp | null } {
  const splitQueue: SplitMessage[] = queued.filter((q) => q.seq === null).map((q) => ({ session: q.stanza.attrs.from ?? "", at: q.at, stanza: q.stanza }));
  const echoes = new Set(position?.earlyOriginIds ?? []);
  // Read again at the next netjoin from where it was (delivered: the netjoin says whether).
  const catchUp = position?.catchUp ? { since: position.catchUp.since, after: position.catchUp.after, deliver: true, asked: null } : null;
  if (!position?.outStream || position.outNextSeq === null) return { link: freshRestoredStream<Submission>(newId, now), splitQueue, echoes, catchUp };
  const unacked: Outgoing<Submission>[] = queued
    .filter((q) => q.seq !== null && q.stream === position.outStream)
    .map((q) => ({ seq: q.seq!, item: { stanza: q.stanza, at: q.at.getTime() }, transmitted: null }))
    .sort((a, b) => a.seq - b.seq);
  const saved = { id: position.outStream, outbox: { nextSeq: position.outNextSeq, unacked }, peer: position.inStream, inbox: { applied: position.inApplied } };
  return { link: restoredStream(saved, now), splitQueue, echoes, catchUp };
}
