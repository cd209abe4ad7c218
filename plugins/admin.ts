// XEP-0045 §8-§10 through the muc#admin IQ: affiliation lists (§9.5, §9.8, §10.5, §10.8) and their
// editing (§9.1-§9.4, §10.3-§10.7: ban with 301, member grant/revoke, owners and admins), role
// changes and lists (plugins/moderation.ts). A request may carry several items: they are applied in
// order, all or nothing (a failing item throws, and the engine then drops every effect). Turning a
// room members-only removes its non-members with 322 (§10.2).
import xml, { type Element } from "@xmpp/xml";
import type { Plugin } from "../src/core/service.js";
import type { Hooks } from "../src/core/hooks.js";
import { StanzaError, badRequest, forbidden, jidMalformed, notAllowed } from "../src/core/stanza-error.js";
import { reservedNickOwner, setAffiliation } from "../src/core/room/affiliations.js";
import type { RoomEvents, RoomRequest } from "../src/core/room/api.js";
import { dropIfAbandoned, STATUS } from "../src/core/room/occupancy.js";
import { prepareNick } from "../src/core/room/nick.js";
import { AFFILIATION_RANK, affiliationOf } from "../src/core/room/privileges.js";
import type { Affiliation, AffiliationEntry, Occupant, Room } from "../src/core/room/types.js";
import { jidToString, parseJid } from "../src/xmpp/jid.js";
import { NS } from "../src/xmpp/stanza.js";
import { actorOf, isRole, removeOccupant, roleList, setRole, type Actor } from "./moderation.js";

export const AFFILIATIONS: readonly Affiliation[] = ["owner", "admin", "member", "outcast", "none"];

function isAffiliation(value: string | undefined): value is Affiliation {
  return value !== undefined && (AFFILIATIONS as readonly string[]).includes(value);
}

/**
 * Whether `actor` may change an affiliation from `current` to `next` (XEP-0045 §9, §10), with the
 * XEP's errors: only admins and owners edit the lists (forbidden); only owners edit the owner and
 * admin lists (forbidden); an admin may not touch an owner or another admin (not-allowed, §9.1);
 * the last owner may not be removed (conflict, §10.6).
 */
export function checkAffiliationChange(room: Room, actor: Actor, jid: string, current: Affiliation, next: Affiliation): void {
  const actorRank = AFFILIATION_RANK[actor.affiliation];
  if (actorRank < AFFILIATION_RANK.admin) throw forbidden("Only admins and owners may change affiliations");
  if (actor.affiliation !== "owner") {
    if (AFFILIATION_RANK[current] >= AFFILIATION_RANK.admin) throw notAllowed("Only owners may change the affiliation of an admin or owner");
    if (AFFILIATION_RANK[next] >= AFFILIATION_RANK.admin) throw forbidden("Only owners may edit the owner and admin lists");
    return;
  }
  if (current === "owner" && next !== "owner") {
    const others = [...room.affiliations].some(([other, entry]) => other !== jid && entry.affiliation === "owner");
    if (!others) throw new StanzaError("cancel", "conflict", "A room needs at least one owner");
  }
}

/** Who may read an affiliation list (Prosody's rule): admins and owners, the lists at or below their own; any member of a non-anonymous members-only room. */
function checkMayList(room: Room, actor: Affiliation, list: Affiliation): void {
  const rank = AFFILIATION_RANK[actor];
  if (rank >= AFFILIATION_RANK.admin && rank >= AFFILIATION_RANK[list]) return;
  if (room.config.membersOnly && room.config.whois === "anyone" && rank >= AFFILIATION_RANK.member) return;
  throw forbidden("You may not see this list");
}

function affiliationList(room: Room, affiliation: Affiliation): Element {
  const items: Element[] = [];
  for (const [jid, entry] of room.affiliations) {
    if (entry.affiliation !== affiliation) continue;
    items.push(xml("item", { affiliation, jid, nick: entry.nick }, entry.reason ? xml("reason", {}, entry.reason) : null));
  }
  return xml("query", { xmlns: NS.MUC_ADMIN }, ...items);
}

function occupantByJid(room: Room, jid: string): Occupant | undefined {
  const nick = room.sessionNicks.get(jid);
  if (nick !== undefined) return room.occupants.get(nick);
  for (const occupant of room.occupants.values()) if (occupant.bareJid === jid) return occupant;
  return undefined;
}

/** One <item/> of a muc#admin set, validated and resolved against the room (Prosody's compatibility rules). */
interface AdminItem {
  jid?: string;
  nick?: string;
  affiliation?: string;
  role?: string;
  reason?: string;
}

