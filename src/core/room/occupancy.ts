// Entering, presence updates, nick changes and leaving (XEP-0045 §7.1-§7.3, §7.6, §7.14).
import { keptPresence } from "./kept-presence.js";
import xml, { type Element } from "@xmpp/xml";
import { send, store } from "../effects.js";
import { addressed, presenceVariants } from "./presence.js";
import type { Hooks } from "../hooks.js";
import { StanzaError, withAudit } from "../stanza-error.js";
import { NS } from "../../xmpp/stanza.js";
import type { RoomEvents, RoomRequest } from "./api.js";
import { broadcastPresence, saveOccupant, saveRoom, sendRoster } from "./broadcast.js";
import { occupantOfSession, withOccupant, withoutOccupant, withoutSession, withSession } from "./mutate.js";
import { prepareNick } from "./nick.js";
import { respondToProbe } from "./probe.js";
import { affiliationOf, defaultRole } from "./privileges.js";
import { DEFAULT_ROOM_CONFIG, newRoom, type Occupant, type Room } from "./types.js";
import { auditCreated, auditDestroyed, auditEntered, auditLeft, auditNickChange, type ExitCause } from "./audit-trail.js";
import { occupantIdFor } from "./occupant-id.js";

export const STATUS = {
  NON_ANONYMOUS: 100,
  SELF: 110,
  CONFIG_CHANGED: 104,
  LOGGING: 170,
  NOT_LOGGING: 171,
  NOW_NON_ANONYMOUS: 172,
  NOW_SEMI_ANONYMOUS: 173,
  CREATED: 201,
  NICK_MODIFIED: 210,
  BANNED: 301,
  NEW_NICK: 303,
  KICKED: 307,
  AFFILIATION_CHANGED: 321,
  MEMBERS_ONLY: 322,
  SHUTDOWN: 332,
  ERROR_KICK: 333,
} as const;

/** The room's answer when a presence of an existing session arrives, or a new one enters. */
export function handlePresence(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room | undefined): Room | undefined {
  const { stanza } = request;
  const type = stanza.attrs.type;
  const current = room ? occupantOfSession(room, request.fromFull) : undefined;

  if (type === "unavailable") return room && current ? leave(hooks, request, room, current, stanza) : room;
  if (type === "error") {
    // A presence bounce from an occupant's session means it is gone (Prosody kicks on any of them).
    return room && current ? removeForError(hooks, request, room, current, stanza) : room;
  }
  if (type === "probe") {
    if (room) respondToProbe(request, room);
    return room;
  }
  if (type !== undefined) return room; // subscriptions carry no room meaning

  if (request.nick === null) throw new StanzaError("modify", "jid-malformed", "A nickname is required to enter a room");
  const nick = prepareNick(request.nick);
  if (nick === null) throw new StanzaError("modify", "jid-malformed", "Nickname must pass strict validation", { by: request.roomJid });

  if (room && current) {
    return current.nick === nick ? updatePresence(hooks, request, room, current) : changeNick(request, room, current, nick);
  }
  if (!stanza.getChild("x", NS.MUC)) return notInRoom(request, room, nick);
  return enter(hooks, request, room, nick);
}

