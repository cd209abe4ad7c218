// The primary's side of a netsplit (docs/PROTOCOL.md "Netsplit", "Netjoin"): a link is split by a
// bounce or a missing answer; meanwhile its users' copies are held (never sent to them directly: a
// direct copy is as likely to be lost in the cut as the link's, and nothing would resend it); when the
// replica answers again, netjoin exchanges what each side missed, and the link is active again.
import xml, { type Element } from "@xmpp/xml";
import { audit, logEffect, send } from "../effects.js";
import type { PluginApi } from "../service.js";
import { presenceVariants, primarySession } from "../room/presence.js";
import { cloneElement } from "../../xmpp/element.js";
import { NS } from "../../xmpp/stanza.js";
import { parseJid } from "../../xmpp/jid.js";
import { buildLeave, buildNetjoin, DMUC, parseNetjoinAnswer, type NetjoinKick } from "./wire.js";
import type { ReplicaLink } from "./state.js";
import { withLink, withoutLink, withPending } from "./dmuc-state.js";
import { domainOf, replicaSeesJids } from "./primary-delivery.js";
import { replicaConfig, rosterForReplica, type LinkIo } from "./primary-links.js";
import { DEFAULT_LINK_TIMERS } from "./link/channel.js";
import { oldestInFlight } from "./link/sequence.js";
import { splitRebased } from "./link/stream.js";
import { sendOnLink } from "./primary-link-send.js";
import { enterSettled, enterUnconfirmed, sendSilentEnter } from "./primary-entry.js";

/** Error conditions that say the other side cannot be reached, rather than that it refused. */
export const UNREACHABLE = new Set(["remote-server-not-found", "remote-server-timeout", "service-unavailable", "recipient-unavailable"]);

export function errorCondition(stanza: Element): string | undefined {
  return stanza.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === NS.STANZAS)?.name;
}

function setLink(io: LinkIo, roomJid: string, link: ReplicaLink): void {
  io.state = { ...io.state, dmuc: withLink(io.state.dmuc, roomJid, link) };
}

function iq(io: LinkIo, to: string, from: string, type: "get" | "set", payload: Element): string {
  const id = io.context.newId();
  io.effects.push(send(xml("iq", { type, id, from, to }, payload)));
  return id;
}

/**
 * Tells everyone else that the occupants behind a split link are away (XEP-0282 §Netsplit: MAY), or,
 * at netjoin, shows their real presence again: each direct session gets its copy, each other active
 * replica one.
 */
export function announceBehindSplit(io: LinkIo, roomJid: string, link: ReplicaLink, away: boolean): void {
  const room = io.state.rooms.get(roomJid);
  if (!room) return;
  const others = [...(io.state.dmuc.links.get(roomJid)?.values() ?? [])].filter((l) => l !== link && l.replicaJid !== link.replicaJid && (l.state === "active" || l.state === "syncing"));
  const served = (session: string) => link.members.has(session) || others.some((l) => l.members.has(session));
  for (const occupant of room.occupants.values()) {
    if (![...occupant.sessions.keys()].every((s) => link.members.has(s))) continue;
    const source = away
      ? xml("presence", {}, xml("show", {}, "away"), xml("status", {}, "Netsplit: this server cannot be reached"))
      : primarySession(occupant).presence;
    const variants = presenceVariants(room, occupant, { source });
    for (const viewer of room.occupants.values()) {
      for (const session of viewer.sessions.keys()) {
        if (served(session)) continue;
        const copy = cloneElement(variants.forViewer(viewer.role));
        copy.attrs.to = session;
        io.effects.push(send(copy));
      }
    }
    for (const other of others) {
      const copy = cloneElement(variants.forViewer(replicaSeesJids(room, other) ? "moderator" : "participant"));
      copy.attrs.to = other.replicaJid;
      const sent = sendOnLink(io.state.dmuc, roomJid, other.replicaJid, copy, io.context.now.getTime());
      io.state = { ...io.state, dmuc: sent.dmuc };
      for (const stanza of sent.out) io.effects.push(send(stanza));
    }
  }
}

