// XEP-0045 §7.2.15 and §7.2.16: on entering, the room sends its recent history (limited by the
// client's maxchars/maxstanzas/seconds/since, and the service's cap) and then the subject.
import { cloneElement } from "../src/xmpp/element.js";
import xml, { type Element } from "@xmpp/xml";
import { send } from "../src/core/effects.js";
import type { Plugin } from "../src/core/service.js";
import { addressed } from "../src/core/room/presence.js";
import type { HistoryEntry } from "../src/core/room/types.js";
import { NS } from "../src/xmpp/stanza.js";

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

/** Reads <history/> of a join; bad values are ignored, as if not given. */
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

/** A history message as replayed: the stored broadcast plus a delay stamped by the room (XEP-0203). */
function replay(entry: HistoryEntry, roomJid: string): Element {
  const copy = cloneElement(entry.stanza);
  copy.append(xml("delay", { xmlns: NS.DELAY, from: roomJid, stamp: entry.at.toISOString() }));
  return copy;
}

export function historyPlugin(options: { maxHistoryMessages: number }): Plugin {
  return {
    name: "history",
    register({ rooms }) {
      rooms.hooks.on(
        "occupant/joined",
        ({ request, room, join }) => {
          const entries = selectHistory(room.history, parseHistoryRequest(join), request.context.now, options.maxHistoryMessages);
          for (const entry of entries) request.effects.push(send(addressed(replay(entry, room.jid), request.fromFull)));
        },
        20,
      );
      // The subject comes last: clients take it as the end of the join (XEP-0045 §7.2.16).
      rooms.hooks.on(
        "occupant/joined",
        ({ request, room }) => {
          const subject = room.subject;
          const from = subject?.nick ? `${room.jid}/${subject.nick}` : room.jid;
          const message = xml(
            "message",
            { type: "groupchat", from, to: request.fromFull, id: request.context.newId() },
            xml("subject", {}, subject?.text ?? ""),
            subject ? xml("delay", { xmlns: NS.DELAY, from: room.jid, stamp: subject.at.toISOString() }) : null,
          );
          request.effects.push(send(message));
        },
        10,
      );
    },
  };
}
