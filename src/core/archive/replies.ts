// Turns what the shell read from a room archive into the XEP-0313 answer: one result message per
// archived message, then the IQ result with <fin/>. Pure: the same rows always give the same stanzas.
import xml, { type Element } from "@xmpp/xml";
import { cloneElement } from "../../xmpp/element.js";
import { buildMamFin, buildMamResult } from "../../xmpp/mam.js";
import { errorReply, iqResult, NS } from "../../xmpp/stanza.js";
import type { ArchivedMessage, ArchiveReadResult } from "./query.js";
import { affiliationOf } from "../room/privileges.js";
import type { Room } from "../room/types.js";
import { send, type Effect } from "../effects.js";

export interface ArchiveAnswer {
  /** The query IQ being answered. */
  iq: Element;
  /** The room as it was when the query arrived: who the senders are to it now. */
  room: Room;
  queryId?: string;
  /** Whether the requester may see senders' real JIDs (XEP-0313 §5.1.2: non-anonymous rooms, moderators). */
  seesJids: boolean;
  /** <flip-page/>: the page's messages newest first. */
  flipPage: boolean;
}

function bareOf(jid: string): string {
  const slash = jid.indexOf("/");
  return slash === -1 ? jid : jid.slice(0, slash);
}

/**
 * The archived stanza as forwarded: no `to`, and for those who may see it the room's muc#user <x/>
 * with the sender's full JID and its affiliation and role in the room now (XEP-0313 §5.1.2).
 */
export function forwardedMessage(item: ArchivedMessage, room: Room, seesJids: boolean): Element {
  const message = cloneElement(item.stanza);
  delete message.attrs.to;
  message.attrs.xmlns = "jabber:client";
  // XEP-0313 §5.1.2: any <x/> a client put in its message is dropped; the room says who sent it.
  message.children = message.children.filter((c) => typeof c === "string" || !(c.name === "x" && c.attrs.xmlns === NS.MUC_USER));
  if (seesJids && item.senderJid) {
    const bare = bareOf(item.senderJid);
    const role = [...room.occupants.values()].find((o) => o.bareJid === bare)?.role ?? "none";
    message.append(xml("x", { xmlns: NS.MUC_USER }, xml("item", { affiliation: affiliationOf(room, bare), jid: item.senderJid, role })));
  }
  return message;
}

export function archiveReplies(answer: ArchiveAnswer, result: ArchiveReadResult): Effect[] {
  return archiveReplyStanzas(answer, result).map((stanza) => send(stanza));
}

function archiveReplyStanzas(answer: ArchiveAnswer, result: ArchiveReadResult): Element[] {
  const { iq } = answer;
  if (!result.ok) {
    return result.reason === "unknown-id"
      ? [errorReply(iq, { type: "cancel", condition: "item-not-found", text: "No message with that id in the archive" })]
      : [errorReply(iq, { type: "wait", condition: "internal-server-error", text: "The archive could not be read" })];
  }
  const from = iq.attrs.to as string;
  const to = iq.attrs.from as string;
  const items = answer.flipPage ? [...result.items].reverse() : result.items;
  const messages = items.map((item) =>
    buildMamResult({ queryId: answer.queryId, id: item.archiveId, stamp: item.at, message: forwardedMessage(item, answer.room, answer.seesJids) }, from, to),
  );
  const first = result.items[0]?.archiveId;
  const last = result.items.at(-1)?.archiveId;
  return [...messages, iqResult(iq, buildMamFin({ complete: result.complete, rsm: { first, last, count: result.count } }))];
}