/** Marks a link split (once): broadcasts to the replica and its users stop until netjoin. */
export function markSplit(io: LinkIo, roomJid: string, link: ReplicaLink, reason: string, markAway = true): void {
  if (link.state === "split") return;
  const now = io.context.now.getTime();
  // What the replica has not acknowledged may be lost (the bounce that told us is one of them), and so
  // may what we sent since we last heard from it: the split counts from the older of the two, and the
  // netjoin resends it from the history; the replica keeps what it has by stanza-id. The link's stream
  // starts again (numbered from 1) with the netjoin. A link split again before its netjoin was
  // answered (syncing) still misses everything since the first split.
  const since = Math.min(now, link.splitSince ?? now, link.lastHeard, oldestInFlight(link.stream.end.channel.outbox) ?? now);
  const splitAfter = link.splitAfter !== undefined ? link.splitAfter : lastMessageReceived(io, roomJid, link);
  const stream = splitRebased(link.stream, io.context.newId(), now, DEFAULT_LINK_TIMERS);
  // Who got what directly during an earlier outage of the replica served that netjoin's catch-up; a
  // new split (not one before the netjoin was answered) starts a new record.
  const served = link.state === "active" ? undefined : link.served;
  setLink(io, roomJid, { ...link, state: "split", splitSince: since, splitAfter, lastSent: now, stream, served });
  if (markAway) announceBehindSplit(io, roomJid, link, true);
  io.effects.push(logEffect("warn", "dmuc.link_split", { room: roomJid, replica: link.replicaJid, reason, members: link.members.size }));
  io.effects.push(audit({ kind: "link.split", roomJid, actorJid: link.replicaJid, details: { reason, members: link.members.size } }));
}

/**
 * The last history message before the oldest message broadcast the replica has not acknowledged (or
 * the last of all when it acknowledged everything): what it surely has. Null: none of the history.
 */
export function lastMessageReceived(io: LinkIo, roomJid: string, link: ReplicaLink): string | null {
  const history = io.state.rooms.get(roomJid)?.history ?? [];
  const unacked = new Set(link.stream.end.channel.outbox.unacked.flatMap(({ item }) => item.getChild("stanza-id", NS.STANZA_ID)?.attrs.id ?? []));
  const first = history.findIndex((e) => unacked.has(e.stanzaId));
  const known = first < 0 ? history.length : first;
  return known > 0 ? history[known - 1]!.stanzaId : null;
}

/** The replica answers again: send it what it missed (netjoin). */
export function startNetjoin(io: LinkIo, roomJid: string, link: ReplicaLink): void {
  const room = io.state.rooms.get(roomJid);
  const now = io.context.now.getTime();
  if (!room) {
    io.state = { ...io.state, dmuc: withoutLink(io.state.dmuc, roomJid, link.replicaJid) };
    return;
  }
  // When the replica has none of the history we keep (the split point is null), its catch-up reads by
  // time: from the oldest time of a message we keep, not from the split's time, since a message taken late (a
  // submission resent after the split) keeps its original, earlier time but comes after the split.
  const splitSince = link.splitSince ?? now;
  const since = link.splitAfter === null ? room.history.reduce((oldest, e) => Math.min(oldest, e.at.getTime()), splitSince) : splitSince;
  // The messages it missed are not in the netjoin: the replica reads them from our history afterwards,
  // page by page (primary-catchup.ts), in the room's order after the last message it surely has (the
  // split point, when we recorded it), whatever the split's length. Each page says which of them some of
  // the link's users got directly while the replica was down (`served`, kept on the link until the next split).
  const netjoin = buildNetjoin({
    since: new Date(since),
    config: replicaConfig(room),
    presences: rosterForReplica(room, link),
    history: [],
    subject: room.subject,
    served: new Map(),
    ...(link.splitAfter !== undefined && { after: link.splitAfter }),
  });
  const id = iq(io, link.replicaJid, roomJid, "set", netjoin);
  io.state = { ...io.state, dmuc: withPending(io.state.dmuc, id, { kind: "netjoin", roomJid, replicaJid: link.replicaJid, sent: now }) };
  // Live broadcasts go to the replica again from now on, after the netjoin on the same stream.
  setLink(io, roomJid, { ...link, state: "syncing", replicaDown: undefined, lastHeard: now, lastSent: now });
  io.effects.push(logEffect("info", "dmuc.netjoin_sent", { room: roomJid, replica: link.replicaJid, after: link.splitAfter ?? null, since: new Date(since).toISOString() }));
}

