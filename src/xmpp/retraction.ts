// XEP-0424 (message retraction) and XEP-0425 (moderation) on the wire, in both generations clients
// speak: the current one (urn:xmpp:message-retract:1, urn:xmpp:message-moderate:1) and the older
// fastening form (urn:xmpp:fasten:0 <apply-to/> with the :0 namespaces) that some clients still send
// and read. One parse/build pair per element.
import xml, { type Element } from "@xmpp/xml";
import { NS } from "./stanza.js";

export const NS_RETRACT = "urn:xmpp:message-retract:1";
export const NS_MODERATE = "urn:xmpp:message-moderate:1";
export const NS_RETRACT_0 = "urn:xmpp:message-retract:0";
export const NS_MODERATE_0 = "urn:xmpp:message-moderate:0";
export const NS_FASTEN = "urn:xmpp:fasten:0";

/** A moderator's request to retract a message of the room (the IQ payload). */
export interface ModerationRequest {
  /** The stanza-id the room gave the message. */
  stanzaId: string;
  reason?: string;
  /** Which form the client used: 1 (<moderate/>) or 0 (<apply-to><moderate/></apply-to>). */
  version: 0 | 1;
}

/** Reads an IQ payload: <moderate xmlns=':1' id><retract/></moderate> or <apply-to id><moderate xmlns=':0'><retract/></moderate></apply-to>. */
export function parseModerationRequest(payload: Element): ModerationRequest | null {
  if (payload.is("moderate", NS_MODERATE)) {
    const id = payload.attrs.id;
    if (!id || !payload.getChild("retract", NS_RETRACT)) return null;
    return withReason<ModerationRequest>({ stanzaId: id, version: 1 }, payload.getChildText("reason"));
  }
  if (payload.is("apply-to", NS_FASTEN)) {
    const moderate = payload.getChild("moderate", NS_MODERATE_0);
    const id = payload.attrs.id;
    if (!id || !moderate?.getChild("retract", NS_RETRACT_0)) return null;
    return withReason<ModerationRequest>({ stanzaId: id, version: 0 }, moderate.getChildText("reason"));
  }
  return null;
}

function withReason<T extends { reason?: string }>(value: T, reason: string | null): T {
  if (reason !== null && reason !== "") value.reason = reason;
  return value;
}

export function buildModerationRequest(request: ModerationRequest): Element {
  const reason = request.reason !== undefined ? xml("reason", {}, request.reason) : null;
  if (request.version === 1) return xml("moderate", { xmlns: NS_MODERATE, id: request.stanzaId }, xml("retract", { xmlns: NS_RETRACT }), reason);
  return xml("apply-to", { xmlns: NS_FASTEN, id: request.stanzaId }, xml("moderate", { xmlns: NS_MODERATE_0 }, xml("retract", { xmlns: NS_RETRACT_0 }), reason));
}

/** What the room announces when a moderator retracted a message. */
export interface ModerationNotice {
  stanzaId: string;
  /** The moderator's occupant JID (room@service/nick), when it has a nick. */
  by?: string;
  /** XEP-0421 occupant-id of the moderator. */
  moderatorOccupantId?: string;
  reason?: string;
}

const occupantId = (id: string | undefined) => (id !== undefined ? xml("occupant-id", { xmlns: NS.OCCUPANT_ID, id }) : null);

/**
 * The children of the room's announcement: the XEP-0425 0.3 <retract/> and, for clients of the
 * earlier version, the same moderation as a fastening (as Prosody's mod_muc_moderation sends both).
 */
export function buildModerationNotice(notice: ModerationNotice): Element[] {
  const reason = () => (notice.reason !== undefined ? xml("reason", {}, notice.reason) : null);
  return [
    xml(
      "retract",
      { xmlns: NS_RETRACT, id: notice.stanzaId },
      xml("moderated", { xmlns: NS_MODERATE, by: notice.by }, occupantId(notice.moderatorOccupantId)),
      reason(),
    ),
    xml(
      "apply-to",
      { xmlns: NS_FASTEN, id: notice.stanzaId },
      xml("moderated", { xmlns: NS_MODERATE_0, by: notice.by }, xml("retract", { xmlns: NS_RETRACT_0 }), reason(), occupantId(notice.moderatorOccupantId)),
    ),
  ];
}

