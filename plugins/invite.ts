// XEP-0045 §7.8.2 mediated invitations and §7.8.3 declines: a normal message to the bare room with
// <x xmlns='muc#user'><invite to=.../></x> is relayed by the room to the invitee (decline: to the
// inviter). As in Prosody: only occupants with voice may invite; in a members-only room only admins
// and owners may invite unless allowinvites is on (then members too), and an unaffiliated invitee
// becomes a member so the invitation can be used. The invitation carries the room password.
import xml, { type Element } from "@xmpp/xml";
import { audit, send } from "../src/core/effects.js";
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import type { RoomRequest } from "../src/core/room/api.js";
import { setAffiliation } from "../src/core/room/affiliations.js";
import { occupantOfSession } from "../src/core/room/mutate.js";
import { addressed } from "../src/core/room/presence.js";
import { AFFILIATION_RANK, ROLE_RANK, affiliationOf, defaultRole } from "../src/core/room/privileges.js";
import type { Room } from "../src/core/room/types.js";
import { cloneElement } from "../src/xmpp/element.js";
import { bareString, jidToString, parseJid } from "../src/xmpp/jid.js";
import { NS } from "../src/xmpp/stanza.js";

/** The message as relayed: the sender's other payloads, without its muc#user element. */
function relayed(message: Element, room: Room, to: string, x: Element, body: string, extra: Element[] = []): Element {
  const children = message.getChildElements().filter((c) => !(c.name === "x" && c.attrs.xmlns === NS.MUC_USER));
  return xml(
    "message",
    { from: room.jid, to, id: message.attrs.id, "xml:lang": message.attrs["xml:lang"] },
    ...children.map(cloneElement),
    x,
    children.some((c) => c.name === "body") ? null : xml("body", {}, body),
    ...extra,
  );
}

const withReason = (text: string, reason: string) => (reason.trim() ? `${text} (${reason.trim()})` : text);

function invite(request: RoomRequest, room: Room, payload: Element, rooms: Parameters<Plugin["register"]>[0]["rooms"]): Room {
  const invitee = parseJid(payload.attrs.to);
  if (!invitee) throw new StanzaError("modify", "jid-malformed", "The invitee is not a valid JID", { by: room.jid });
  const inviter = occupantOfSession(room, request.fromFull);
  // Invitations come from inside the room: anyone else could use the room to send spam (§7.8.2).
  if (!inviter) throw new StanzaError("cancel", "not-acceptable", "You are not currently connected to this chat", { by: room.jid });
  if (ROLE_RANK[inviter.role] <= ROLE_RANK.visitor) throw new StanzaError("auth", "forbidden", "Visitors may not invite", { by: room.jid });
  const affiliation = affiliationOf(room, request.fromBare, request.settings.admins);
  if (room.config.membersOnly) {
    const required = room.config.allowInvites ? AFFILIATION_RANK.member : AFFILIATION_RANK.admin;
    if (AFFILIATION_RANK[affiliation] < required) throw new StanzaError("auth", "forbidden", "You may not invite others to this room", { by: room.jid });
  }

  const inviteeBare = bareString(invitee);
  const reason = payload.getChildText("reason") ?? "";
  // In a semi-anonymous room the invitee sees the inviter's room nick, unless it would see real JIDs.
  const hideJid = room.config.whois !== "anyone" && defaultRole(room, affiliationOf(room, inviteeBare)) !== "moderator";
  const from = hideJid ? `${room.jid}/${inviter.nick}` : request.fromFull;
  const x = xml(
    "x",
    { xmlns: NS.MUC_USER },
    xml("invite", { from }, xml("reason", {}, reason)),
    room.config.password ? xml("password", {}, room.config.password) : null,
  );
  // jabber:x:conference (XEP-0249 form) for older clients, as Prosody adds it.
  const conference = xml("x", { xmlns: NS.CONFERENCE, jid: room.jid }, reason);
  const message = relayed(request.stanza, room, jidToString(invitee), x, withReason(`${from} invited you to the room ${room.jid}`, reason), [conference]);

  let next = room;
  if (room.config.membersOnly && AFFILIATION_RANK[affiliationOf(room, inviteeBare)] <= AFFILIATION_RANK.none && affiliationOf(room, inviteeBare) !== "outcast") {
    // The room holds its inviter, so it cannot be dropped as abandoned here.
    next =
      setAffiliation(rooms.hooks, request, room, { jid: inviteeBare, entry: { affiliation: "member", reason: `Invited by ${from}` }, actorJid: request.fromBare }) ?? room;
  }
  request.effects.push(send(message));
  request.effects.push(
    audit({ kind: "invitation.sent", roomJid: room.jid, actorJid: request.fromBare, subjectJid: inviteeBare, details: { jid: request.fromFull, nick: inviter.nick, to: jidToString(invitee), reason } }),
  );
  return next;
}

function decline(request: RoomRequest, room: Room, payload: Element): Room {
  const declinee = parseJid(payload.attrs.to);
  if (!declinee) throw new StanzaError("modify", "jid-malformed", "The recipient is not a valid JID", { by: room.jid });
  const reason = payload.getChildText("reason") ?? "";
  // The decliner's bare JID, as in §7.8.3 example 59: the inviter already knows it.
  const x = xml("x", { xmlns: NS.MUC_USER }, xml("decline", { from: request.fromBare }, xml("reason", {}, reason)));
  const message = relayed(request.stanza, room, jidToString(declinee), x, withReason(`${request.fromBare} declined your invite to the room ${room.jid}`, reason));
  // A decline addressed to an in-room JID goes to that occupant's sessions.
  const occupant = bareString(declinee) === room.jid && declinee.resource !== null ? room.occupants.get(declinee.resource) : undefined;
  if (occupant) for (const jid of occupant.sessions.keys()) request.effects.push(send(addressed(message, jid)));
  else request.effects.push(send(message));
  request.effects.push(
    audit({ kind: "invitation.declined", roomJid: room.jid, actorJid: request.fromBare, subjectJid: occupant?.bareJid ?? bareString(declinee), details: { jid: request.fromFull, to: jidToString(declinee), reason } }),
  );
  return room;
}

export const invitePlugin: Plugin = {
  name: "invite",
  register(api) {
    api.rooms.onRoomMessage((request, room) => {
      const type = request.stanza.attrs.type ?? "normal";
      if (type !== "normal") return undefined;
      const payload = request.stanza.getChild("x", NS.MUC_USER)?.getChildElements()[0];
      if (payload?.name === "invite" && payload.attrs.to) return invite(request, room, payload, api.rooms);
      if (payload?.name === "decline" && payload.attrs.to) return decline(request, room, payload);
      return undefined;
    });
  },
};
