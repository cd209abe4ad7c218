// What the primary sends on a replica link goes through the link's stream (link/stream.ts): numbered,
// carrying the acknowledgement of the replica's submissions, kept until the replica acknowledges it.
import type { Element } from "@xmpp/xml";
import { cloneElement } from "../../xmpp/element.js";
import { DEFAULT_LINK_TIMERS } from "./link/channel.js";
import { step, transmitHeader } from "./link/stream.js";
import type { DmucState } from "./state.js";
import { withLink } from "./dmuc-state.js";

/**
 * Puts a stanza for the replica on its link: returns the stanzas to send (the stanza with its header;
 * nothing while the link's stream is split: it is held, and sent when the replica is heard again).
 */
export function sendOnLink(dmuc: DmucState, roomJid: string, replicaJid: string, stanza: Element, now: number): { dmuc: DmucState; out: Element[] } {
  const link = dmuc.links.get(roomJid)?.get(replicaJid);
  if (!link) return { dmuc, out: [] };
  // Sending starts no timer: the link's own timers do not matter here.
  const result = step<Element, Element>(link.stream, { type: "send", item: stanza }, now, DEFAULT_LINK_TIMERS);
  const out: Element[] = [];
  for (const action of result.actions) {
    if (action.type !== "transmit") continue;
    const copy = cloneElement(action.item);
    copy.append(transmitHeader(result.stream, action.seq, action.ack));
    out.push(copy);
  }
  return { dmuc: withLink(dmuc, roomJid, { ...link, stream: result.stream, lastSent: now }), out };
}
