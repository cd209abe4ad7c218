// XEP-0045 §8.2-§8.6 and §9.6-§9.7: a moderator kicks (307), grants or revokes voice; an admin grants
// or revokes moderator status; moderators read the voice and moderator lists. The muc#admin IQ itself
// is routed by plugins/admin.ts, which calls these for items that carry a role.
import xml, { type Element } from "@xmpp/xml";
import { audit, store } from "../src/core/effects.js";
import type { Hooks } from "../src/core/hooks.js";
import { StanzaError, forbidden, notAllowed } from "../src/core/stanza-error.js";
import type { RoomEvents, RoomRequest } from "../src/core/room/api.js";
import { broadcastPresence, saveOccupant, sendRoster } from "../src/core/room/broadcast.js";
import { occupantOfSession, withOccupant, withoutOccupant } from "../src/core/room/mutate.js";
import { STATUS } from "../src/core/room/occupancy.js";
import { auditRemoved, type ExitCause } from "../src/core/room/audit-trail.js";
import type { ItemExtras } from "../src/core/room/presence.js";
import { AFFILIATION_RANK, affiliationOf, defaultRole } from "../src/core/room/privileges.js";
import type { Affiliation, Occupant, Role, Room } from "../src/core/room/types.js";
import { NS } from "../src/xmpp/stanza.js";

export const ROLES: readonly Role[] = ["moderator", "participant", "visitor", "none"];

export function isRole(value: string | undefined): value is Role {
  return value !== undefined && (ROLES as readonly string[]).includes(value);
}

/** Who acts: the sender's affiliation, and its role (its occupant's, or the one it would enter with). */
export interface Actor {
  readonly jid: string;
  readonly bareJid: string;
  readonly affiliation: Affiliation;
  readonly role: Role;
  /** The sender's nick when it is in the room. */
  readonly nick?: string;
}

export function actorOf(request: RoomRequest, room: Room): Actor {
  const affiliation = affiliationOf(room, request.fromBare, request.settings.admins);
  const occupant = occupantOfSession(room, request.fromFull);
  return { jid: request.fromFull, bareJid: request.fromBare, affiliation, role: occupant?.role ?? "none", nick: occupant?.nick };
}

/** The <actor/> and <reason/> of the presence that announces a change made by `actor`. */
export function itemExtras(actor: Actor | null, reason: string | undefined): ItemExtras {
  return { actorNick: actor?.nick, actorJid: actor?.jid, reason };
}

/**
 * Whether `actor` may give `target` the role `role` (XEP-0045 §8, §9.6-§9.7): a throwing check with the
 * XEP's errors. Only moderators act on roles (forbidden); nobody acts on a higher affiliation
 * (not-allowed); granting or revoking moderator status is for admins and owners (forbidden); admins
 * and owners keep voice and moderator status (not-allowed), though an owner may kick an admin.
 */
export function checkRoleChange(actor: Actor, target: { role: Role; affiliation: Affiliation }, role: Role): void {
  if (actor.role !== "moderator") throw forbidden("Only moderators may change roles");
  const actorRank = AFFILIATION_RANK[actor.affiliation];
  const targetRank = AFFILIATION_RANK[target.affiliation];
  if (targetRank > actorRank) throw notAllowed("You may not change the role of a user with a higher affiliation");
  const touchesModerator = role === "moderator" || target.role === "moderator";
  if (touchesModerator && actorRank < AFFILIATION_RANK.admin) throw forbidden("Only admins and owners may grant or revoke moderator status");
  if (targetRank >= AFFILIATION_RANK.admin && role !== "moderator" && !(role === "none" && actorRank > targetRank)) {
    throw notAllowed("Admins and owners keep their voice and moderator status");
  }
}

/**
 * Removes every session of an occupant with an unavailable presence carrying `codes` (307 kicked,
 * 301 banned, 321 affiliation change, 322 members-only) and fires occupant/left. The caller drops an
 * abandoned room.
 */
