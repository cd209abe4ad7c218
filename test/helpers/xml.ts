// Stanza fixtures and a structural matcher for unit tests: fixtures are the examples of the XEPs,
// copied from their XML sources into test/fixtures/xep-NNNN-examples.json.
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import parse from "@xmpp/xml/lib/parse.js";
import type { Element } from "@xmpp/xml";

type Examples = Record<string, { caption: string; xml: string }>;
const cache = new Map<string, Examples>();

function examples(xep: string): Examples {
  let loaded = cache.get(xep);
  if (!loaded) {
    const file = new URL(`../../../test/fixtures/xep-${xep}-examples.json`, import.meta.url);
    loaded = JSON.parse(readFileSync(file, "utf8")) as Examples;
    cache.set(xep, loaded);
  }
  return loaded;
}

/** Drops whitespace-only text between elements, as a stream parser's consumer would ignore it. */
function trim(el: Element): Element {
  el.children = el.children.filter((c) => typeof c !== "string" || c.trim() !== "");
  for (const child of el.children) if (typeof child !== "string") trim(child);
  return el;
}

export function parseXml(text: string): Element {
  return trim(parse(text));
}

/** The XEP example with this caption (the first one, or the nth with `index`). */
export function example(xep: string, caption: string, index = 0): Element {
  const found = Object.values(examples(xep)).filter((e) => e.caption === caption);
  const chosen = found[index];
  if (!chosen) throw new Error(`XEP-${xep} has no example captioned '${caption}'`);
  return parseXml(chosen.xml);
}

function describe(el: Element): string {
  return el.toString().slice(0, 400);
}

function childMatches(actual: Element, expected: Element): boolean {
  try {
    assertMatches(actual, expected);
    return true;
  } catch {
    return false;
  }
}

/**
 * Asserts that `actual` has every attribute and child that `expected` has (extra ones are fine),
 * children in any order, each expected child matched by a distinct actual child.
 */
export function assertMatches(actual: Element, expected: Element): void {
  assert.equal(actual.name, expected.name, `element name in ${describe(actual)}`);
  for (const [name, value] of Object.entries(expected.attrs)) {
    assert.equal(actual.attrs[name], value, `attribute ${name} of <${actual.name}> in ${describe(actual)}`);
  }
  const used = new Set<Element>();
  for (const child of expected.children) {
    if (typeof child === "string") {
      assert.equal(actual.getText().trim(), child.trim(), `text of <${actual.name}>`);
      continue;
    }
    const candidate = actual.getChildElements().find((c) => !used.has(c) && childMatches(c, child));
    assert.ok(candidate, `no child matching ${describe(child)} in ${describe(actual)}`);
    used.add(candidate);
  }
}
