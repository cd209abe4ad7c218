// Groupchat messages, subject changes and private messages (XEP-0045 §7.4, §7.5, §8.1).
import { cloneElement } from "../../xmpp/element.js";
import xml, { type Element } from "@xmpp/xml";
import { send, store } from "../effects.js";
import type { Hooks } from "../hooks.js";
import { StanzaError } from "../stanza-error.js";
import { NS } from "../../xmpp/stanza.js";
import { bareString, parseJid } from "../../xmpp/jid.js";
import { parseAuthorRetraction } from "../../xmpp/retraction.js";
import type { RoomEvents, RoomRequest } from "./api.js";
import { broadcastStanza, saveRoom } from "./broadcast.js";
import { occupantOfSession } from "./mutate.js";
import { addressed } from "./presence.js";
import type { HistoryEntry, Occupant, Room } from "./types.js";
import { trimHistory } from "./history.js";
import { auditMessage, auditSubject } from "./audit-trail.js";

const notInRoom = (room: Room) => new StanzaError("modify", "not-acceptable", "You are not currently connected to this chat", { by: room.jid });

/** Whether a client-given JID is the room (or one of its occupants), compared after normalisation (XEP-0359 §4). */
function isRoomJid(jid: string | undefined, roomJid: string): boolean {
  const parsed = parseJid(jid);
  return parsed !== null && bareString(parsed) === roomJid;
}

/**
 * Client-sent elements that only the room may assert: its own stanza-id (`by` the room in any letter
 * case, XEP-0359 §3-4), occupant-ids (XEP-0421 §4), and delays that claim to come from the room, in the
 * current (XEP-0203) and the legacy (jabber:x:delay, XEP-0091) namespace, as Prosody strips them.
 * Other delays stay: an owner turning a one-to-one chat into a room sends its history with delays from
 * the original senders (XEP-0045 §7.9).
 */
function stripRoomAssertions(message: Element, roomJid: string): Element[] {
  return message.children.filter((c): c is Element => {
    if (typeof c === "string") return false;
    if (c.name === "stanza-id" && c.attrs.xmlns === NS.STANZA_ID && isRoomJid(c.attrs.by, roomJid)) return false;
    if (c.name === "occupant-id" && c.attrs.xmlns === NS.OCCUPANT_ID) return false;
    if (c.name === "delay" && c.attrs.xmlns === NS.DELAY && isRoomJid(c.attrs.from, roomJid)) return false;
    if (c.name === "x" && c.attrs.xmlns === NS.LEGACY_DELAY && isRoomJid(c.attrs.from, roomJid)) return false;
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
  auditSubject(request, room, occupant, room.subject?.text ?? null, text);
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
  // Retractions are kept too, so that a client catching up from the archive learns of them.
  return message.getChild("body") !== undefined || parseAuthorRetraction(message) !== null;
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
  // Every kept message is stored: the archive (XEP-0313) and what auditors read, kept by retention;
  // `archived` says whether MAM serves it (muc#roomconfig_enablearchiving). The room keeps only its
  // last historyLength in memory.
  if (stanzaId) {
    const entry: HistoryEntry = {
      stanzaId,
      nick: occupant.nick,
      occupantId: occupant.occupantId,
      senderJid: request.fromFull,
      at: request.context.now,
      stanza: out,
      chars: out.toString().length,
    };
    // A room with no join history (length 0) stores the message for its archive only.
    if (room.config.historyLength > 0) {
      next = { ...room, history: trimHistory([...room.history, entry], room.config.historyLength, request.settings.maxHistoryChars ?? Infinity) };
    }
    request.effects.push(store({ op: "history.append", roomJid: room.jid, entry, archived: room.config.archiving }));
    auditMessage(request, room, occupant, stanzaId);
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
    ...stripRoomAssertions(stanza, room.jid).filter((c) => !(c.name === "x" && c.attrs.xmlns === NS.MUC_USER) && !(c.name === "occupant-id" && c.attrs.xmlns === NS.OCCUPANT_ID)).map(cloneElement),
    // Marks the message as a MUC private message for the recipient's client (XEP-0045 §7.5).
    xml("x", { xmlns: NS.MUC_USER }),
    // XEP-0421 §4: private messages carry the sender's occupant-id too.
    xml("occupant-id", { xmlns: NS.OCCUPANT_ID, id: sender.occupantId }),
  );
  for (const jid of recipient.sessions.keys()) request.effects.push(send(addressed(out, jid)));
  return room;
}
