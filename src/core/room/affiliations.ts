// Changing one affiliation (XEP-0045 §9, §10) and what follows from it: the occupant's role, the
// presence that shows the new affiliation, or a notice when the user is not in the room (§9.3,
// example 195). Shared by registration, invitations and the admin list, so they behave alike.
import xml from "@xmpp/xml";
import { audit, send, store } from "../effects.js";
import type { Hooks } from "../hooks.js";
import { NS } from "../../xmpp/stanza.js";
import type { RoomEvents, RoomRequest } from "./api.js";
import { broadcastPresence, saveOccupant } from "./broadcast.js";
import { withOccupant, withoutOccupant } from "./mutate.js";
import { dropIfAbandoned, STATUS } from "./occupancy.js";
import { addressed } from "./presence.js";
import { AFFILIATION_RANK, ROLE_RANK, defaultRole } from "./privileges.js";
import type { Affiliation, AffiliationEntry, Role, Room } from "./types.js";
import { auditRemoved } from "./audit-trail.js";

/** The bare JID that reserved `nick` in this room (§7.10), if any. */
export function reservedNickOwner(room: Room, nick: string): string | undefined {
  for (const [jid, entry] of room.affiliations) if (entry.nick === nick) return jid;
  return undefined;
}

/** The role an affiliation gives on entering; none when it may not be in the room at all. */
function roleFor(room: Room, affiliation: Affiliation): Role {
  if (room.config.membersOnly && AFFILIATION_RANK[affiliation] < AFFILIATION_RANK.member) return "none";
  return defaultRole(room, affiliation);
}

export interface AffiliationChange {
  /** Bare JID (or domain) whose affiliation changes. */
  jid: string;
  /** The new entry, or null to remove the affiliation. */
  entry: AffiliationEntry | null;
  /** The acting user, for the audit trail; null when the room itself acts. */
  actorJid: string | null;
  actorNick?: string;
  /** The actor's full JID for <actor jid/> (viewers who may see real JIDs); the requester's by default when actorNick is set. */
  actorFullJid?: string;
  reason?: string;
}

/**
 * Applies an affiliation change that the caller has already authorised. Occupants of that bare JID
 * get their new role (raised on an upgrade, lowered on a downgrade) and everyone sees their new
 * presence; occupants left without a role are removed (301 banned, 321 affiliation change).
 */
export function setAffiliation(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room, change: AffiliationChange): Room | undefined {
  const { jid, entry } = change;
  const previous = room.affiliations.get(jid)?.affiliation ?? "none";
  const affiliation: Affiliation = entry?.affiliation ?? "none";
  const affiliations = new Map(room.affiliations);
  if (entry) affiliations.set(jid, entry);
  else affiliations.delete(jid);
  let next: Room = { ...room, affiliations };
  request.effects.push(store({ op: "affiliation.set", roomJid: room.jid, jid, entry }));
  request.effects.push(
    audit({
      kind: affiliation === "outcast" ? "occupant.banned" : "affiliation.changed",
      roomJid: room.jid,
      actorJid: change.actorJid,
      subjectJid: jid,
      details: { jid, previous, affiliation, nick: entry?.nick, reason: change.reason },
    }),
  );

  const role = roleFor(next, affiliation);
  const downgrade = AFFILIATION_RANK[previous] > AFFILIATION_RANK[affiliation];
  const item = { actorNick: change.actorNick, actorJid: change.actorFullJid ?? (change.actorNick ? request.fromFull : undefined), reason: change.reason };
  const codes = role === "none" ? [affiliation === "outcast" ? STATUS.BANNED : STATUS.AFFILIATION_CHANGED] : [];
  const affected = [...next.occupants.values()].filter((o) => o.bareJid === jid);

  if (affected.length === 0) {
    // Not in the room: occupants who may see real JIDs learn of the change by a message (§9.3).
    const notice = xml(
      "message",
      { from: room.jid, id: request.context.newId() },
      xml("x", { xmlns: NS.MUC_USER }, xml("item", { jid, affiliation }, change.reason ? xml("reason", {}, change.reason) : null), ...codes.map((c) => xml("status", { code: String(c) }))),
    );
    for (const occupant of next.occupants.values()) {
      if (next.config.whois !== "anyone" && occupant.role !== "moderator") continue;
      for (const session of occupant.sessions.keys()) request.effects.push(send(addressed(notice, session)));
    }
    return next;
  }

  for (const occupant of affected) {
    const newRole = occupant.role !== role && (downgrade || ROLE_RANK[occupant.role] < ROLE_RANK[role]) ? role : occupant.role;
    if (newRole === "none") {
      broadcastPresence(request, next, occupant, { type: "unavailable", role: "none", codes, item });
      const cause = affiliation === "outcast" ? "banned" : next.config.membersOnly ? "members-only" : "affiliation";
      auditRemoved(request, next, occupant, cause, change.actorJid, change.reason);
      for (const session of occupant.sessions.keys()) request.effects.push(store({ op: "occupant.delete", roomJid: room.jid, jid: session }));
      const event = { request, room: withoutOccupant(next, occupant), occupant };
      hooks.fire("occupant/left", event);
      next = event.room;
      continue;
    }
    const updated = { ...occupant, role: newRole };
    next = withOccupant(next, updated);
    if (newRole !== occupant.role) saveOccupant(request, next, updated);
    // The affiliation in <item/> changed, so the presence is published even when the role did not.
    broadcastPresence(request, next, updated, { item });
  }
  return dropIfAbandoned(request, next);
}
