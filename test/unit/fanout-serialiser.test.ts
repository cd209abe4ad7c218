// Serialise once, splice the `to` (issue 14): what goes on the wire must parse to exactly the stanzas a
// per-recipient clone would give, whatever the attribute values and texts hold.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import xml, { type Element } from "@xmpp/xml";
import parse from "@xmpp/xml/lib/parse.js";
import { groupByTemplate, sameButTo, serialiseBatch } from "../../src/xmpp/fanout-serialiser.js";
import { cloneElement } from "../../src/xmpp/element.js";

/** What the room engine sends to one recipient: a deep copy with its own `to`. */
function addressedCopy(stanza: Element, to: string): Element {
  const copy = cloneElement(stanza);
  copy.attrs.to = to;
  return copy;
}

/** A parsed tree as plain data: attributes as a set (their order carries no meaning in XML). */
interface Tree {
  name: string;
  attrs: Record<string, string>;
  children: (Tree | string)[];
}
function tree(el: Element): Tree {
  const attrs: Record<string, string> = {};
  for (const k of Object.keys(el.attrs).sort()) if (el.attrs[k] !== undefined && el.attrs[k] !== null) attrs[k] = String(el.attrs[k]);
  const children: (Tree | string)[] = [];
  for (const c of el.children) {
    if (typeof c !== "string") children.push(tree(c));
    else if (typeof children[children.length - 1] === "string") children[children.length - 1] += c;
    else if (c !== "") children.push(c);
  }
  return { name: el.name, attrs, children };
}

/** Parses a concatenation of stanzas (what is written to the socket) into their trees. */
function parseWire(text: string): Tree[] {
  return parse(`<wire>${text}</wire>`).getChildElements().map(tree);
}

// XML 1.0 characters, with the ones that need escaping made frequent.
const xmlChar = fc.oneof(
  fc.constantFrom("<", ">", "&", '"', "'", "&amp;", "]]>", "é", "💬", " ", "\n", "\t"),
  fc.string({ unit: "grapheme", maxLength: 3 }).filter((s) => !/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/.test(s)),
);
const xmlText = fc.array(xmlChar, { maxLength: 8 }).map((parts) => parts.join(""));
const name = fc.constantFrom("body", "x", "item", "status", "delay", "stanza-id", "occupant-id", "thread");
const attrName = fc.constantFrom("xmlns", "id", "type", "from", "jid", "nick", "role", "to", "by", "stamp");

const element: fc.Memo<Element> = fc.memo((depth) => {
  const children = depth <= 1 ? fc.array(xmlText, { maxLength: 2 }) : fc.array(fc.oneof(xmlText, element(depth - 1)), { maxLength: 3 });
  return fc.tuple(name, fc.dictionary(attrName, xmlText, { maxKeys: 4 }), children).map(([n, attrs, kids]) => xml(n, attrs, ...kids));
});

const stanza = fc
  .tuple(fc.constantFrom("message", "presence"), fc.dictionary(fc.constantFrom("id", "type", "from", "xml:lang"), xmlText, { maxKeys: 3 }), fc.array(element(3), { maxLength: 4 }), fc.boolean())
  // Some variants carry a `to` of their own (replaced per copy), most none (added per copy).
  .map(([n, attrs, kids, withTo]) => xml(n, withTo ? { to: "room@muc.example", ...attrs } : attrs, ...kids));
const recipient = fc.tuple(xmlText, xmlText).map(([user, resource]) => `${user}@example.org/${resource}`);

test("a spliced fan-out parses to exactly the per-recipient clones, escaping included", () => {
  fc.assert(
    fc.property(stanza, fc.array(recipient, { minLength: 1, maxLength: 6 }), (variant, recipients) => {
      const copies = recipients.map((to) => addressedCopy(variant, to));
      const expected = copies.map((c) => tree(parse(c.toString())));
      assert.deepEqual(parseWire(serialiseBatch(copies)), expected);
      // Nothing changed the engine's stanzas.
      assert.deepEqual(copies.map((c) => c.attrs.to), recipients);
    }),
    { numRuns: 300 },
  );
});

test("a batch of several variants keeps every recipient's stanzas, in that recipient's order", () => {
  fc.assert(
    fc.property(fc.array(stanza, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.constantFrom("a@x/1", "b@x/2", "c@y/3", "d&'\"<@x/4")), { minLength: 1, maxLength: 30 }), (variants, picks) => {
      const copies = picks.map(([v, to]) => addressedCopy(variants[v % variants.length]!, to));
      const sent = parseWire(serialiseBatch(copies));
      const wanted = copies.map((c) => tree(parse(c.toString())));
      assert.equal(sent.length, wanted.length);
      for (const to of new Set(picks.map(([, t]) => t))) {
        assert.deepEqual(sent.filter((t) => t.attrs.to === to), wanted.filter((t) => t.attrs.to === to), `stanzas to ${to}`);
      }
    }),
    { numRuns: 300 },
  );
});

test("copies identical but for `to` share one template; a difference anywhere else makes another", () => {
  const variant = xml("message", { from: "room@muc/nick", type: "groupchat" }, xml("body", {}, "hi"), xml("x", { xmlns: "urn:x", to: "inner" }));
  const other = cloneElement(variant);
  (other.getChild("x", "urn:x")!.attrs as Record<string, string>).to = "changed";
  const groups = groupByTemplate([addressedCopy(variant, "a@x/1"), addressedCopy(variant, "b@x/1"), addressedCopy(other, "c@x/1"), addressedCopy(variant, "d@x/1")]);
  assert.deepEqual(groups.map((g) => g.recipients), [["a@x/1", "b@x/1", "d@x/1"], ["c@x/1"]]);
  assert.ok(sameButTo(addressedCopy(variant, "a"), addressedCopy(variant, "b")));
  assert.ok(!sameButTo(addressedCopy(variant, "a"), addressedCopy(other, "a")), "a nested `to` is content");
  assert.ok(!sameButTo(variant, xml("message", { from: "room@muc/nick", type: "groupchat" }, xml("body", {}, "hi!"), xml("x", { xmlns: "urn:x", to: "inner" }))));
  assert.ok(!sameButTo(variant, xml("message", { from: "room@muc/nick", type: "chat" }, xml("body", {}, "hi"), xml("x", { xmlns: "urn:x", to: "inner" }))));
});

test("a copy never overtakes an earlier stanza to the same recipient", () => {
  const a = xml("message", { from: "r@muc/n", type: "groupchat" }, xml("body", {}, "first"));
  const b = xml("presence", { from: "r@muc/m" });
  // a→x, b→y, a→y: the second a must stay after b for y.
  const wire = parseWire(serialiseBatch([addressedCopy(a, "x@s/1"), addressedCopy(b, "y@s/1"), addressedCopy(a, "y@s/1")]));
  assert.deepEqual(wire.filter((t) => t.attrs.to === "y@s/1").map((t) => t.name), ["presence", "message"]);
});

test("a stanza without `to` or with the template marker in a text is serialised as it is", () => {
  const noTo = xml("message", { from: "r@muc" }, xml("body", {}, "x"));
  const marked = xml("message", { from: "r@muc", to: "a@s/1" }, xml("body", {}, "\u0001to\u0001"));
  assert.equal(serialiseBatch([noTo, marked]), noTo.toString() + marked.toString());
});