/**
 * The replica's side of netjoin: its users' split-time messages are taken as if sent then, users it no
 * longer lists leave, users of its domain who entered directly meanwhile move to it, and the link is
 * active again.
 */
export function netjoinAnswered(io: LinkIo, api: PluginApi, roomJid: string, replicaJid: string, answer: Element, markAway = true): void {
  const link = io.state.dmuc.links.get(roomJid)?.get(replicaJid);
  if (!link) return;
  const parsed = parseNetjoinAnswer(answer.getChild("netjoin", DMUC));
  const since = link.splitSince ?? io.context.now.getTime();
  const admitted = admitSplitEntries(io, api, roomJid, replicaJid, parsed?.occupants ?? []);
  let taken = 0;
  for (const message of parsed?.messages ?? []) {
    const from = parseJid(message.attrs.from);
    if (!from || from.domain !== link.domain || from.resource === null || message.attrs.type !== "groupchat") {
      io.effects.push(logEffect("warn", "dmuc.netjoin_message_refused", { room: roomJid, replica: replicaJid, from: message.attrs.from }));
      continue;
    }
    const stamp = new Date(message.getChild("delay", NS.DELAY)?.attrs.stamp ?? "");
    // The original time, within the split: a replica cannot date messages before it or in the future.
    const at = Number.isNaN(stamp.getTime()) ? io.context.now : new Date(Math.min(io.context.now.getTime(), Math.max(since, stamp.getTime())));
    const stanza = cloneElement(message);
    stanza.attrs = { ...stanza.attrs, to: roomJid };
    const outcome = api.inject(io.state, stanza, { now: at, newId: io.context.newId, catchUp: true, handledAt: io.context.now });
    io.state = outcome.state;
    io.effects.push(...outcome.effects);
    taken++;
  }
  const kicked = applySplitKicks(io, api, roomJid, parsed?.kicks ?? []);
  const room = io.state.rooms.get(roomJid);
  const listed = new Set(parsed?.occupants.map((o) => o.jid) ?? []);
  let left = 0;
  for (const session of link.members) {
    const nick = room?.sessionNicks.get(session);
    // A session whose ENTER the replica never took is not its to lose: it is moved again below.
    if (nick === undefined || listed.has(session) || enterUnconfirmed(io.state, roomJid, session)) continue;
    const outcome = api.inject(io.state, xml("presence", { from: session, to: `${roomJid}/${nick}`, type: "unavailable" }), io.context);
    io.state = outcome.state;
    io.effects.push(...outcome.effects);
    left++;
  }
  const current = io.state.dmuc.links.get(roomJid)?.get(replicaJid) ?? link;
  const after = io.state.rooms.get(roomJid);
  const members = new Set<string>();
  for (const session of after?.sessionNicks.keys() ?? []) {
    if (domainOf(session) !== link.domain) continue;
    members.add(session);
    if (listed.has(session)) {
      enterSettled(io, roomJid, session);
      continue;
    }
    sendSilentEnter(io, roomJid, replicaJid, session);
  }
  setLink(io, roomJid, { ...current, state: "active", members, splitSince: undefined, splitAfter: undefined, replicaDown: undefined, resent: undefined, lastHeard: io.context.now.getTime() });
  // Those shown away during the split are back (what they changed meanwhile came with the netjoin).
  if (markAway) announceBehindSplit(io, roomJid, { ...current, members }, false);
  io.effects.push(logEffect("info", "dmuc.link_healed", { room: roomJid, replica: replicaJid, taken, left, admitted, kicked, members: members.size }));
  io.effects.push(audit({ kind: "link.healed", roomJid, actorJid: replicaJid, details: { messagesTaken: taken, usersLeft: left, usersAdmitted: admitted, usersKicked: kicked, members: members.size } }));
}

