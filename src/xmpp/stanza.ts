// Namespaces and the small builders every handler needs: error replies (RFC 6120 §8.3) and IQ results.
import xml, { type Element } from "@xmpp/xml";

export const NS = {
  STANZAS: "urn:ietf:params:xml:ns:xmpp-stanzas",
  DISCO_INFO: "http://jabber.org/protocol/disco#info",
  DISCO_ITEMS: "http://jabber.org/protocol/disco#items",
  PING: "urn:xmpp:ping",
  DATA_FORMS: "jabber:x:data",
  MUC: "http://jabber.org/protocol/muc",
  MUC_USER: "http://jabber.org/protocol/muc#user",
  MUC_ADMIN: "http://jabber.org/protocol/muc#admin",
  MUC_OWNER: "http://jabber.org/protocol/muc#owner",
  MUC_ROOMINFO: "http://jabber.org/protocol/muc#roominfo",
  MUC_ROOMCONFIG: "http://jabber.org/protocol/muc#roomconfig",
  MUC_REQUEST: "http://jabber.org/protocol/muc#request",
  MUC_STABLE_ID: "http://jabber.org/protocol/muc#stable_id",
  REGISTER: "jabber:iq:register",
  COMMANDS: "http://jabber.org/protocol/commands",
  DELAY: "urn:xmpp:delay",
  /** XEP-0091 legacy delayed delivery, still parsed by some clients. */
  LEGACY_DELAY: "jabber:x:delay",
  STANZA_ID: "urn:xmpp:sid:0",
  OCCUPANT_ID: "urn:xmpp:occupant-id:0",
  CONFERENCE: "jabber:x:conference",
  DMUC: "urn:xmpp:tmp:dmuc:0",
} as const;

export type ErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";

export type ErrorCondition =
  | "bad-request"
  | "conflict"
  | "feature-not-implemented"
  | "forbidden"
  | "gone"
  | "internal-server-error"
  | "item-not-found"
  | "jid-malformed"
  | "not-acceptable"
  | "not-allowed"
  | "not-authorized"
  | "policy-violation"
  | "recipient-unavailable"
  | "redirect"
  | "registration-required"
  | "remote-server-not-found"
  | "remote-server-timeout"
  | "resource-constraint"
  | "service-unavailable"
  | "subscription-required"
  | "undefined-condition"
  | "unexpected-request";

export interface StanzaErrorSpec {
  type: ErrorType;
  condition: ErrorCondition;
  text?: string;
  /** Who generated the error (RFC 6120 §8.3.2), e.g. the room's bare JID. */
  by?: string;
  /** Extra children of <error/>, e.g. the alternate venue of a gone room. */
  conditionText?: string;
}

export function errorElement(spec: StanzaErrorSpec): Element {
  return xml(
    "error",
    { type: spec.type, by: spec.by },
    xml(spec.condition, { xmlns: NS.STANZAS }, spec.conditionText),
    spec.text ? xml("text", { xmlns: NS.STANZAS }, spec.text) : null,
  );
}

/**
 * The error reply to a stanza: addresses swapped, same id and kind, type "error". Errors are never
 * answered (RFC 6120 §8.3.1), so callers check `mayAnswerWithError` first.
 */
export function errorReply(stanza: Element, spec: StanzaErrorSpec, payload: Element[] = []): Element {
  return xml(
    stanza.name,
    { type: "error", id: stanza.attrs.id, from: stanza.attrs.to, to: stanza.attrs.from },
    ...payload,
    errorElement(spec),
  );
}

export function mayAnswerWithError(stanza: Element): boolean {
  if (stanza.attrs.type === "error") return false;
  if (stanza.name === "iq" && stanza.attrs.type === "result") return false;
  return true;
}

export function iqResult(iq: Element, payload?: Element | null): Element {
  return xml("iq", { type: "result", id: iq.attrs.id, from: iq.attrs.to, to: iq.attrs.from }, payload ?? null);
}

/** The single payload element of an IQ get/set, or undefined when it has none or several. */
export function iqPayload(iq: Element): Element | undefined {
  const children = iq.getChildElements();
  return children.length === 1 ? children[0] : undefined;
}
