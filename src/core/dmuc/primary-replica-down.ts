// A replica process that is down while its users' server stays up (docs/PROTOCOL.md "A replica that
// is down"). Its server module then stops diverting, so the users' stanzas reach the room over s2s in
// their own names, and whatever the room sends the replica bounces from the replica's own server with
// Prosody's <not-connected/>. That bounce proves two things at once: the component is gone, and s2s to
// its server works right now (it just carried the bounce). Only then does the primary serve the link's
// users directly, as plain occupants, and it remembers per message which sessions got a direct copy;
// the netjoin with the restarted replica says so, and the replica delivers the rest. A direct copy
// that bounces in turn (the s2s cut after all) is no longer counted as served: the replica delivers it.
import type { Element } from "@xmpp/xml";
import { logEffect, send } from "../effects.js";
import { cloneElement } from "../../xmpp/element.js";
import { NS } from "../../xmpp/stanza.js";
import { bareString, parseJid, type Jid } from "../../xmpp/jid.js";
import type { Room } from "../room/types.js";
import type { ReplicaLink } from "./state.js";
import { withLink, withServed } from "./dmuc-state.js";
import { markSplit } from "./primary-netsplit.js";
import type { LinkIo } from "./primary-links.js";

/** The namespace of Prosody's mark on a bounce for an external component that is not connected. */
export const PROSODY_COMPONENT = "xmpp:prosody.im/protocol/component";

/** Whether an error stanza is the component's own server saying the component is not connected. */
export function componentNotConnected(stanza: Element): boolean {
  return stanza.attrs.type === "error" && !!stanza.getChild("error")?.getChild("not-connected", PROSODY_COMPONENT);
}

/**
 * The replica's server bounced `bounce` (sent to the replica) with <not-connected/>: the link is split
 * and its users are served directly; a bounced groupchat broadcast (addressed by its stanza-id) is
 * delivered to them now.
 */
export function replicaGone(io: LinkIo, roomJid: string, link: ReplicaLink, bounce: Element, markAway: boolean): void {
  // Syncing: the replica has answered since the split, so this bounce is older than that answer (a
  // bounce and the restarted replica's stanzas need not share an s2s connection, nor its order). A
  // replica that died again fails the netjoin, which splits the link; its pings then bounce anew.
  if (link.state === "syncing") return;
  markSplit(io, roomJid, link, "replica not connected", markAway);
  const split = io.state.dmuc.links.get(roomJid)?.get(link.replicaJid);
  if (!split || split.state !== "split") return;
  if (!split.replicaDown) {
    io.state = { ...io.state, dmuc: withLink(io.state.dmuc, roomJid, { ...split, replicaDown: true }) };
    io.effects.push(logEffect("warn", "dmuc.replica_down", { room: roomJid, replica: link.replicaJid, members: split.members.size }));
  }
  // Only the bounce of a copy sent once proves the replica never had that message; a copy sent again
  // may have reached the replica the first time (which delivered it): that one is left to the netjoin.
  if (bounce.name === "message" && bounce.attrs.id && !split.resent?.has(bounce.attrs.id)) deliverDirectly(io, roomJid, link.replicaJid, bounce.attrs.id);
}

/** A message of the room's history, sent directly to the link's users that have not had it directly yet. */
function deliverDirectly(io: LinkIo, roomJid: string, replicaJid: string, stanzaId: string): void {
  const room = io.state.rooms.get(roomJid);
  const entry = room?.history.find((e) => e.stanzaId === stanzaId);
  let link = io.state.dmuc.links.get(roomJid)?.get(replicaJid);
  if (!room || !entry || !link) return;
  const already = link.served?.get(stanzaId)?.sessions;
  for (const session of link.members) {
    if (!room.sessionNicks.has(session) || already?.has(session)) continue;
    const copy = cloneElement(entry.stanza);
    copy.attrs.to = session;
    io.effects.push(send(copy));
    link = withServed(link, stanzaId, entry.stanza.attrs.id, session);
  }
  io.state = { ...io.state, dmuc: withLink(io.state.dmuc, roomJid, link) };
}

/**
 * A direct copy to `session` bounced: it is not served after all (the netjoin leaves it to the
 * replica). Returns whether the bounce named such a copy.
 */
export function directCopyBounced(io: LinkIo, roomJid: string, link: ReplicaLink, session: string, bounce: Element): boolean {
  const id = bounce.attrs.id;
  if (!id || !link.served) return false;
  for (const [stanzaId, served] of link.served) {
    if ((stanzaId === id || served.copyId === id) && served.sessions.has(session)) {
      io.state = { ...io.state, dmuc: withLink(io.state.dmuc, roomJid, withServed(link, stanzaId, undefined, session, false)) };
      return true;
    }
  }
  return false;
}

/**
 * Whether `stanza` is a groupchat message from a user of a linked domain that the room has taken
 * already: the same bare JID and origin-id as a message in its history. The users' server module sends
 * on over s2s what the replica did not acknowledge taking, and the replica may have submitted it just
 * before it went (docs/PROTOCOL.md "What users send"). The room's history in memory is the window.
 */
export function isAlreadyTaken(room: Room | undefined, stanza: Element, from: Jid, links: ReadonlyMap<string, ReplicaLink>): boolean {
  if (!room || stanza.name !== "message" || stanza.attrs.type !== "groupchat" || from.resource === null) return false;
  const originId = stanza.getChild("origin-id", NS.STANZA_ID)?.attrs.id;
  if (!originId || ![...links.values()].some((l) => l.domain === from.domain)) return false;
  const sender = bareString(from);
  return room.history.some((e) => {
    if (e.stanza.getChild("origin-id", NS.STANZA_ID)?.attrs.id !== originId) return false;
    const taken = parseJid(e.senderJid);
    return taken !== null && bareString(taken) === sender;
  });
}
