// What a room keeps of a session's last presence: only the payload it relays to others (show, status,
// caps, avatar hash...), not the stanza as it arrived. Identical payload elements are shared between
// sessions: users of one client version send the same XEP-0115 <c/>, most send the same <show/>, so a
// room of a thousand occupants holds a handful of them, not a thousand parsed copies (issue 14: memory
// per occupant). The shared elements are treated as immutable, as all room state is: presences are
// cloned before anything is added to them (presence.ts).
import xml, { type Element } from "@xmpp/xml";
import parse from "@xmpp/xml/lib/parse.js";
import { NS } from "../../xmpp/stanza.js";

/** Elements the room builds itself and never relays, so that they cannot be spoofed. */
export function isRoomOwned(child: Element): boolean {
  const ns = child.attrs.xmlns;
  return (child.name === "x" && (ns === NS.MUC || ns === NS.MUC_USER)) || (child.name === "occupant-id" && ns === NS.OCCUPANT_ID);
}

// Serialised payload element -> the one shared copy, forgotten once no kept presence holds it.
const shared = new Map<string, WeakRef<Element>>();
const forget = new FinalizationRegistry<string>((text) => {
  if (shared.get(text)?.deref() === undefined) shared.delete(text);
});

function sharedCopy(child: Element): Element {
  const text = child.toString();
  const known = shared.get(text)?.deref();
  if (known) return known;
  // Parsed from its own text: it holds no string of the stanza it came from (a parser's substrings
  // keep their whole input alive).
  const copy = parse(text);
  shared.set(text, new WeakRef(copy));
  forget.register(copy, text);
  return copy;
}

/** The presence to keep for a session: a bare <presence/> with the relayed children, shared. */
export function keptPresence(stanza: Element): Element {
  const kept = xml("presence");
  // Set, not appended: a shared element has no single parent. An array of the exact length (one
  // grown by push reserves room for 17).
  kept.children = stanza.children.filter((c): c is Element => typeof c !== "string" && !isRoomOwned(c)).map(sharedCopy);
  return kept;
}
