// XEP-0045 §7.2.15 and §7.2.16: on entering, the room sends its recent history (limited by the
// client's maxchars/maxstanzas/seconds/since, and the service's cap) and then the subject.
import { send } from "../src/core/effects.js";
import type { Plugin } from "../src/core/service.js";
import { parseHistoryRequest, replayEntry, selectHistory, subjectMessage } from "../src/core/room/history.js";

// Moved to src/core/room/history.ts (a DMUC2 replica selects from its copy the same way).
export { parseHistoryRequest, selectHistory, type HistoryRequest } from "../src/core/room/history.js";

export function historyPlugin(options: { maxHistoryMessages: number }): Plugin {
  return {
    name: "history",
    register({ rooms }) {
      rooms.hooks.on(
        "occupant/joined",
        ({ request, room, join }) => {
          const entries = selectHistory(room.history, parseHistoryRequest(join), request.context.now, options.maxHistoryMessages);
          for (const entry of entries) request.effects.push(send(replayEntry(entry, room.jid, request.fromFull)));
        },
        20,
      );
      // The subject comes last: clients take it as the end of the join (XEP-0045 §7.2.16).
      rooms.hooks.on(
        "occupant/joined",
        ({ request, room }) => {
          request.effects.push(send(subjectMessage(room.jid, room.subject, request.fromFull, request.context.newId())));
        },
        10,
      );
    },
  };
}
