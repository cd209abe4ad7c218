// Groupchat messages, subject changes and private messages (XEP-0045 §7.4, §7.5, §8.1).
import { cloneElement } from "../../xmpp/element.js";
import xml, { type Element } from "@xmpp/xml";
import { send, store } from "../effects.js";
import type { Hooks } from "../hooks.js";
import { StanzaError } from "../stanza-error.js";
import { NS } from "../../xmpp/stanza.js";
import type { RoomEvents, RoomRequest } from "./api.js";
import { broadcastStanza, saveRoom } from "./broadcast.js";
import { occupantOfSession } from "./mutate.js";
import { addressed } from "./presence.js";
import type { HistoryEntry, Occupant, Room } from "./types.js";

const notInRoom = (room: Room) => new StanzaError("modify", "not-acceptable", "You are not currently connected to this chat", { by: room.jid });

/** Client-sent elements that only the room may assert (XEP-0359 §3, XEP-0421 §4). */
function stripRoomAssertions(message: Element, roomJid: string): Element[] {
  return message.children.filter((c): c is Element => {
    if (typeof c === "string") return false;
    if (c.name === "stanza-id" && c.attrs.xmlns === NS.STANZA_ID && c.attrs.by === roomJid) return false;
    if (c.name === "occupant-id" && c.attrs.xmlns === NS.OCCUPANT_ID) return false;
    if (c.name === "delay" && c.attrs.xmlns === NS.DELAY) return false;
    return true;
  });
}

export function handleGroupchat(hooks: Hooks<RoomEvents>, request: RoomRequest, room: Room): Room {
  const { stanza } = request;
  if (request.nick !== null) throw new StanzaError("modify", "bad-request", "Groupchat messages go to the room, not to an occupant", { by: room.jid });
  const occupant = occupantOfSession(room, request.fromFull);
  if (!occupant) throw notInRoom(room);
  if (occupant.role === "visitor" || occupant.role === "none") {
    throw new StanzaError("auth", "forbidden", "You have no voice in this room", { by: room.jid });
  }

  const event = { request, room, occupant, message: stanza };
  const veto = hooks.fire("message/groupchat", event);
  if (veto) throw veto;
  room = event.room;

  const subject = stanza.getChild("subject");
  const body = stanza.getChild("body");
  if (subject && !body) return changeSubject(request, room, occupant, subject.getText());
  return broadcastMessage(request, room, occupant, stanza);
}

function changeSubject(request: RoomRequest, room: Room, occupant: Occupant, text: string): Room {
  if (!room.config.changeSubject && occupant.role !== "moderator") {
    throw new StanzaError("auth", "forbidden", "You are not allowed to change the subject", { by: room.jid });
  }
  const next: Room = { ...room, subject: { text, nick: occupant.nick, at: request.context.now } };
  saveRoom(request, next);
  return broadcastMessage(request, next, occupant, request.stanza);
}

const HINTS = "urn:xmpp:hints";

/**
 * Whether the room keeps a message (history, and the stanza-id that names it in the archive), as
 * Prosody's muc_mam decides: never with a <no-store/> hint (XEP-0334), otherwise when it has a body.
 * Chat states, markers and other body-less messages are relayed only.
 */
export function isKept(message: Element): boolean {
  if (message.getChild("no-store", HINTS) || message.getChild("no-permanent-store", HINTS)) return false;
  return message.getChild("body") !== undefined;
}

/** Stamps a message with the room's identifiers, stores it in history when it is kept, and fans it out. */
function broadcastMessage(request: RoomRequest, room: Room, occupant: Occupant, message: Element): Room {
  const kept = isKept(message);
  // A stanza-id promises that the archive has the message (XEP-0359 §5): only kept messages get one.
  const stanzaId = kept ? request.context.newId() : undefined;
  const out = xml(
    "message",
    { type: "groupchat", from: `${room.jid}/${occupant.nick}`, id: message.attrs.id, "xml:lang": message.attrs["xml:lang"] },
    ...stripRoomAssertions(message, room.jid).map(cloneElement),
    stanzaId ? xml("stanza-id", { xmlns: NS.STANZA_ID, id: stanzaId, by: room.jid }) : null,
    xml("occupant-id", { xmlns: NS.OCCUPANT_ID, id: occupant.occupantId }),
  );
  let next = room;
  if (stanzaId && room.config.historyLength > 0) {
    const entry: HistoryEntry = {
      stanzaId,
      nick: occupant.nick,
      occupantId: occupant.occupantId,
      senderJid: request.fromFull,
      at: request.context.now,
      stanza: out,
      chars: out.toString().length,
    };
    const kept = room.history.length >= room.config.historyLength ? room.history.slice(room.history.length - room.config.historyLength + 1) : room.history;
    next = { ...room, history: [...kept, entry] };
    request.effects.push(store({ op: "history.append", roomJid: room.jid, entry }));
  }
  if (request.context.catchUp) {
    // Taken late (netjoin): the copies say when it was sent; the stored one gets its delay on replay.
    const late = cloneElement(out);
    late.append(xml("delay", { xmlns: NS.DELAY, from: room.jid, stamp: request.context.now.toISOString() }));
    broadcastStanza(request, next, late);
    return next;
  }
  broadcastStanza(request, next, out);
  return next;
}

/** A private message to one occupant (§7.5): only between occupants, never revealing real JIDs. */
export function handlePrivateMessage(request: RoomRequest, room: Room): Room {
  const { stanza } = request;
  const sender = occupantOfSession(room, request.fromFull);
  if (!sender) throw notInRoom(room);
  const recipient = request.nick === null ? undefined : room.occupants.get(request.nick);
  if (!recipient) throw new StanzaError("cancel", "item-not-found", "No occupant with that nickname", { by: room.jid });
  const allowed =
    room.config.allowPm === "anyone" ||
    (room.config.allowPm === "participants" && sender.role !== "visitor") ||
    (room.config.allowPm === "moderators" && sender.role === "moderator");
  if (!allowed) throw new StanzaError("cancel", "not-allowed", "Private messages are not allowed in this room", { by: room.jid });

  const out = xml(
    "message",
    { type: stanza.attrs.type, id: stanza.attrs.id, from: `${room.jid}/${sender.nick}`, "xml:lang": stanza.attrs["xml:lang"] },
    ...stanza.children
      .filter((c): c is Element => typeof c !== "string" && !(c.name === "x" && c.attrs.xmlns === NS.MUC_USER) && !(c.name === "occupant-id" && c.attrs.xmlns === NS.OCCUPANT_ID))
      .map(cloneElement),
    // Marks the message as a MUC private message for the recipient's client (XEP-0045 §7.5).
    xml("x", { xmlns: NS.MUC_USER }),
    // XEP-0421 §4: private messages carry the sender's occupant-id too.
    xml("occupant-id", { xmlns: NS.OCCUPANT_ID, id: sender.occupantId }),
  );
  for (const jid of recipient.sessions.keys()) request.effects.push(send(addressed(out, jid)));
  return room;
}