function parseItem(room: Room, item: Element): AdminItem {
  const parsed: AdminItem = { affiliation: item.attrs.affiliation, role: item.attrs.role, reason: item.getChildText("reason") ?? undefined };
  if (item.attrs.jid !== undefined) {
    const jid = parseJid(item.attrs.jid);
    if (!jid) throw jidMalformed("The item's JID is not valid");
    parsed.jid = jidToString(jid);
  }
  if (item.attrs.nick !== undefined) {
    const nick = prepareNick(item.attrs.nick);
    if (nick === null) throw jidMalformed("The item's nickname is not valid");
    parsed.nick = nick;
  }
  if (parsed.jid === undefined && parsed.nick !== undefined) {
    // Some clients name the occupant by nick when changing an affiliation (Prosody issue 1224).
    parsed.jid = room.occupants.get(parsed.nick)?.bareJid;
  } else if (parsed.role !== undefined && parsed.nick === undefined && parsed.jid !== undefined) {
    // Role changes name a nick; a JID of an occupant will do.
    parsed.nick = occupantByJid(room, parsed.jid)?.nick;
  }
  return parsed;
}

function changeAffiliation(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room, item: AdminItem & { jid: string; affiliation: string }): Room | undefined {
  const parsed = parseJid(item.jid);
  if (!parsed || parsed.resource !== null) throw jidMalformed("Affiliations are granted to bare JIDs");
  if (!isAffiliation(item.affiliation)) throw badRequest(`Unknown affiliation ${item.affiliation}`);
  const { jid, affiliation, nick, reason } = item;
  const actor = actorOf(request, room);
  const existing = room.affiliations.get(jid);
  checkAffiliationChange(room, actor, jid, existing?.affiliation ?? "none", affiliation);

  let next = room;
  const keepsNick = AFFILIATION_RANK[affiliation] >= AFFILIATION_RANK.member;
  if (nick !== undefined && keepsNick) {
    const reservedBy = reservedNickOwner(room, nick);
    if (reservedBy !== undefined && reservedBy !== jid) throw new StanzaError("cancel", "conflict", "That nickname is reserved by someone else");
    // Someone else using the nick now reserved leaves the room (Prosody: 307, "This nickname is reserved").
    const holder = room.occupants.get(nick);
    if (holder && holder.bareJid !== jid) next = removeOccupant(hooks, request, next, holder, [STATUS.KICKED], { reason: "This nickname is reserved" });
  }

  let entry: AffiliationEntry | null = null;
  if (affiliation !== "none") {
    const keptReason = reason ?? existing?.reason;
    const keptNick = keepsNick ? (nick ?? existing?.nick) : undefined;
    entry = { affiliation, ...(keptReason !== undefined ? { reason: keptReason } : {}), ...(keptNick !== undefined ? { nick: keptNick } : {}) };
  }
  return setAffiliation(hooks, request, next, { jid, entry, actorJid: actor.bareJid, actorFullJid: actor.jid, actorNick: actor.nick, reason });
}

export const adminPlugin: Plugin = {
  name: "admin",
  register({ rooms }) {
    rooms.iq.get(NS.MUC_ADMIN, "query", ({ request, target, affiliation }, query) => {
      const item = query.getChild("item");
      if (!item) throw badRequest("Expected an <item/> naming an affiliation or a role");
      const { affiliation: list, role } = item.attrs;
      if (list !== undefined && role === undefined) {
        if (!isAffiliation(list)) throw badRequest(`Unknown affiliation ${list}`);
        checkMayList(target, affiliation, list);
        return affiliationList(target, list);
      }
      if (role !== undefined && list === undefined) {
        if (!isRole(role)) throw badRequest(`Unknown role ${role}`);
        return roleList(request, target, role);
      }
      throw badRequest("Expected an <item/> naming either an affiliation or a role");
    });

    rooms.iq.set(NS.MUC_ADMIN, "query", (iq, query) => {
      const items = query.getChildren("item");
      if (items.length === 0) throw badRequest("Expected at least one <item/>");
      let room: Room | undefined = iq.target;
      for (const element of items) {
        if (!room) break; // the room ended (a temporary room lost its last occupant)
        const item = parseItem(room, element);
        if (item.affiliation !== undefined && item.jid !== undefined && item.role === undefined) {
          room = changeAffiliation(rooms.hooks, iq.request, room, { ...item, jid: item.jid, affiliation: item.affiliation });
        } else if (item.role !== undefined && item.nick !== undefined && item.affiliation === undefined) {
          if (!isRole(item.role)) throw badRequest(`Unknown role ${item.role}`);
          room = dropIfAbandoned(iq.request, setRole(rooms.hooks, iq.request, room, item.nick, item.role, item.reason));
        } else if (item.role !== undefined && item.affiliation === undefined && item.jid !== undefined) {
          throw new StanzaError("cancel", "item-not-found", "No occupant has this JID");
        } else {
          throw badRequest("An item changes either the affiliation of a JID or the role of a nick");
        }
      }
      iq.room = room;
      return null;
    });

    // §10.2: a room that becomes members-only removes its non-members, with 322.
    rooms.hooks.on("room/config-changed", (event) => {
      if (event.previous.membersOnly || !event.room.config.membersOnly) return;
      let room = event.room;
      for (const occupant of event.room.occupants.values()) {
        const affiliation = affiliationOf(room, occupant.bareJid, event.request.settings.admins);
        if (AFFILIATION_RANK[affiliation] >= AFFILIATION_RANK.member) continue;
        room = removeOccupant(rooms.hooks, event.request, room, occupant, [STATUS.MEMBERS_ONLY]);
      }
      event.room = room;
    });
  },
};
