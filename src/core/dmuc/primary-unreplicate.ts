// The primary's side of a replica leaving a room (issue 16 point 4; the replica's side is
// replica-forget.ts), and how many links one remote domain may hold here.
import xml, { type Element } from "@xmpp/xml";
import { audit, logEffect, send } from "../effects.js";
import { NS } from "../../xmpp/stanza.js";
import type { DmucState, ReplicaLink } from "./state.js";
import { withoutLink } from "./dmuc-state.js";
import { domainOf } from "./primary-delivery.js";
import type { LinkIo } from "./primary-links.js";

/**
 * The most links (rooms here with a replica of that domain) one remote domain may hold: past it, its
 * users in further rooms are served directly, as plain occupants, and cost no link, keepalive or copy.
 */
export const MAX_LINKS_PER_DOMAIN = 1000;

export function linksOfDomain(dmuc: DmucState, domain: string): number {
  let count = 0;
  for (const links of dmuc.links.values()) for (const link of links.values()) if (link.domain === domain) count++;
  return count;
}

/**
 * <unreplicate/> from the link's replica: the link is dropped, unless the room has users of the
 * replica's domain (an ENTER crossed the request): then `conflict`, and the replica keeps its copy.
 */
export function replicaLeaves(io: LinkIo & { stanza: Element }, roomJid: string, link: ReplicaLink): void {
  const { stanza } = io;
  const room = io.state.rooms.get(roomJid);
  const users = [...(room?.sessionNicks.keys() ?? [])].filter((session) => domainOf(session) === link.domain).length;
  if (users > 0 || link.members.size > 0) {
    io.effects.push(
      send(
        xml(
          "iq",
          { type: "error", id: stanza.attrs.id, from: roomJid, to: stanza.attrs.from },
          xml("error", { type: "cancel" }, xml("conflict", { xmlns: NS.STANZAS }), xml("text", { xmlns: NS.STANZAS }, "Users of your domain are in the room")),
        ),
      ),
    );
    io.effects.push(logEffect("info", "dmuc.unreplicate_refused", { room: roomJid, replica: link.replicaJid, users }));
    return;
  }
  io.state = { ...io.state, dmuc: withoutLink(io.state.dmuc, roomJid, link.replicaJid) };
  io.effects.push(send(xml("iq", { type: "result", id: stanza.attrs.id, from: roomJid, to: stanza.attrs.from })));
  io.effects.push(logEffect("info", "dmuc.replica_left", { room: roomJid, replica: link.replicaJid }));
  io.effects.push(audit({ kind: "link.unreplicated", roomJid, actorJid: link.replicaJid, details: { domain: link.domain } }));
}
