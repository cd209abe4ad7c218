// Serialise once, splice the `to` (issue 14). A room broadcast is many stanzas that differ only in
// their `to`: serialising each copy walks and escapes the same tree again and again. Here each distinct
// stanza is serialised once into a template cut at its `to` attribute, and every further copy is the
// template with the copy's escaped `to` spliced in. The groups are also what multicast through the
// server needs (one stanza and its list of recipients).
import xml, { type Element } from "@xmpp/xml";

/** A stanza as sent, serialised around its `to` attribute: `head + escapeXML(to) + tail`. */
export interface Template {
  /** The first copy; the others are equal to it but for their `to`. */
  readonly stanza: Element;
  readonly head: string;
  readonly tail: string;
}

/** One stanza of a batch, as serialised text, and the template group it belongs to (if any). */
export interface FanOutGroup {
  template: Template | null;
  /** Each copy's `to`, in the order sent; one entry for a stanza without a template. */
  recipients: string[];
  /** The stanza itself when it has no template (no string `to`, or a text holding the marker). */
  single?: Element;
}

// Never produced by the XML parser (U+0001 is not an XML character), so it cannot be in a stanza that
// came from the wire; a stanza the engine built holding it anyway is serialised the plain way.
const MARKER = "\u0001to\u0001";

/** How many recent distinct stanzas a copy is compared with: a presence broadcast alternates the
 * moderator's and the participant's variants as it walks the occupants. */
const RECENT_TEMPLATES = 4;

export function makeTemplate(stanza: Element): Template | null {
  const to = stanza.attrs.to;
  if (typeof to !== "string") return null;
  // A shallow twin: same attributes in the same order (so `to` keeps its place), shared children.
  const twin = new xml.Element(stanza.name, { ...stanza.attrs, to: MARKER });
  twin.children = stanza.children;
  const text = twin.toString();
  const at = text.indexOf(MARKER);
  if (at === -1 || text.indexOf(MARKER, at + 1) !== -1) return null;
  return { stanza, head: text.slice(0, at), tail: text.slice(at + MARKER.length) };
}

export function spliced(template: Template, to: string): string {
  return template.head + xml.escapeXML(to) + template.tail;
}

/**
 * Groups a batch of stanzas by template, keeping each recipient's order: a copy joins an earlier group
 * only if its recipient has nothing in a later group (so no stanza ever overtakes another to the same
 * address). Groups are in the order of their first stanza.
 */
export function groupByTemplate(stanzas: readonly Element[]): FanOutGroup[] {
  const groups: FanOutGroup[] = [];
  const recent: number[] = [];
  const lastGroupOf = new Map<string, number>();
  for (const stanza of stanzas) {
    const to = stanza.attrs.to;
    let index = -1;
    if (typeof to === "string") {
      const floor = lastGroupOf.get(to) ?? -1;
      for (let i = recent.length - 1; i >= 0; i--) {
        const g = recent[i]!;
        if (g >= floor && sameButTo(groups[g]!.template!.stanza, stanza)) {
          index = g;
          break;
        }
      }
    }
    if (index === -1) {
      const template = makeTemplate(stanza);
      index = groups.length;
      groups.push(template ? { template, recipients: [] } : { template: null, recipients: [String(to ?? "")], single: stanza });
      if (template) {
        recent.push(index);
        if (recent.length > RECENT_TEMPLATES) recent.shift();
      }
    }
    if (typeof to === "string") {
      if (groups[index]!.template) groups[index]!.recipients.push(to);
      lastGroupOf.set(to, index);
    }
  }
  return groups;
}

/** The text of one group: one copy per recipient. */
export function serialiseGroup(group: FanOutGroup): string {
  if (!group.template) return group.single!.toString();
  let text = "";
  for (const to of group.recipients) text += spliced(group.template, to);
  return text;
}

/** A whole batch as the text to write: the same stanzas, serialised once per distinct stanza. */
export function serialiseBatch(stanzas: readonly Element[]): string {
  let text = "";
  for (const group of groupByTemplate(stanzas)) text += serialiseGroup(group);
  return text;
}

const present = (v: unknown) => v !== undefined && v !== null;

/** Whether two stanzas serialise alike but for the `to` of the outer element. */
export function sameButTo(a: Element, b: Element): boolean {
  if (a === b) return true;
  if (a.name !== b.name) return false;
  return sameAttrs(a.attrs, b.attrs, "to") && sameChildren(a, b);
}

function sameTree(a: Element, b: Element): boolean {
  if (a === b) return true;
  return a.name === b.name && sameAttrs(a.attrs, b.attrs, null) && sameChildren(a, b);
}

function sameAttrs(a: Record<string, unknown>, b: Record<string, unknown>, ignored: string | null): boolean {
  for (const k in a) {
    if (k === ignored) continue;
    const va = a[k];
    const vb = b[k];
    if (!present(va)) {
      if (present(vb)) return false;
    } else if (!present(vb) || String(va) !== String(vb)) return false;
  }
  for (const k in b) if (k !== ignored && present(b[k]) && !present(a[k])) return false;
  return true;
}

function sameChildren(a: Element, b: Element): boolean {
  const ca = a.children;
  const cb = b.children;
  if (ca.length !== cb.length) return false;
  for (let i = 0; i < ca.length; i++) {
    const x = ca[i]!;
    const y = cb[i]!;
    if (typeof x === "string" || typeof y === "string") {
      if (x !== y) return false;
    } else if (!sameTree(x, y)) return false;
  }
  return true;
}
