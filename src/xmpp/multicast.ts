// XEP-0033 (Extended Stanza Addressing) as the gateway uses it: one stanza and its list of `to`
// addresses handed to the XMPP server's multicast service (the server's own domain, where
// plugins/prosody/mod_dmuc_multicast.lua or ejabberd's mod_multicast answer), which delivers one copy
// to each address. Only for the server's own users: the module refuses remote addresses.
import xml, { type Element } from "@xmpp/xml";
import { cloneElement } from "./element.js";

export const NS_ADDRESS = "http://jabber.org/protocol/address";
const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";

/** The disco#info request that asks `server` whether it offers multicast (id set by the sender). */
export function multicastDiscoRequest(from: string, server: string): Element {
  return xml("iq", { type: "get", from, to: server }, xml("query", { xmlns: NS_DISCO_INFO }));
}

/** Whether a disco#info answer lists XEP-0033's feature. */
export function offersMulticast(answer: Element): boolean {
  if (answer.attrs.type !== "result") return false;
  const query = answer.getChild("query", NS_DISCO_INFO);
  return !!query && query.getChildren("feature").some((f) => f.attrs.var === NS_ADDRESS);
}

/** Whether `jid` is an account of `server` (its bare host is the server's domain, no component). */
export function isUserOf(jid: string, server: string): boolean {
  const at = jid.indexOf("@");
  if (at === -1) return false;
  const slash = jid.indexOf("/", at);
  return jid.slice(at + 1, slash === -1 ? undefined : slash).toLowerCase() === server;
}

/**
 * One stanza for many recipients: `stanza` (a copy as sent to one of them) addressed to the multicast
 * `service`, with an <addresses/> of type 'to' for each recipient.
 */
export function multicastStanza(stanza: Element, service: string, recipients: readonly string[]): Element {
  const outer = cloneElement(stanza);
  outer.attrs.to = service;
  outer.append(xml("addresses", { xmlns: NS_ADDRESS }, ...recipients.map((jid) => xml("address", { type: "to", jid }))));
  return outer;
}
