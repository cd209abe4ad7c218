// XEP-0425 moderation and XEP-0424 retraction in rooms. A moderator retracts any message for everyone
// by its stanza-id: the room looks the message up in its stored messages (an `archive-read` effect),
// replaces it with a tombstone, keeps it out of the join history, and announces the retraction in
// both generations of the protocol (as Prosody's mod_muc_moderation). An author's own retraction is a
// groupchat message the room relays like any other (clients check it against the occupant-id); the
// room also turns the author's archived message into a tombstone.
import xml, { type Element } from "@xmpp/xml";
import { archiveRead, audit, send, store, type Effect } from "../src/core/effects.js";
import { REPLY_LATER } from "../src/core/iq-router.js";
import type { Plugin } from "../src/core/service.js";
import { badRequest, StanzaError } from "../src/core/stanza-error.js";
import type { RoomIq } from "../src/core/room/engine.js";
import { broadcastEffects } from "../src/core/room/broadcast.js";
import { defaultRole } from "../src/core/room/privileges.js";
import { occupantIdFor } from "../src/core/room/occupant-id.js";
import type { HistoryEntry, Room } from "../src/core/room/types.js";
import type { ArchiveReadResult } from "../src/core/archive/query.js";
import {
  buildModerationNotice,
  buildTombstone,
  isTombstone,
  NS_FASTEN,
  NS_MODERATE,
  NS_MODERATE_0,
  NS_RETRACT,
  parseAuthorRetraction,
  parseModerationRequest,
  type ModerationNotice,
} from "../src/xmpp/retraction.js";
import { errorReply, iqResult, NS } from "../src/xmpp/stanza.js";

const bareOf = (jid: string) => jid.split("/")[0]!;

/** The stored messages of the room that a retraction names: by stanza-id, or (older clients) origin-id. */
const originIdOf = (stanza: Element) => stanza.getChild("origin-id", NS.STANZA_ID)?.attrs.id;

interface Moderation {
  iq: Element;
  room: Room;
  actorJid: string;
  notice: ModerationNotice;
  at: Date;
  /** Stanza-id and message id of the announcement, drawn when the request came in. */
  announcementStanzaId: string;
  announcementId: string;
}

/** What follows the lookup of the moderated message: tombstone, announcement (stored and sent), answer. */
function moderationOutcome(moderation: Moderation, result: ArchiveReadResult): Effect[] {
  const { iq, room, notice } = moderation;
  if (!result.ok) return [send(errorReply(iq, { type: "wait", condition: "internal-server-error", text: "The message could not be looked up" }))];
  const original = result.items[0];
  if (!original) return [send(errorReply(iq, { type: "cancel", condition: "item-not-found", text: "No message with that id in this room" }))];
  // Retracted already: nothing more to tell anyone.
  if (isTombstone(original.stanza)) return [send(iqResult(iq))];

  const tombstone = buildTombstone(original.stanza, { at: moderation.at, moderation: { by: notice.by, moderatorOccupantId: notice.moderatorOccupantId, reason: notice.reason } });
  const announcement = xml(
    "message",
    { type: "groupchat", from: room.jid, id: moderation.announcementId },
    ...buildModerationNotice(notice),
    xml("stanza-id", { xmlns: NS.STANZA_ID, id: moderation.announcementStanzaId, by: room.jid }),
  );
  // Kept with the messages, so that a client catching up from the archive or the history learns of it.
  const entry: HistoryEntry = {
    stanzaId: moderation.announcementStanzaId,
    nick: "",
    occupantId: "",
    senderJid: moderation.actorJid,
    at: moderation.at,
    stanza: announcement,
    chars: announcement.toString().length,
  };
  return [
    store({ op: "history.retract", roomJid: room.jid, stanzaId: original.archiveId, tombstone }),
    store({ op: "history.append", roomJid: room.jid, entry, archived: room.config.archiving }),
    audit({ kind: "message.moderated", roomJid: room.jid, actorJid: bareOf(moderation.actorJid), details: { stanzaId: original.archiveId, nick: original.nick, reason: notice.reason ?? null } }),
    ...broadcastEffects(room, announcement),
    send(iqResult(iq)),
  ];
}

