// XEP-0410 MUC self-ping: a client pings its own occupant JID to learn whether it is still joined.
// The room answers itself (result) when the sender is a session of that occupant; a sender that is
// not in the room gets not-acceptable, the answer that tells the client to rejoin (XEP-0410 §3).
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import { NS } from "../src/xmpp/stanza.js";

export const selfPingPlugin: Plugin = {
  name: "self-ping",
  register({ rooms }) {
    rooms.hooks.on("room/disco-info", ({ info }) => {
      info.features.add("http://jabber.org/protocol/muc#self-ping-optimization");
    });
    rooms.occupantIq.get(NS.PING, "ping", ({ request, target, occupant }) => {
      if (!occupant) throw new StanzaError("cancel", "not-acceptable", "You are not currently connected to this chat", { by: target.jid });
      if (request.nick === null || !target.occupants.has(request.nick)) {
        throw new StanzaError("cancel", "item-not-found", "Recipient not in room", { by: target.jid });
      }
      // Pings between occupants would be relayed to the other client; this service does not relay IQs.
      if (occupant.nick !== request.nick) throw new StanzaError("cancel", "service-unavailable", undefined, { by: target.jid });
      return null;
    });
  },
};
