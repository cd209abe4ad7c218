// A stanza as comparable text: attributes in name order (their order carries no meaning in XML, and
// Prosody serialises them in its tables' order, which differs from stanza to stanza).
import xml, { type Element } from "@xmpp/xml";

/** `mask(name, value, depth)` may replace an attribute's value (or drop it with undefined). */
export function canonicalXml(el: Element, mask: (name: string, value: string, depth: number) => string | undefined = (_, v) => v, depth = 0): string {
  let text = `<${el.name}`;
  for (const k of Object.keys(el.attrs).sort()) {
    const v = el.attrs[k];
    if (v === undefined || v === null) continue;
    const shown = mask(k, String(v), depth);
    if (shown !== undefined) text += ` ${k}="${xml.escapeXML(shown)}"`;
  }
  text += ">";
  for (const c of el.children) text += typeof c === "string" ? xml.escapeXMLText(c) : canonicalXml(c, mask, depth + 1);
  return `${text}</${el.name}>`;
}
