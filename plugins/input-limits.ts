// Input limits at the edge (issue 15 points 2 and 3, issue 16 points 3 and 6): every stanza is measured
// once, before any handler sees it, and refused with an XMPP error when it is too big, too deep, has too
// many children, or carries too much text. All limits are settings (src/config.ts).
//
// Two checks on the service's first hook (service/route), so that they cover every way in:
// - first of all (highest priority): nesting depth, for every stanza. Whatever passes is shallow
//   enough to be serialised, broadcast and stored: nothing deeper can enter the state, so an occupant
//   whose presence cannot be broadcast or stored cannot exist (issue 16 point 3). DMUC2 traffic gets a
//   few levels more, for the wrapping around the stanzas it carries.
// - last (lowest priority, after the DMUC2 handlers declined): everything else, for the stanzas that go
//   to rooms and to the service. DMUC2 traffic (netjoin, state) legitimately carries whole histories and
//   rosters; what it carries on to rooms is injected and checked here again, one stanza at a time.
//
// Refusals are `modify` `policy-violation` for what exceeds a limit, and `modify` `not-acceptable` for
// two bodies (or subjects) in one language, which RFC 6121 §5.2.3 and §5.2.4 forbid. Error stanzas are
// never answered (RFC 6120 §8.3.1): the service drops them.
import type { Element } from "@xmpp/xml";
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import { bareString, type Jid } from "../src/xmpp/jid.js";
import { NS } from "../src/xmpp/stanza.js";