/**
 * Users who entered at a split replica (where the operator allows it): the room decides now, as if
 * they had entered at netjoin. Admitted, they already have the roster from the replica, so only the
 * others hear of them; refused (banned, members-only, nick taken...), the replica is told to let them go
 * with the room's error. Returns how many were admitted.
 */
function admitSplitEntries(io: LinkIo, api: PluginApi, roomJid: string, replicaJid: string, occupants: { jid: string; nick: string }[]): number {
  let admitted = 0;
  for (const { jid, nick } of occupants) {
    const link = io.state.dmuc.links.get(roomJid)?.get(replicaJid);
    const room = io.state.rooms.get(roomJid);
    if (!link || !room || room.sessionNicks.has(jid) || domainOf(jid) !== link.domain) continue;
    // Counted as the replica's before the room sees them: their copies go through the replica.
    setLink(io, roomJid, { ...link, members: new Set(link.members).add(jid) });
    const outcome = api.inject(io.state, xml("presence", { from: jid, to: `${roomJid}/${nick}` }, xml("x", { xmlns: NS.MUC })), io.context);
    io.state = outcome.state;
    const own = outcome.effects.filter((e) => e.kind === "send" && e.stanza.attrs.to === jid);
    io.effects.push(...outcome.effects.filter((e) => !own.includes(e)));
    if (io.state.rooms.get(roomJid)?.sessionNicks.has(jid)) {
      admitted++;
      continue;
    }
    const refusal = own.flatMap((e) => (e.kind === "send" && e.stanza.name === "presence" ? [e.stanza] : []))[0] ?? null;
    const current = io.state.dmuc.links.get(roomJid)?.get(replicaJid);
    if (current) {
      const members = new Set(current.members);
      members.delete(jid);
      setLink(io, roomJid, { ...current, members });
    }
    const presence = refusal ? cloneElement(refusal) : null;
    if (presence) delete presence.attrs.to;
    iq(io, replicaJid, roomJid, "set", buildLeave({ jid, presence }));
    io.effects.push(logEffect("info", "dmuc.split_entry_refused", { room: roomJid, replica: replicaJid, session: jid, nick }));
  }
  return admitted;
}

/**
 * Kicks by a split replica's moderators: the room applies each as that moderator's own muc#admin
 * request, with its own checks. The kicked session was already told by the replica, and the moderator
 * expects no answer: what the room would send them about it is left out. Returns how many took effect.
 */
function applySplitKicks(io: LinkIo, api: PluginApi, roomJid: string, kicks: NetjoinKick[]): number {
  let done = 0;
  for (const kick of kicks) {
    const room = io.state.rooms.get(roomJid);
    if (!room?.sessionNicks.has(kick.actor) || room.sessionNicks.get(kick.jid) !== kick.nick) continue;
    // The replica let that session go already: no LEAVE for it, and nothing through the replica.
    for (const link of io.state.dmuc.links.get(roomJid)?.values() ?? []) {
      if (!link.members.has(kick.jid)) continue;
      const members = new Set(link.members);
      members.delete(kick.jid);
      setLink(io, roomJid, { ...link, members });
    }
    const id = io.context.newId();
    const request = xml(
      "iq",
      { type: "set", id, from: kick.actor, to: roomJid },
      xml("query", { xmlns: NS.MUC_ADMIN }, xml("item", { nick: kick.nick, role: "none" }, kick.reason ? xml("reason", {}, kick.reason) : null)),
    );
    const outcome = api.inject(io.state, request, io.context);
    io.state = outcome.state;
    io.effects.push(...outcome.effects.filter((e) => !(e.kind === "send" && (e.stanza.attrs.to === kick.jid || (e.stanza.attrs.id === id && e.stanza.attrs.to === kick.actor)))));
    if (!io.state.rooms.get(roomJid)?.sessionNicks.has(kick.jid)) done++;
  }
  return done;
}
