// A netjoin's catch-up on the primary (docs/PROTOCOL.md "Netjoin"): a replica of the room asks for the
// next page of what it missed, from the last message it has; the page is read from the room's history
// table (not from memory: a split of any length), in the room's order (history_messages.seq).
import type { Element } from "@xmpp/xml";
import { archiveRead, logEffect, send, type Effect } from "../effects.js";
import type { ArchiveQuery, ArchiveReadResult } from "../archive/query.js";
import { replayEntry } from "../room/history.js";
import { errorReply, iqResult } from "../../xmpp/stanza.js";
import { buildCatchUpPage, parseCatchUpRequest, type CatchUpRequest } from "./wire.js";
import type { LinkIo } from "./primary-links.js";
import type { ReplicaLink } from "./state.js";

/** Per message (stanza-id), the link's sessions that got it directly while the replica was down. */
type Served = ReadonlyMap<string, ReadonlySet<string>>;

/** Messages per page: with bodies of up to 10,000 characters, a page stays well under a server's s2s stanza limit. */
export const CATCHUP_PAGE = 50;

/**
 * `<iq type='get'><catchup/></iq>` from `link`'s replica. Its record of direct service (taken now: the
 * page is answered after the read) says, on the page, who of its users has which message already.
 */
export function onCatchUpRequest(io: LinkIo, roomJid: string, link: ReplicaLink, iq: Element, payload: Element): void {
  const request = parseCatchUpRequest(payload);
  if (!request) {
    io.effects.push(send(errorReply(iq, { type: "modify", condition: "bad-request", by: roomJid })));
    return;
  }
  const served = new Map<string, ReadonlySet<string>>();
  for (const [stanzaId, { sessions }] of link.served ?? []) if (sessions.size > 0) served.set(stanzaId, sessions);
  io.effects.push(readPage(roomJid, iq, request, served));
}

function query(roomJid: string, request: CatchUpRequest): ArchiveQuery {
  return {
    roomJid,
    sender: { kind: "anyone" },
    // Every message of the room's history, archived or not (a room may keep no archive).
    includeUnarchived: true,
    ...(request.after !== null ? { afterId: request.after } : { start: request.since }),
    from: "oldest",
    max: CATCHUP_PAGE,
  };
}

function readPage(roomJid: string, iq: Element, request: CatchUpRequest, served: Served): Effect {
  return archiveRead(query(roomJid, request), (result) => answer(roomJid, iq, request, served, result));
}

function answer(roomJid: string, iq: Element, request: CatchUpRequest, served: Served, result: ArchiveReadResult): Effect[] {
  if (!result.ok && result.reason === "unknown-id" && request.after !== null) {
    // The replica's last message is not (or no longer) in our history (purged by retention, or from
    // before a move): everything since the split, then.
    return [logEffect("info", "dmuc.catchup_unknown_position", { room: roomJid, after: request.after }), readPage(roomJid, iq, { since: request.since, after: null }, served)];
  }
  if (!result.ok) return [send(errorReply(iq, { type: "wait", condition: "internal-server-error", by: roomJid }))];
  const messages = result.items.map((item) =>
    replayEntry({ stanzaId: item.archiveId, nick: item.nick, occupantId: "", senderJid: item.senderJid ?? "", at: item.at, stanza: item.stanza, chars: 0 }, roomJid),
  );
  const pageServed = new Map(result.items.flatMap((item) => (served.has(item.archiveId) ? [[item.archiveId, served.get(item.archiveId)!] as const] : [])));
  return [send(iqResult(iq, buildCatchUpPage({ messages, complete: result.complete, served: pageServed }))), logEffect("debug", "dmuc.catchup_page_sent", { room: roomJid, replica: iq.attrs.from, messages: messages.length, complete: result.complete })];
}
