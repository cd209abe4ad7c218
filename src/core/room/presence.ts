// Occupant presence as each viewer sees it (XEP-0045 §7.2.3-§7.2.5): with the real JID for viewers
// who may see it, anonymous for the others, and with status 110 for the occupant's own sessions.
// The variants are built once per broadcast and stamped with `to` per recipient.
import { cloneElement } from "../../xmpp/element.js";
import xml, { type Element } from "@xmpp/xml";
import { NS } from "../../xmpp/stanza.js";
import { affiliationOf, canSeeRealJids } from "./privileges.js";
import type { Occupant, Role, Room } from "./types.js";
import { isRoomOwned } from "./kept-presence.js";

export interface ItemExtras {
  /** New nick, for status 303. */
  nick?: string;
  reason?: string;
  actorNick?: string;
  /** The actor's real JID: only viewers who may see real JIDs get it, never the target itself. */
  actorJid?: string;
}

export interface PresenceOptions {
  type?: "unavailable";
  /** Status codes everybody sees. */
  codes?: number[];
  /** Status codes only the occupant's own sessions see (110 is added by itself). */
  selfCodes?: number[];
  item?: ItemExtras;
  /** Override of the role shown (an occupant leaving shows role none). */
  role?: Role;
  /** The presence whose show/status/extensions are relayed; the occupant's last one by default. */
  source?: Element;
  /** `<destroy/>` and similar payloads added to the muc#user element. */
  userChildren?: Element[];
  /** The id of the presence that caused this one, reflected in the self variant (as Prosody does on entry). */
  selfId?: string;
}


export function primarySession(occupant: Occupant): { jid: string; presence: Element } {
  let last: { jid: string; presence: Element } | undefined;
  for (const session of occupant.sessions.values()) last = session;
  if (!last) throw new Error(`occupant ${occupant.nick} has no session`);
  return last;
}

export interface PresenceVariants {
  forViewer(role: Role): Element;
  forSelf(): Element;
}

export function presenceVariants(room: Room, occupant: Occupant, options: PresenceOptions = {}): PresenceVariants {
  const session = primarySession(occupant);
  const source = options.source ?? session.presence;
  const affiliation = affiliationOf(room, occupant.bareJid);
  const role = options.role ?? occupant.role;
  const relayed = source.children.filter((c): c is Element => typeof c !== "string" && !isRoomOwned(c));

  const build = (withJid: boolean, self: boolean): Element => {
    const extras = options.item ?? {};
    const actorJid = withJid && !self ? extras.actorJid : undefined;
    const item = (jid: string | undefined) =>
      xml(
        "item",
        { affiliation, role, jid, nick: extras.nick },
        extras.actorNick || actorJid ? xml("actor", { nick: extras.actorNick, jid: actorJid }) : null,
        extras.reason ? xml("reason", {}, extras.reason) : null,
      );
    // Viewers who may see real JIDs get one item per session, as Prosody sends them.
    const items = withJid ? [...occupant.sessions.keys()].reverse().map(item) : [item(undefined)];
    const codes = [...(options.codes ?? []), ...(self ? [...(options.selfCodes ?? []), 110] : [])];
    // The muc#user <x/> comes first: clients such as profanity read the first <x/> of a presence.
    return xml(
      "presence",
      { from: `${room.jid}/${occupant.nick}`, type: options.type, id: self ? options.selfId : undefined },
      xml("x", { xmlns: NS.MUC_USER }, ...items, ...(options.userChildren ?? []), ...[...new Set(codes)].map((code) => xml("status", { code: String(code) }))),
      ...relayed.map(cloneElement),
      xml("occupant-id", { xmlns: NS.OCCUPANT_ID, id: occupant.occupantId }),
    );
  };

  let full: Element | undefined;
  let anonymous: Element | undefined;
  let self: Element | undefined;
  return {
    forViewer(viewerRole) {
      if (canSeeRealJids(room, viewerRole)) return (full ??= build(true, false));
      return (anonymous ??= build(false, false));
    },
    forSelf() {
      return (self ??= build(true, true));
    },
  };
}

/** A copy of a prepared stanza addressed to one recipient. */
export function addressed(stanza: Element, to: string): Element {
  const copy = cloneElement(stanza);
  copy.attrs.to = to;
  return copy;
}
