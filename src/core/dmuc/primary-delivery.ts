// The primary's side of DMUC2 delivery: after the room engine has decided what every session gets,
// the copies of a broadcast for a replica's users become one copy to the replica, what a joining
// replica user would get becomes an ENTER, and what a leaving one gets becomes a LEAVE.
import xml, { type Element } from "@xmpp/xml";
import { send, type Effect, type FanOut } from "../effects.js";
import type { RoomHandled } from "../service.js";
import type { Room } from "../room/types.js";
import { cloneElement } from "../../xmpp/element.js";
import { NS } from "../../xmpp/stanza.js";
import { buildBroadcastDelay, buildEnter, buildLeave } from "./wire.js";
import type { DmucState, ReplicaLink } from "./state.js";
import { withLink, withPending, withServed } from "./dmuc-state.js";
import { sendOnLink } from "./primary-link-send.js";
import { roomSnapshot, withEnterInFlight } from "./primary-entry.js";

export function domainOf(jid: string): string {
  const at = jid.indexOf("@");
  const slash = jid.indexOf("/");
  return jid.slice(at + 1, slash === -1 ? undefined : slash);
}

/** Whether one of the replica's users may see real JIDs: then it gets presences with them. */
export function replicaSeesJids(room: Room, link: ReplicaLink): boolean {
  if (room.config.whois === "anyone") return true;
  for (const session of link.members) {
    const nick = room.sessionNicks.get(session);
    if (nick !== undefined && room.occupants.get(nick)?.role === "moderator") return true;
  }
  return false;
}

/** The copy a replica gets of a broadcast: addressed to it, groupchat messages with the room's time. */
export function replicaCopy(stanza: Element, replicaJid: string, roomJid: string, now: Date): Element {
  const copy = cloneElement(stanza);
  copy.attrs.to = replicaJid;
  if (copy.name === "message" && copy.attrs.type === "groupchat") {
    // Addressed by its stanza-id, so that a bounce says which message the replica lost; the sender's
    // own id travels in the dmuc element and is restored by the replica.
    const stanzaId = copy.getChild("stanza-id", NS.STANZA_ID)?.attrs.id;
    const senderId = copy.attrs.id;
    if (stanzaId) copy.attrs.id = stanzaId;
    copy.append(buildBroadcastDelay(roomJid, now, stanzaId ? senderId : undefined));
  }
  return copy;
}

function statusCodes(presence: Element): number[] {
  const x = presence.getChild("x", NS.MUC_USER);
  return (x?.getChildren("status") ?? []).map((s) => Number(s.attrs.code)).filter((c) => Number.isInteger(c) && c !== 110);
}

/**
 * Rewrites `event.request.effects` for the room's active replica links and records ENTER/LEAVE
 * membership. Sessions on domains without a link are left to direct delivery; those behind a split link wait for netjoin.
 */
