// Tombstones (Prosody's muc_tombstones, src/core/tombstones.ts): an entry into a destroyed persistent
// room is answered with <gone/> and the new venue until the tombstone expires (DMUC_TOMBSTONE_DAYS).
import { send, store } from "../src/core/effects.js";
import type { Plugin } from "../src/core/service.js";
import { withoutTombstone, withStoredTombstones } from "../src/core/tombstones.js";
import { bareString } from "../src/xmpp/jid.js";
import { errorReply } from "../src/xmpp/stanza.js";

export const tombstonesPlugin: Plugin = {
  name: "tombstones",
  register({ settings, hooks }) {
    hooks.on("service/route", ({ request, to }) => {
      const { stanza } = request;
      if (stanza.name !== "presence" || stanza.attrs.type !== undefined || to.local === null || to.domain !== settings.domain) return undefined;
      const roomJid = bareString(to);
      const tombstone = request.state.tombstones?.get(roomJid);
      if (!tombstone || request.state.rooms.has(roomJid)) return undefined;
      if (tombstone.expiresAt.getTime() <= request.context.now.getTime()) {
        // Expired: forgotten, and the room may be created again.
        request.state = withoutTombstone(request.state, roomJid);
        request.effects.push(store({ op: "tombstone.delete", roomJid }));
        return undefined;
      }
      request.effects.push(
        send(
          errorReply(stanza, {
            type: "cancel",
            condition: "gone",
            conditionText: tombstone.alternateVenue ? `xmpp:${tombstone.alternateVenue}?join` : undefined,
            text: tombstone.reason ?? "This room has been destroyed",
            by: roomJid,
          }),
        ),
      );
      return true;
    });

    // An owner's <destroy/> went through the room engine: its tombstone is remembered from then on.
    hooks.on("service/room-handled", (event) => {
      if (event.before && !event.after) event.request.state = withStoredTombstones(event.request.state, event.request.effects);
    });
  },
};
