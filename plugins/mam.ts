// XEP-0313 Message Archive Management for rooms, as Prosody's muc_mam: the archive of a room is its
// history_messages rows (the archive id is the stanza-id the room stamped), read by the shell through
// the `archive-read` effect. Who may read it: anyone allowed to see the room, except outcasts; in a
// members-only room, members and above (XEP-0313 §5.1.2). muc#roomconfig_enablearchiving turns it off.
import type { Element } from "@xmpp/xml";
import { archiveRead } from "../src/core/effects.js";
import { REPLY_LATER } from "../src/core/iq-router.js";
import type { Plugin } from "../src/core/service.js";
import { badRequest, forbidden, StanzaError } from "../src/core/stanza-error.js";
import { booleanField, configField } from "../src/core/room/config-fields.js";
import { AFFILIATION_RANK, canSeeRealJids } from "../src/core/room/privileges.js";
import type { RoomIq } from "../src/core/room/engine.js";
import type { Room } from "../src/core/room/types.js";
import type { ArchiveQuery, ArchiveSender } from "../src/core/archive/query.js";
import { archiveReplies } from "../src/core/archive/replies.js";
import { buildMamQueryForm, MamParseError, NS_MAM, NS_MAM_EXTENDED, parseMamQuery, type MamQuery } from "../src/xmpp/mam.js";
import { bareString, jidToString, parseJid } from "../src/xmpp/jid.js";

export interface ArchiveOptions {
  /** Page size when the client gives no RSM <max/>, and the largest page served (Prosody: 20 and 50). */
  defaultPageSize: number;
  maxPageSize: number;
}

export const DEFAULT_ARCHIVE_OPTIONS: ArchiveOptions = { defaultPageSize: 20, maxPageSize: 50 };

/** XEP-0313 §5.1.2: outcasts never; members-only rooms only to members and above. */
function mayReadArchive(room: Room, iq: RoomIq): boolean {
  if (iq.affiliation === "outcast") return false;
  return !room.config.membersOnly || AFFILIATION_RANK[iq.affiliation] >= AFFILIATION_RANK.member;
}

/** Whether the requester may learn senders' real JIDs: as an occupant would (whois), or as owner or admin. */
function seesRealJids(room: Room, iq: RoomIq): boolean {
  return canSeeRealJids(room, iq.occupant?.role ?? "none") || AFFILIATION_RANK[iq.affiliation] >= AFFILIATION_RANK.admin;
}

/**
 * The 'with' field in a room archive (XEP-0313 §4.1.1.1): the publisher. An occupant JID
 * (room@service/nick) selects that nick; the room's bare JID selects everything; any other JID is a
 * real JID, which only those who may see real JIDs may ask about.
 */
function senderOf(room: Room, iq: RoomIq, withValue: string | undefined): ArchiveSender {
  if (withValue === undefined) return { kind: "anyone" };
  const jid = parseJid(withValue);
  if (!jid) throw new StanzaError("modify", "jid-malformed", "The 'with' field is not a valid JID");
  if (bareString(jid) === room.jid) return jid.resource === null ? { kind: "anyone" } : { kind: "nick", nick: jid.resource };
  if (!seesRealJids(room, iq)) throw forbidden("Real JIDs of this room's occupants are not visible to you");
  return { kind: "real-jid", jid: jidToString(jid), bare: jid.resource === null };
}

function archiveQuery(room: Room, iq: RoomIq, mam: MamQuery, options: ArchiveOptions): ArchiveQuery {
  const max = Math.min(mam.rsm?.max ?? options.defaultPageSize, options.maxPageSize);
  const rsmBefore = mam.rsm?.before;
  const query: ArchiveQuery = {
    roomJid: room.jid,
    sender: senderOf(room, iq, mam.with),
    from: rsmBefore !== undefined ? "newest" : "oldest",
    max,
  };
  if (mam.start) query.start = mam.start;
  if (mam.end) query.end = mam.end;
  if (mam.ids) query.ids = mam.ids;
  const afterId = mam.rsm?.after ?? mam.afterId;
  const beforeId = rsmBefore ? rsmBefore : mam.beforeId;
  if (afterId !== undefined) query.afterId = afterId;
  if (beforeId !== undefined) query.beforeId = beforeId;
  return query;
}

export function mamPlugin(options: ArchiveOptions = DEFAULT_ARCHIVE_OPTIONS): Plugin {
  return {
    name: "mam",
    register({ rooms }) {
      configField(rooms, booleanField("muc#roomconfig_enablearchiving", "Enable archiving?", "archiving", 125));
      rooms.hooks.on("room/disco-info", ({ room, info }) => {
        if (room.config.archiving) info.features.add(NS_MAM).add(NS_MAM_EXTENDED);
      });

      rooms.iq.get(NS_MAM, "query", () => buildMamQueryForm());

      rooms.iq.set(NS_MAM, "query", (iq, payload: Element) => {
        const { request, target } = iq;
        if (!mayReadArchive(target, iq)) throw forbidden("You may not read this room's archive");
        let mam: MamQuery;
        try {
          mam = parseMamQuery(payload);
        } catch (err) {
          if (err instanceof MamParseError) throw badRequest(err.message);
          throw err;
        }
        const query = archiveQuery(target, iq, mam, options);
        const answer = { iq: request.stanza, room: target, queryId: mam.queryId, seesJids: seesRealJids(target, iq), flipPage: mam.flipPage };
        request.effects.push(archiveRead(query, (result) => archiveReplies(answer, result)));
        return REPLY_LATER;
      });
    },
  };
}
