// Fan-out of room stanzas to every session of every occupant.
import xml, { type Element } from "@xmpp/xml";
import { NS } from "../../xmpp/stanza.js";
import { canSeeRealJids } from "./privileges.js";
import { send, store, type Effect } from "../effects.js";
import type { RoomRequest } from "./api.js";
import { addressed, presenceVariants, type PresenceOptions } from "./presence.js";
import type { Occupant, Room } from "./types.js";

/** Sends an occupant's presence to the room: its own sessions get the self variant (110). */
export function broadcastPresence(request: RoomRequest, room: Room, occupant: Occupant, options: PresenceOptions = {}, selfSessions?: Iterable<string>): void {
  const variants = presenceVariants(room, occupant, options);
  const fanout = { forReplica: (seesJids: boolean) => variants.forViewer(seesJids ? "moderator" : "participant") };
  const self = new Set(selfSessions ?? occupant.sessions.keys());
  const visible = room.config.presenceBroadcast.includes(options.role ?? occupant.role) || options.type === "unavailable";
  for (const viewer of room.occupants.values()) {
    if (viewer.nick === occupant.nick) continue;
    if (!visible && viewer.role !== "moderator") continue;
    const stanza = variants.forViewer(viewer.role);
    for (const jid of viewer.sessions.keys()) request.effects.push(send(addressed(stanza, jid), fanout));
  }
  const own = variants.forSelf();
  for (const jid of self) request.effects.push(send(addressed(own, jid), fanout));
}

/** Sends the presence of every other occupant to one new session (XEP-0045 §7.2.3). */
export function sendRoster(request: RoomRequest, room: Room, viewer: Occupant, to: string): void {
  for (const occupant of room.occupants.values()) {
    if (occupant.nick === viewer.nick) continue;
    if (!room.config.presenceBroadcast.includes(occupant.role) && viewer.role !== "moderator") continue;
    request.effects.push(send(addressed(presenceVariants(room, occupant).forViewer(viewer.role), to)));
  }
  // Role "none" in presence broadcast shows members who are not there, as unavailable under their
  // reserved nick (Prosody's extension of muc#roomconfig_presencebroadcast).
  if (!room.config.presenceBroadcast.includes("none")) return;
  const present = new Set([...room.occupants.values()].map((o) => o.bareJid));
  for (const [jid, entry] of room.affiliations) {
    if (!entry.nick || present.has(jid) || entry.affiliation === "outcast" || room.occupants.has(entry.nick)) continue;
    const item = xml("item", { affiliation: entry.affiliation, role: "none", nick: entry.nick, jid: canSeeRealJids(room, viewer.role) ? jid : undefined });
    request.effects.push(send(xml("presence", { from: `${room.jid}/${entry.nick}`, to, type: "unavailable" }, xml("x", { xmlns: NS.MUC_USER }, item))));
  }
}

/** Sends a prepared stanza (no `to`) to every session in the room. */
export function broadcastStanza(request: RoomRequest, room: Room, stanza: Element): void {
  request.effects.push(...broadcastEffects(room, stanza));
}

/** The sends of a prepared stanza (no `to`) to every session in the room. */
export function broadcastEffects(room: Room, stanza: Element): Effect[] {
  const fanout = { forReplica: () => stanza };
  const effects: Effect[] = [];
  for (const occupant of room.occupants.values()) {
    for (const jid of occupant.sessions.keys()) effects.push(send(addressed(stanza, jid), fanout));
  }
  return effects;
}

export function saveOccupant(request: RoomRequest, room: Room, occupant: Occupant): void {
  for (const s of occupant.sessions.values()) {
    request.effects.push(
      store({ op: "occupant.save", roomJid: room.jid, nick: occupant.nick, jid: s.jid, role: occupant.role, occupantId: occupant.occupantId, presence: s.presence }),
    );
  }
}

export function saveRoom(request: RoomRequest, room: Room): void {
  request.effects.push(store({ op: "room.save", roomJid: room.jid, config: room.config, subject: room.subject, locked: room.locked, occupantIdSecret: room.occupantIdSecret }));
}