export interface InputLimits {
  /** Serialised size of a stanza, in bytes of UTF-8 (DMUC_MAX_STANZA_BYTES). */
  maxStanzaBytes: number;
  /** Nesting depth: the stanza is level 1, its children level 2... (DMUC_MAX_DEPTH). */
  maxDepth: number;
  /** Child elements of any one element (DMUC_MAX_CHILDREN). */
  maxChildren: number;
  /** Characters (Unicode code points) of all the bodies of a message together (DMUC_MAX_BODY_CHARS). */
  maxBodyChars: number;
  /** Characters of all the subjects of a message together (DMUC_MAX_SUBJECT_CHARS). */
  maxSubjectChars: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = {
  // Prosody's own c2s_stanza_size_limit.
  maxStanzaBytes: 256 * 1024,
  maxDepth: 32,
  maxChildren: 1000,
  maxBodyChars: 10_000,
  maxSubjectChars: 1000,
};

/** Levels DMUC2 adds around the stanzas it carries (iq > netjoin > message, message > relay > message). */
const DMUC_WRAPPING_LEVELS = 4;

/** Namespaces a <body/> or <subject/> of the stanza itself may have (none: inherited from the stream). */
const STANZA_NAMESPACES = new Set([undefined, "jabber:client", "jabber:server", "jabber:component:accept"]);

export interface StanzaShape {
  depth: number;
  /** The largest number of child elements of one element. */
  children: number;
  /** UTF-8 bytes of the serialised stanza, close enough (escaping is not counted). */
  bytes: number;
}

/**
 * Depth, widest element and size of a stanza, walked without recursion (a hostile stanza may be
 * thousands of levels deep). Stops early, with the figures so far, once `stopAbove` is exceeded.
 */
export function measureStanza(stanza: Element, stopAbove: Partial<StanzaShape> = {}): StanzaShape {
  const shape: StanzaShape = { depth: 0, children: 0, bytes: 0 };
  const maxDepth = stopAbove.depth ?? Infinity;
  const maxChildren = stopAbove.children ?? Infinity;
  const maxBytes = stopAbove.bytes ?? Infinity;
  const stack: [Element, number][] = [[stanza, 1]];
  while (stack.length > 0) {
    const [el, depth] = stack.pop()!;
    if (depth > shape.depth) shape.depth = depth;
    // <name ...></name>
    shape.bytes += 2 * Buffer.byteLength(el.name) + 5;
    for (const [key, value] of Object.entries(el.attrs)) {
      if (value !== undefined && value !== null) shape.bytes += Buffer.byteLength(key) + Buffer.byteLength(String(value)) + 4;
    }
    let elements = 0;
    for (const child of el.children) {
      if (typeof child === "string") shape.bytes += Buffer.byteLength(child);
      else {
        elements++;
        stack.push([child, depth + 1]);
      }
    }
    if (elements > shape.children) shape.children = elements;
    if (shape.depth > maxDepth || shape.children > maxChildren || shape.bytes > maxBytes) return shape;
  }
  return shape;
}

/** Unicode code points of a string (a character outside the BMP is one, not two UTF-16 units). */
export function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

const tooMuch = (text: string) => new StanzaError("modify", "policy-violation", text);

/** The refusal, from the entity the stanza was addressed to (its bare JID: the room, or the service). */
function refuse(refusal: StanzaError, to: Jid): never {
  throw new StanzaError(refusal.spec.type, refusal.spec.condition, refusal.spec.text, { by: bareString(to) });
}

/** The refusal for a stanza too deep for anything to handle, or undefined. */
export function depthRefusal(stanza: Element, maxDepth: number): StanzaError | undefined {
  const shape = measureStanza(stanza, { depth: maxDepth });
  return shape.depth > maxDepth ? tooMuch(`Elements may be nested at most ${maxDepth} levels deep`) : undefined;
}

/** Every <name/> child of the stanza itself, whatever its namespace, and the texts of those in the stanza's own. */
function texts(stanza: Element, name: string, limit: number, what: string): StanzaError | undefined {
  const all = stanza.getChildren(name);
  if (all.length === 0) return undefined;
  // Every one counts, whatever its namespace: a client shows one of them, and which one is its choice.
  let total = 0;
  for (const el of all) total += codePoints(el.getText());
  if (total > limit) return tooMuch(`Message ${what} are limited to ${limit} characters in all`);
  const languages = new Set<string>();
  for (const el of all) {
    if (!STANZA_NAMESPACES.has(el.attrs.xmlns)) continue;
    const lang = el.attrs["xml:lang"] ?? stanza.attrs["xml:lang"] ?? "";
    if (languages.has(lang)) return new StanzaError("modify", "not-acceptable", `Only one ${name} per language (xml:lang) is allowed`);
    languages.add(lang);
  }
  return undefined;
}

/** The refusal for a stanza over the limits (other than depth, checked first), or undefined. */
export function limitRefusal(stanza: Element, limits: InputLimits): StanzaError | undefined {
  const shape = measureStanza(stanza, { depth: limits.maxDepth, children: limits.maxChildren, bytes: limits.maxStanzaBytes });
  if (shape.depth > limits.maxDepth) return tooMuch(`Elements may be nested at most ${limits.maxDepth} levels deep`);
  if (shape.children > limits.maxChildren) return tooMuch(`An element may have at most ${limits.maxChildren} child elements`);
  if (shape.bytes > limits.maxStanzaBytes) return tooMuch(`Stanzas are limited to ${limits.maxStanzaBytes} bytes`);
  if (stanza.name !== "message") return undefined;
  return texts(stanza, "body", limits.maxBodyChars, "bodies") ?? texts(stanza, "subject", limits.maxSubjectChars, "subjects");
}

const carriesDmuc = (stanza: Element): boolean => stanza.getChildElements().some((c) => c.attrs.xmlns === NS.DMUC);

export function inputLimitsPlugin(limits: InputLimits): Plugin {
  return {
    name: "input-limits",
    register({ hooks }) {
      hooks.on(
        "service/route",
        ({ request, to }) => {
          const allowed = carriesDmuc(request.stanza) ? limits.maxDepth + DMUC_WRAPPING_LEVELS : limits.maxDepth;
          const refusal = depthRefusal(request.stanza, allowed);
          if (refusal) refuse(refusal, to);
          return undefined;
        },
        Number.MAX_SAFE_INTEGER,
      );
      hooks.on(
        "service/route",
        ({ request, to }) => {
          const refusal = limitRefusal(request.stanza, limits);
          if (refusal) refuse(refusal, to);
          return undefined;
        },
        Number.MIN_SAFE_INTEGER,
      );
    },
  };
}
