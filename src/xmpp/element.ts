// Element helpers that ltx (under @xmpp/xml) lacks as methods.
import xml, { type Element } from "@xmpp/xml";

/** A deep copy: the room stamps `to` and adds children per recipient without touching the original. */
export function cloneElement(el: Element): Element {
  const copy = new xml.Element(el.name, { ...el.attrs });
  for (const child of el.children) copy.children.push(typeof child === "string" ? child : adopt(cloneElement(child), copy));
  return copy;
}

function adopt(child: Element, parent: Element): Element {
  child.parent = parent;
  return child;
}
