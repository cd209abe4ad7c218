// XEP-0045 §5: roles, affiliations, and who may do what to whom.
import type { Affiliation, Role, Room } from "./types.js";

export const AFFILIATION_RANK: Record<Affiliation, number> = { outcast: -1, none: 0, member: 1, admin: 2, owner: 3 };
export const ROLE_RANK: Record<Role, number> = { none: 0, visitor: 1, participant: 2, moderator: 3 };

/**
 * A user's affiliation with a room. Service administrators (DMUC_ADMINS, passed as `admins`) are
 * owners of every room (XEP-0045 §5.2), as in Prosody: this is the one place that rule lives, so
 * callers acting for a requester pass the service's admins.
 */
export function affiliationOf(room: Room, bareJid: string, admins?: ReadonlySet<string>): Affiliation {
  if (admins?.has(bareJid)) return "owner";
  const direct = room.affiliations.get(bareJid)?.affiliation;
  if (direct) return direct;
  // An affiliation of a whole server (a domain JID) applies to its users (XEP-0045 §9.1).
  const at = bareJid.indexOf("@");
  return at === -1 ? "none" : room.affiliations.get(bareJid.slice(at + 1))?.affiliation ?? "none";
}

/** The role an occupant gets on entering (XEP-0045 §5.1.2). */
export function defaultRole(room: Room, affiliation: Affiliation): Role {
  switch (affiliation) {
    case "owner":
    case "admin":
      return "moderator";
    case "member":
      return "participant";
    case "none":
      return room.config.moderated ? "visitor" : "participant";
    case "outcast":
      return "none";
  }
}

/** Whether `viewer` is shown the real JIDs of occupants (XEP-0045 §4.2, whois). */
export function canSeeRealJids(room: Room, viewerRole: Role): boolean {
  return room.config.whois === "anyone" || viewerRole === "moderator";
}

/**
 * Whether a moderator may set an occupant's role (XEP-0045 §8): never for occupants of a higher
 * affiliation; granting or revoking moderator is for admins and owners only (§9.6).
 */
export function mayChangeRole(actor: { role: Role; affiliation: Affiliation }, target: { role: Role; affiliation: Affiliation }, newRole: Role): boolean {
  if (actor.role !== "moderator") return false;
  if (AFFILIATION_RANK[target.affiliation] > AFFILIATION_RANK[actor.affiliation]) return false;
  if (newRole === "moderator" || target.role === "moderator") {
    if (AFFILIATION_RANK[actor.affiliation] < AFFILIATION_RANK.admin) return false;
    // Admins and owners stay moderators (XEP-0045 §9.7): their role follows their affiliation.
    if (AFFILIATION_RANK[target.affiliation] >= AFFILIATION_RANK.admin && newRole !== "moderator") return false;
  }
  return true;
}

/**
 * Whether an affiliation may be changed (XEP-0045 §9, §10): owners may change anything, admins may
 * change members, outcasts and unaffiliated users only, to those same affiliations.
 */
export function mayChangeAffiliation(actor: Affiliation, current: Affiliation, next: Affiliation): boolean {
  if (actor === "owner") return true;
  if (actor !== "admin") return false;
  const lower = (a: Affiliation) => AFFILIATION_RANK[a] < AFFILIATION_RANK.admin;
  return lower(current) && lower(next);
}