export function removeOccupant(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room, occupant: Occupant, codes: number[], item: ItemExtras = {}): Room {
  // A removed occupant's last show/status is not relayed: the room speaks for it.
  const source = xml("presence", { type: "unavailable" });
  broadcastPresence(request, room, occupant, { type: "unavailable", role: "none", source, codes, item });
  for (const jid of occupant.sessions.keys()) request.effects.push(store({ op: "occupant.delete", roomJid: room.jid, jid }));
  auditRemoved(request, room, occupant, exitCause(codes), request.fromBare, item.reason);
  const event = { request, room: withoutOccupant(room, occupant), occupant };
  hooks.fire("occupant/left", event);
  return event.room;
}

function exitCause(codes: number[]): ExitCause {
  if (codes.includes(STATUS.BANNED)) return "banned";
  if (codes.includes(STATUS.MEMBERS_ONLY)) return "members-only";
  if (codes.includes(STATUS.AFFILIATION_CHANGED)) return "affiliation";
  return "kicked";
}

/**
 * Gives an occupant a new role and tells the room. A kick (role none) removes it with 307. An
 * occupant who gains or loses moderator status in a semi-anonymous room is sent everyone's presence
 * again, since which real JIDs it may see changed.
 */
export function applyRole(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room, occupant: Occupant, role: Role, item: ItemExtras): Room {
  if (role === "none") return removeOccupant(hooks, request, room, occupant, [STATUS.KICKED], item);
  const previous = occupant.role;
  const updated: Occupant = { ...occupant, role };
  const next = withOccupant(room, updated);
  saveOccupant(request, next, updated);
  broadcastPresence(request, next, updated, { item });
  if (next.config.whois !== "anyone" && (previous === "moderator") !== (role === "moderator")) {
    for (const jid of updated.sessions.keys()) sendRoster(request, next, updated, jid);
  }
  return next;
}

/** One role item of a muc#admin set: `nick` names the occupant (§8.2-§8.4, §9.6-§9.7). */
export function setRole(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room, nick: string, role: Role, reason: string | undefined): Room {
  const occupant = room.occupants.get(nick);
  if (!occupant) throw new StanzaError("cancel", "item-not-found", `No occupant is named ${nick}`);
  const actor = actorOf(request, room);
  checkRoleChange(actor, { role: occupant.role, affiliation: affiliationOf(room, occupant.bareJid, request.settings.admins) }, role);
  request.effects.push(
    audit({
      kind: role === "none" ? "occupant.kicked" : "role.changed",
      roomJid: room.jid,
      actorJid: actor.bareJid,
      subjectJid: occupant.bareJid,
      details: { nick, jid: occupant.bareJid, previous: occupant.role, role, reason },
    }),
  );
  if (occupant.role === role) {
    // Nothing changes, but the occupant's presence is published again as a confirmation (Prosody).
    broadcastPresence(request, room, occupant, { item: itemExtras(actor, reason) });
    return room;
  }
  return applyRole(hooks, request, room, occupant, role, itemExtras(actor, reason));
}

/** §8.5, §9.7: the occupants with one role, for a moderator; one item per session. */
export function roleList(request: RoomRequest, room: Room, role: Role): Element {
  const affiliation = affiliationOf(room, request.fromBare, request.settings.admins);
  const occupant = occupantOfSession(room, request.fromFull);
  const actorRole = occupant?.role ?? defaultRole(room, affiliation);
  if (actorRole !== "moderator") throw forbidden("Only moderators may see the occupants by role");
  const items: Element[] = [];
  for (const listed of room.occupants.values()) {
    if (listed.role !== role) continue;
    const listedAffiliation = affiliationOf(room, listed.bareJid);
    for (const jid of listed.sessions.keys()) items.push(xml("item", { affiliation: listedAffiliation, role, jid, nick: listed.nick }));
  }
  return xml("query", { xmlns: NS.MUC_ADMIN }, ...items);
}