export function planDelivery(event: RoomHandled): void {
  const { request, roomJid, before, after } = event;
  const links = request.state.dmuc.links.get(roomJid);
  if (!links || links.size === 0) return;
  // The room's time (a message taken late keeps its own); the link's clock is the time it is handled.
  const now = request.context.now;
  const clock = (request.context.handledAt ?? now).getTime();
  let dmuc: DmucState = request.state.dmuc;

  const inBefore = before?.sessionNicks ?? new Map<string, string>();
  const inAfter = after?.sessionNicks ?? new Map<string, string>();
  // A link being resynchronised gets live broadcasts again, after its netjoin on the same stream.
  const active = [...links.values()].filter((l) => l.state === "active" || l.state === "syncing");
  const linkOfMember = (session: string) => active.find((l) => l.members.has(session));
  const linkForDomain = (domain: string) => active.find((l) => l.domain === domain);
  // A split link: its users' copies are held until netjoin brings them (never sent directly: a copy
  // lost in the cut would never be resent), unless the replica's own server said the replica is down
  // (primary-replica-down.ts): then they go directly, and the netjoin says who got which message.
  const held = [...links.values()].filter((l) => l.state === "split");
  const heldBy = (session: string) => held.find((l) => l.members.has(session));

  const joiners = new Map<string, ReplicaLink>();
  for (const session of inAfter.keys()) {
    if (inBefore.has(session)) continue;
    const link = linkForDomain(domainOf(session));
    // Already the replica's (admitted at netjoin after entering there): it needs no ENTER.
    if (link && !link.members.has(session)) joiners.set(session, link);
  }
  const leavers = new Map<string, ReplicaLink>();
  for (const session of inBefore.keys()) {
    if (inAfter.has(session)) continue;
    const link = linkOfMember(session);
    if (link) leavers.set(session, link);
  }

  const enterReplies = new Map<string, Element[]>();
  const leaveReplies = new Map<string, Element[]>();
  const copied = new Map<FanOut, Set<string>>();
  const out: Effect[] = [];
  const sentTo = new Set<string>();

  // Who the replica serves once this stanza is through: its members and its joiners.
  const served = (link: ReplicaLink): ReplicaLink => {
    const members = new Set(link.members);
    for (const [session, l] of joiners) if (l === link) members.add(session);
    return { ...link, members };
  };
  const room = after ?? before!;
  const copyFor = (fanout: FanOut, link: ReplicaLink) => {
    const done = copied.get(fanout) ?? new Set<string>();
    copied.set(fanout, done);
    if (done.has(link.replicaJid)) return;
    done.add(link.replicaJid);
    const copy = replicaCopy(fanout.forReplica(replicaSeesJids(room, served(link))), link.replicaJid, roomJid, now);
    const sent = sendOnLink(dmuc, roomJid, link.replicaJid, copy, clock);
    dmuc = sent.dmuc;
    for (const stanza of sent.out) out.push(send(stanza));
    sentTo.add(link.replicaJid);
  };

  // A copy sent directly to a down replica's user: which message it is goes into the netjoin.
  const serveDirectly = (effect: Effect & { kind: "send" }, split: ReplicaLink) => {
    out.push(effect);
    const stanza = effect.stanza;
    const stanzaId = stanza.name === "message" && stanza.attrs.type === "groupchat" ? stanza.getChild("stanza-id", NS.STANZA_ID)?.attrs.id : undefined;
    const current = dmuc.links.get(roomJid)?.get(split.replicaJid);
    if (stanzaId && current) dmuc = withLink(dmuc, roomJid, withServed(current, stanzaId, stanza.attrs.id, stanza.attrs.to ?? ""));
  };

  for (const effect of request.effects) {
    if (effect.kind !== "send") {
      out.push(effect);
      continue;
    }
    const to = effect.stanza.attrs.to ?? "";
    const link = joiners.get(to) ?? leavers.get(to) ?? (effect.fanout ? linkOfMember(to) : undefined);
    // Every broadcast a replica's user would get reaches the replica once, joiners' and leavers' too,
    // so that its roster follows the room's.
    if (effect.fanout && link) copyFor(effect.fanout, link);
    const split = link ? undefined : heldBy(to);
    if (split) {
      if (split.replicaDown) serveDirectly(effect, split);
      continue;
    }
    if (joiners.has(to)) enterReplies.set(to, [...(enterReplies.get(to) ?? []), effect.stanza]);
    else if (leavers.has(to)) leaveReplies.set(to, [...(leaveReplies.get(to) ?? []), effect.stanza]);
    else if (!(effect.fanout && link)) out.push(effect);
  }

  // Every broadcast reaches every active replica, also one none of whose users it is addressed to
  // (all of them left, or a presence only moderators see): the replica answers a later ENTER with
  // its own copy of the roster and history, which must follow the room's.
  for (const effect of request.effects) if (effect.kind === "send" && effect.fanout) for (const link of active) copyFor(effect.fanout, link);

  // LEAVE goes before the broadcast of the departure, so the replica hands the leaving session its
  // own copy (110 and the codes) and no longer counts it among the recipients.
  const leaves: Effect[] = [];
  for (const [session, link] of leavers) {
    const replies = leaveReplies.get(session) ?? [];
    const own = replies.find((r) => r.name === "presence" && r.attrs.type === "unavailable") ?? null;
    const id = request.context.newId();
    const presence = own ? cloneElement(own) : null;
    if (presence) delete presence.attrs.to;
    leaves.push(send(xml("iq", { type: "set", id, from: roomJid, to: link.replicaJid }, buildLeave({ jid: session, presence }))));
    for (const other of replies) if (other !== own) leaves.push(send(other));
    dmuc = withPending(dmuc, id, { kind: "link-iq", roomJid, replicaJid: link.replicaJid, session, fallback: own ? [own] : [], sent: clock });
    const current = dmuc.links.get(roomJid)?.get(link.replicaJid) ?? link;
    const members = new Set(current.members);
    members.delete(session);
    dmuc = withLink(dmuc, roomJid, { ...current, members, lastSent: clock });
    sentTo.delete(link.replicaJid);
  }

  // ENTER goes after the broadcast of the new presence, which the replica keeps in its roster.
  const requested = request.stanza.getChild("x", NS.MUC)?.getChild("history");
  const join = requested ? Object.assign(cloneElement(requested), { attrs: { ...requested.attrs, xmlns: NS.MUC } }) : null;
  for (const [session, link] of joiners) {
    const replies = enterReplies.get(session) ?? [];
    const nick = inAfter.get(session)!;
    const self = replies.find((r) => r.name === "presence" && r.attrs.from === `${roomJid}/${nick}` && r.attrs.type !== "unavailable" && !r.attrs.type);
    const id = request.context.newId();
    const enter = buildEnter({ jid: session, nick, silent: false, history: join, codes: self ? statusCodes(self) : [] });
    out.push(send(xml("iq", { type: "set", id, from: roomJid, to: link.replicaJid }, enter)));
    dmuc = withPending(dmuc, id, { kind: "link-iq", roomJid, replicaJid: link.replicaJid, session, fallback: replies, sent: clock, snapshot: roomSnapshot(room) });
    dmuc = withEnterInFlight(dmuc, roomJid, session, link.replicaJid);
    const current = dmuc.links.get(roomJid)?.get(link.replicaJid) ?? link;
    dmuc = withLink(dmuc, roomJid, { ...current, members: new Set(current.members).add(session), lastSent: clock });
  }

  for (const replicaJid of sentTo) {
    const link = dmuc.links.get(roomJid)?.get(replicaJid);
    if (link) dmuc = withLink(dmuc, roomJid, { ...link, lastSent: clock });
  }
  request.effects.splice(0, request.effects.length, ...leaves, ...out);
  request.state = { ...request.state, dmuc };
}