/** Reads a moderation announcement (either form); null when the message is not one. */
export function parseModerationNotice(message: Element): ModerationNotice | null {
  const retract = message.getChild("retract", NS_RETRACT);
  const moderated = retract?.getChild("moderated", NS_MODERATE);
  if (retract?.attrs.id && moderated) {
    return cleaned({ stanzaId: retract.attrs.id, by: moderated.attrs.by, moderatorOccupantId: moderated.getChild("occupant-id", NS.OCCUPANT_ID)?.attrs.id, reason: retract.getChildText("reason") ?? undefined });
  }
  const applyTo = message.getChild("apply-to", NS_FASTEN);
  const moderated0 = applyTo?.getChild("moderated", NS_MODERATE_0);
  if (applyTo?.attrs.id && moderated0?.getChild("retract", NS_RETRACT_0)) {
    return cleaned({ stanzaId: applyTo.attrs.id, by: moderated0.attrs.by, moderatorOccupantId: moderated0.getChild("occupant-id", NS.OCCUPANT_ID)?.attrs.id, reason: moderated0.getChildText("reason") ?? undefined });
  }
  return null;
}

function cleaned(notice: ModerationNotice): ModerationNotice {
  for (const key of Object.keys(notice) as (keyof ModerationNotice)[]) if (notice[key] === undefined) delete notice[key];
  return notice;
}

/**
 * An author's retraction of their own message (XEP-0424) inside a groupchat message: the current
 * <retract id/> (the id is the room's stanza-id), or the fastening form (often the origin-id).
 */
export function parseAuthorRetraction(message: Element): { id: string } | null {
  const retract = message.getChild("retract", NS_RETRACT);
  if (retract?.attrs.id && !retract.getChild("moderated", NS_MODERATE)) return { id: retract.attrs.id };
  const applyTo = message.getChild("apply-to", NS_FASTEN);
  if (applyTo?.attrs.id && applyTo.getChild("retract", NS_RETRACT_0)) return { id: applyTo.attrs.id };
  return null;
}

export function buildAuthorRetraction(id: string): Element {
  return xml("retract", { xmlns: NS_RETRACT, id });
}

/** How a retracted message is kept in the archive (XEP-0424 §5, XEP-0425 §4): who retracted it and when. */
export interface Tombstone {
  at: Date;
  /** Present when a moderator retracted it. */
  moderation?: { by?: string; moderatorOccupantId?: string; reason?: string };
}

/**
 * The archived message replaced by its tombstone: addressing, id, sender's occupant-id and the room's
 * stanza-id kept; the body and every other payload dropped.
 */
export function buildTombstone(original: Element, tombstone: Tombstone): Element {
  const kept = original.getChildElements().filter((c) => (c.name === "occupant-id" && c.attrs.xmlns === NS.OCCUPANT_ID) || (c.name === "stanza-id" && c.attrs.xmlns === NS.STANZA_ID));
  const { moderation } = tombstone;
  return xml(
    "message",
    { type: original.attrs.type, from: original.attrs.from, id: original.attrs.id },
    ...kept,
    xml(
      "retracted",
      { xmlns: NS_RETRACT, stamp: tombstone.at.toISOString().replace(".000Z", "Z") },
      moderation ? xml("moderated", { xmlns: NS_MODERATE, by: moderation.by }, occupantId(moderation.moderatorOccupantId)) : null,
      moderation?.reason !== undefined ? xml("reason", {}, moderation.reason) : null,
    ),
  );
}

/** Whether a stored message is already a tombstone. */
export function isTombstone(message: Element): boolean {
  return message.getChild("retracted", NS_RETRACT) !== undefined;
}