function moderate(iq: RoomIq, payload: Element): typeof REPLY_LATER {
  const { request, target } = iq;
  const parsed = parseModerationRequest(payload);
  if (!parsed) throw badRequest("Expected a moderation request with <retract/> and the message's id");
  // As Prosody: the role the sender has in the room, or would have on entering.
  const role = iq.occupant?.role ?? defaultRole(target, iq.affiliation);
  // XEP-0425 §3.2 answers with a modify/forbidden error.
  if (role !== "moderator") throw new StanzaError("modify", "forbidden", "Only moderators are allowed to moderate other participants' messages");
  const nick = iq.occupant?.nick ?? target.affiliations.get(request.fromBare)?.nick;
  const notice: ModerationNotice = { stanzaId: parsed.stanzaId };
  if (nick !== undefined) notice.by = `${target.jid}/${nick}`;
  notice.moderatorOccupantId = iq.occupant?.occupantId ?? occupantIdFor(target, request.fromBare);
  if (parsed.reason !== undefined) notice.reason = parsed.reason;

  // Out of the join history at once; the stored copy becomes a tombstone once it is found.
  const room: Room = { ...target, history: target.history.filter((e) => e.stanzaId !== parsed.stanzaId) };
  iq.room = room;
  const moderation: Moderation = {
    iq: request.stanza,
    room,
    actorJid: request.fromFull,
    notice,
    at: request.context.now,
    announcementStanzaId: request.context.newId(),
    announcementId: request.context.newId(),
  };
  request.effects.push(
    archiveRead({ roomJid: target.jid, sender: { kind: "anyone" }, ids: [parsed.stanzaId], includeUnarchived: true, from: "oldest", max: 1 }, (result) =>
      moderationOutcome(moderation, result),
    ),
  );
  return REPLY_LATER;
}

export const retractionPlugin: Plugin = {
  name: "retraction",
  register({ rooms }) {
    rooms.hooks.on("room/disco-info", ({ info }) => {
      info.features.add(NS_MODERATE).add(NS_MODERATE_0).add(NS_RETRACT);
    });
    rooms.iq.set(NS_MODERATE, "moderate", moderate);
    rooms.iq.set(NS_FASTEN, "apply-to", moderate);

    // XEP-0424: the author's own retraction is relayed as sent; the author's stored message (and
    // only theirs) becomes a tombstone and leaves the join history.
    rooms.hooks.on("message/groupchat", (event) => {
      const retraction = parseAuthorRetraction(event.message);
      if (!retraction) return undefined;
      const { request, room } = event;
      const tombstoneOf = (original: Element) => buildTombstone(original, { at: request.context.now });
      // Auditors see who took back which message, as they see a moderator's retraction.
      const retractedAudit = (stanzaId: string) => audit({ kind: "message.retracted", roomJid: room.jid, actorJid: request.fromBare, details: { stanzaId } });
      const recent = room.history.find((e) => (e.stanzaId === retraction.id || originIdOf(e.stanza) === retraction.id) && bareOf(e.senderJid) === request.fromBare);
      if (recent) {
        event.room = { ...room, history: room.history.filter((e) => e !== recent) };
        request.effects.push(store({ op: "history.retract", roomJid: room.jid, stanzaId: recent.stanzaId, tombstone: tombstoneOf(recent.stanza) }), retractedAudit(recent.stanzaId));
        return undefined;
      }
      request.effects.push(
        archiveRead(
          { roomJid: room.jid, sender: { kind: "real-jid", jid: request.fromBare, bare: true }, idOrOriginId: retraction.id, includeUnarchived: true, from: "oldest", max: 1 },
          (result) => {
            const original = result.ok ? result.items[0] : undefined;
            if (!original || isTombstone(original.stanza)) return [];
            return [store({ op: "history.retract", roomJid: room.jid, stanzaId: original.archiveId, tombstone: tombstoneOf(original.stanza) }), retractedAudit(original.archiveId)];
          },
        ),
      );
      return undefined;
    });
  },
};
