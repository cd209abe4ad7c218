// IQs between occupants through the room (XEP-0045 §7.5 and Prosody's behaviour): an occupant may
// query another by its room JID (vCard, software version, disco); the room forwards the request to the
// target's latest session from the sender's room JID, and the answer back the same way, so that no
// real JID is revealed. The forwarded id carries the original requester and id, so the room keeps no
// table of requests in flight, and an answer is only taken from the session that was asked.
import type { Element } from "@xmpp/xml";
import { send } from "../src/core/effects.js";
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import { occupantOfSession } from "../src/core/room/mutate.js";
import { primarySession } from "../src/core/room/presence.js";
import { cloneElement } from "../src/xmpp/element.js";

const PREFIX = "muc-fwd:";

interface Forwarded {
  requester: string;
  id: string;
  target: string;
}

function encode(f: Forwarded): string {
  return PREFIX + Buffer.from(JSON.stringify([f.requester, f.id, f.target])).toString("base64url");
}

function decode(id: string | undefined): Forwarded | null {
  if (!id?.startsWith(PREFIX)) return null;
  try {
    const value = JSON.parse(Buffer.from(id.slice(PREFIX.length), "base64url").toString("utf8")) as unknown;
    if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => typeof v === "string")) return null;
    return { requester: value[0], id: value[1], target: value[2] };
  } catch {
    return null;
  }
}

function copyWith(stanza: Element, attrs: Record<string, string>): Element {
  const copy = cloneElement(stanza);
  copy.attrs = { ...copy.attrs, ...attrs };
  return copy;
}

export const occupantIqPlugin: Plugin = {
  name: "occupant-iq",
  register({ rooms }) {
    rooms.relayOccupantIqs((request, room) => {
      const { stanza } = request;
      const type = stanza.attrs.type;
      if (type === "result" || type === "error") {
        // An answer from the queried session, addressed to the requester's room JID.
        const forwarded = decode(stanza.attrs.id);
        const answering = occupantOfSession(room, request.fromFull);
        const requesterNick = room.sessionNicks.get(forwarded?.requester ?? "");
        if (!forwarded || !answering || forwarded.target !== request.fromFull || requesterNick !== request.nick) return;
        request.effects.push(send(copyWith(stanza, { id: forwarded.id, from: `${room.jid}/${answering.nick}`, to: forwarded.requester })));
        return;
      }
      const sender = occupantOfSession(room, request.fromFull);
      if (!sender) throw new StanzaError("modify", "not-acceptable", "Only occupants may query occupants", { by: room.jid });
      const target = room.occupants.get(request.nick ?? "");
      if (!target) throw new StanzaError("cancel", "item-not-found", "No occupant with that nickname", { by: room.jid });
      const session = primarySession(target).jid;
      const id = encode({ requester: request.fromFull, id: stanza.attrs.id ?? "", target: session });
      request.effects.push(send(copyWith(stanza, { id, from: `${room.jid}/${sender.nick}`, to: session })));
    });
  },
};
