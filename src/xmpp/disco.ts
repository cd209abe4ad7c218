// XEP-0030 disco#info and disco#items payloads: one builder each.
import xml, { type Element } from "@xmpp/xml";
import { NS } from "./stanza.js";

export interface DiscoIdentity {
  category: string;
  type: string;
  name?: string;
}

export interface DiscoItem {
  jid: string;
  name?: string;
  node?: string;
}

export function buildDiscoInfo(identities: DiscoIdentity[], features: Iterable<string>, forms: Element[] = [], node?: string): Element {
  return xml(
    "query",
    { xmlns: NS.DISCO_INFO, node },
    ...identities.map((i) => xml("identity", { category: i.category, type: i.type, name: i.name })),
    ...[...new Set(features)].sort().map((f) => xml("feature", { var: f })),
    ...forms,
  );
}

export function buildDiscoItems(items: DiscoItem[], node?: string): Element {
  return xml("query", { xmlns: NS.DISCO_ITEMS, node }, ...items.map((i) => xml("item", { jid: i.jid, name: i.name, node: i.node })));
}