function enter(hooks: Hooks<RoomEvents>, request: RoomRequest, existing: Room | undefined, nick: string): Room {
  const join = request.stanza.getChild("x", NS.MUC)!;
  let room: Room;
  let created = false;
  if (existing) {
    room = existing;
  } else {
    const veto = hooks.fire("room/pre-create", { request });
    if (veto) throw veto;
    const fresh = newRoom(request.roomJid, request.settings.roomDefaults ?? DEFAULT_ROOM_CONFIG, `${request.context.newId()}${request.context.newId()}`);
    const event = {
      request,
      room: { ...fresh, affiliations: new Map([[request.fromBare, { affiliation: "owner" as const }]]) },
    };
    hooks.fire("room/created", event);
    room = event.room;
    created = true;
  }

  const affiliation = affiliationOf(room, request.fromBare, request.settings.admins);
  const holder = room.occupants.get(nick);
  if (holder && holder.bareJid !== request.fromBare) throw new StanzaError("cancel", "conflict", "That nickname is already in use", { by: room.jid });
  const role = holder ? holder.role : defaultRole(room, affiliation);

  if (!holder) {
    const veto = hooks.fire("occupant/pre-join", { request, room, nick, affiliation, role, join });
    if (veto) {
      // Refused entries (wrong password, banned, members-only, full) are audited though nothing changes.
      const refused = withBy(veto, room.jid);
      throw withAudit(refused, {
        kind: "occupant.entry_refused",
        roomJid: room.jid,
        actorJid: request.fromBare,
        subjectJid: request.fromBare,
        details: { jid: request.fromFull, nick, affiliation, condition: refused.spec.condition, text: refused.spec.text },
      });
    }
  }

  const session = { jid: request.fromFull, presence: keptPresence(request.stanza) };
  // Derived, not remembered: the same id on every visit without a map that grows with every visitor.
  const occupantId = occupantIdFor(room, request.fromBare);
  const occupant: Occupant = holder
    ? withSession(holder, session)
    : { nick, bareJid: request.fromBare, role, occupantId, sessions: new Map([[session.jid, session]]) };
  room = withOccupant(room, occupant);

  if (created) {
    // The room row first: affiliation and occupant rows refer to it.
    saveRoom(request, room);
    request.effects.push(store({ op: "affiliation.set", roomJid: room.jid, jid: request.fromBare, entry: { affiliation: "owner" } }));
    auditCreated(request, room);
  }
  saveOccupant(request, room, occupant);
  auditEntered(request, room, occupant, request.fromFull);

  sendRoster(request, room, occupant, request.fromFull);
  const selfCodes: number[] = [];
  if (room.config.whois === "anyone") selfCodes.push(STATUS.NON_ANONYMOUS);
  if (created) selfCodes.push(STATUS.CREATED);
  if (nick !== request.nick) selfCodes.push(STATUS.NICK_MODIFIED);
  // A second session of a present occupant is announced to that session only.
  broadcastPresence(request, room, occupant, { selfCodes, selfId: request.stanza.attrs.id }, holder ? [request.fromFull] : undefined);

  const event = { request, room, occupant, join };
  hooks.fire("occupant/joined", event);
  return event.room;
}

function updatePresence(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room, occupant: Occupant): Room {
  const updated = withSession(occupant, { jid: request.fromFull, presence: keptPresence(request.stanza) });
  const next = withOccupant(room, updated);
  saveOccupant(request, next, updated);
  // A presence with <x xmlns='muc'/> from a session already in the room is a client that lost track
  // of it (a resync): like Prosody, answer as to a join, with the roster, history and subject.
  const join = request.stanza.getChild("x", NS.MUC);
  if (join) sendRoster(request, next, updated, request.fromFull);
  broadcastPresence(request, next, updated, { selfId: request.stanza.attrs.id });
  if (!join) return next;
  const event = { request, room: next, occupant: updated, join };
  hooks.fire("occupant/joined", event);
  return event.room;
}

function changeNick(request: RoomRequest, room: Room, occupant: Occupant, nick: string): Room {
  const holder = room.occupants.get(nick);
  if (holder && holder.bareJid !== occupant.bareJid) throw new StanzaError("cancel", "conflict", "That nickname is already in use", { by: room.jid });
  if (holder || occupant.sessions.size > 1) {
    throw new StanzaError("cancel", "not-acceptable", "Change the nickname of every session at once is not supported", { by: room.jid });
  }
  const reserved = [...room.affiliations.entries()].find(([jid, entry]) => entry.nick === nick && jid !== occupant.bareJid);
  if (reserved) throw new StanzaError("cancel", "conflict", "That nickname is reserved", { by: room.jid });

  auditNickChange(request, room, occupant, nick);
  // §7.6: unavailable with 303 and the new nick under the old one, then available under the new one.
  // Like Prosody, the unavailable one carries the muc#user <x/> only, not the earlier presence's payload.
  const bare = xml("presence", { type: "unavailable" });
  broadcastPresence(request, room, occupant, { type: "unavailable", codes: [STATUS.NEW_NICK], item: { nick }, source: bare });
  request.effects.push(store({ op: "occupant.delete", roomJid: room.jid, jid: request.fromFull }));
  const renamed: Occupant = { ...occupant, nick, sessions: new Map([[request.fromFull, { jid: request.fromFull, presence: keptPresence(request.stanza) }]]) };
  const next = withOccupant(withoutOccupant(room, occupant), renamed);
  saveOccupant(request, next, renamed);
  broadcastPresence(request, next, renamed, { selfId: request.stanza.attrs.id });
  return next;
}

