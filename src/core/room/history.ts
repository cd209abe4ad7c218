// XEP-0045 §7.2.15 and §7.2.16: which history a new occupant gets and how it is replayed; shared by
// the room's own history (plugins/history.ts) and a DMUC2 replica's copy (src/core/dmuc/).
import xml, { type Element } from "@xmpp/xml";
import { cloneElement } from "../../xmpp/element.js";
import { NS } from "../../xmpp/stanza.js";
import type { HistoryEntry, Subject } from "./types.js";

export interface HistoryRequest {
  maxChars?: number;
  maxStanzas?: number;
  seconds?: number;
  since?: Date;
}

function nonNegativeInt(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,9}$/.test(value.trim())) return undefined;
  return Number(value);
}

/** Reads the <history/> child of a join (or of a DMUC2 <enter/>); bad values are ignored, as if not given. */
export function parseHistoryRequest(join: Element): HistoryRequest {
  const history = join.getChild("history");
  if (!history) return {};
  const since = history.attrs.since ? new Date(history.attrs.since) : undefined;
  return {
    maxChars: nonNegativeInt(history.attrs.maxchars),
    maxStanzas: nonNegativeInt(history.attrs.maxstanzas),
    seconds: nonNegativeInt(history.attrs.seconds),
    since: since && !Number.isNaN(since.getTime()) ? since : undefined,
  };
}

/**
 * The newest entries within a room's history length and the service's memory bound (characters of
 * serialised XML, DMUC_MAX_HISTORY_KB): older ones stay in history_messages, not in memory. The newest
 * entry is always kept.
 */
export function trimHistory(history: readonly HistoryEntry[], maxMessages: number, maxChars: number): readonly HistoryEntry[] {
  let start = Math.max(0, history.length - maxMessages);
  let chars = 0;
  for (let i = history.length - 1; i >= start; i--) {
    chars += history[i]!.chars;
    if (chars > maxChars && i < history.length - 1) {
      start = i + 1;
      break;
    }
  }
  return start === 0 ? history : history.slice(start);
}

/** The entries to send, newest last, after every limit applied (§7.2.15: the strictest wins). */
export function selectHistory(history: readonly HistoryEntry[], request: HistoryRequest, now: Date, cap: number): HistoryEntry[] {
  const limit = Math.min(cap, request.maxStanzas ?? cap);
  const from = request.seconds !== undefined ? now.getTime() - request.seconds * 1000 : -Infinity;
  const since = Math.max(from, request.since?.getTime() ?? -Infinity);
  const chosen: HistoryEntry[] = [];
  let chars = 0;
  for (let i = history.length - 1; i >= 0 && chosen.length < limit; i--) {
    const entry = history[i]!;
    if (entry.at.getTime() < since) break;
    chars += entry.chars;
    if (request.maxChars !== undefined && chars > request.maxChars) break;
    chosen.push(entry);
  }
  return chosen.reverse();
}

/**
 * A history message as replayed (to `to`, or unaddressed inside a DMUC2 state or netjoin): the stored
 * broadcast plus a delay stamped by the room (XEP-0203).
 */
export function replayEntry(entry: HistoryEntry, roomJid: string, to?: string): Element {
  const copy = cloneElement(entry.stanza);
  if (to !== undefined) copy.attrs.to = to;
  copy.append(xml("delay", { xmlns: NS.DELAY, from: roomJid, stamp: entry.at.toISOString() }));
  return copy;
}

/** The subject message that ends a join (§7.2.16): empty when no subject was ever set. */
export function subjectMessage(roomJid: string, subject: Subject | null, to: string, id: string): Element {
  return xml(
    "message",
    { type: "groupchat", from: subject?.nick ? `${roomJid}/${subject.nick}` : roomJid, to, id },
    xml("subject", {}, subject?.text ?? ""),
    subject ? xml("delay", { xmlns: NS.DELAY, from: roomJid, stamp: subject.at.toISOString() }) : null,
  );
}
