// XEP-0045 §7.2.15 and §7.2.16: on entering, the room sends its recent history (limited by the
// client's maxchars/maxstanzas/seconds/since, and the service's cap) and then the subject.
import { cloneElement } from "../src/xmpp/element.js";
import xml, { type Element } from "@xmpp/xml";
import { send } from "../src/core/effects.js";
import type { Plugin } from "../src/core/service.js";
import { addressed } from "../src/core/room/presence.js";
import type { HistoryEntry } from "../src/core/room/types.js";
import { NS } from "../src/xmpp/stanza.js";
import { parseHistoryRequest, selectHistory } from "../src/core/room/history.js";

// Moved to src/core/room/history.ts (a DMUC2 replica selects from its copy the same way).
export { parseHistoryRequest, selectHistory, type HistoryRequest } from "../src/core/room/history.js";

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