/** Removes one session; the occupant leaves with its last session. */
export function leave(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room, occupant: Occupant, source: Element, codes: number[] = [], cause: ExitCause = "left"): Room | undefined {
  request.effects.push(store({ op: "occupant.delete", roomJid: room.jid, jid: request.fromFull }));
  auditLeft(request, room, occupant, request.fromFull, cause, cause === "left" ? occupant.bareJid : null, source.getChildText("status") ?? undefined);
  if (occupant.sessions.size > 1) {
    const { room: next, occupant: remaining } = withoutSession(room, occupant, request.fromFull);
    // Only the leaving session hears that it left; the others see the occupant's remaining presence.
    const own = presenceVariants(room, occupant, { type: "unavailable", role: "none", source, codes }).forSelf();
    request.effects.push(send(addressed(own, request.fromFull)));
    broadcastPresence(request, next, remaining, {}, []);
    return next;
  }
  broadcastPresence(request, room, occupant, { type: "unavailable", role: "none", source, codes });
  const event = { request, room: withoutOccupant(room, occupant), occupant };
  hooks.fire("occupant/left", event);
  return dropIfAbandoned(request, event.room);
}

/**
 * A temporary room ends with its last occupant (XEP-0045 §10.9); a persistent one lets its history go
 * from memory (it is in history_messages; the shell reads it back when someone enters).
 */
export function dropIfAbandoned(request: RoomRequest, room: Room): Room | undefined {
  if (room.occupants.size > 0) return room;
  if (room.config.persistent) return room.history.length === 0 ? room : { ...room, history: [], historyOnDisk: true };
  request.effects.push(store({ op: "room.delete", roomJid: room.jid }));
  auditDestroyed(request, room, null, { cause: "abandoned" });
  return undefined;
}

/**
 * Removes the session that sent an error (a bounce) with status 333 (XEP-0045 §15.7, "service removes
 * user because of error response"), its own sessions getting 110 too, as Prosody's handle_kickable.
 * No 307: XEP-0045 1.33 advises against it for disconnects.
 */
export function removeForError(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room, occupant: Occupant, error: Element): Room | undefined {
  const source = xml("presence", { type: "unavailable" }, xml("status", {}, errorKickMessage(room, error)));
  return leave(hooks, request, room, occupant, source, occupant.sessions.size > 1 ? [] : [STATUS.ERROR_KICK], "error");
}

/** The status text of an occupant removed for a bounced presence, as Prosody words it (issue 978). */
function errorKickMessage(room: Room, stanza: Element): string {
  const error = stanza.getChild("error");
  const condition = error?.getChildElements().find((c) => c.attrs.xmlns === NS.STANZAS && c.name !== "text")?.name;
  const text = error?.getChildText("text", NS.STANZAS);
  let message = `Kicked: ${condition ? condition.replace(/-/g, " ") : "presence error"}`;
  if (text && room.config.whois === "anyone") message += `: ${text}`;
  return message;
}

/**
 * A presence without <x xmlns='muc'/> from someone who is not in the room comes from a client that lost
 * track of it (or a groupchat 1.0 join): XEP-0045 §7.2.1 (1.32+) RECOMMENDS an explicit kick with 110,
 * 307 and 333 rather than a join that would leave the client half in the room.
 */
function notInRoom(request: RoomRequest, room: Room | undefined, nick: string): Room | undefined {
  const affiliation = room ? affiliationOf(room, request.fromBare, request.settings.admins) : "none";
  request.effects.push(
    send(
      xml(
        "presence",
        { from: `${request.roomJid}/${nick}`, to: request.fromFull, type: "unavailable" },
        xml(
          "x",
          { xmlns: NS.MUC_USER },
          xml("item", { affiliation, role: "none" }, xml("reason", {}, "You are not in the room.")),
          ...[STATUS.SELF, STATUS.KICKED, STATUS.ERROR_KICK].map((code) => xml("status", { code: String(code) })),
        ),
      ),
    ),
  );
  return room;
}

function withBy(error: StanzaError, by: string): StanzaError {
  return error.spec.by ? error : new StanzaError(error.spec.type, error.spec.condition, error.spec.text, { ...error.spec, by });
}
