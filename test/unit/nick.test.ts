import { test } from "node:test";
import assert from "node:assert/strict";
import { inTable, prepareNick } from "../../src/core/room/nick.js";
import { A1, B1, C12, C21, C22, C3, C4, C5, C6, C7, C8, C9, D1, D2 } from "../../src/core/room/stringprep-tables.js";

test("the generated tables are sorted, disjoint inclusive ranges", () => {
  for (const [name, table] of Object.entries({ A1, B1, C12, C21, C22, C3, C4, C5, C6, C7, C8, C9, D1, D2 })) {
    assert.equal(table.length % 2, 0, name);
    for (let i = 0; i < table.length; i += 2) {
      assert.ok(table[i]! <= table[i + 1]!, `${name} range ${i / 2}`);
      if (i > 0) assert.ok(table[i - 1]! < table[i]!, `${name} ranges ${i / 2 - 1} and ${i / 2}`);
    }
  }
  // Spot checks against RFC 3454's appendices.
  assert.ok(inTable(A1, 0x0221) && inTable(A1, 0x1f916) && !inTable(A1, 0x0041));
  assert.ok(inTable(B1, 0x00ad) && inTable(B1, 0xfe0f) && !inTable(B1, 0x0020));
  assert.ok(inTable(C3, 0xe000) && inTable(C3, 0x10fffd) && !inTable(C3, 0xdfff));
  assert.ok(inTable(D1, 0x05d0) && inTable(D2, 0x0041) && !inTable(D2, 0x0030));
});

test("an ASCII nick is unchanged, spaces and case included", () => {
  assert.equal(prepareNick("Romeo"), "Romeo");
  assert.equal(prepareNick("thirdwitch"), "thirdwitch");
  assert.equal(prepareNick("Juliet Capulet"), "Juliet Capulet");
  assert.equal(prepareNick("a@b/c"), "a@b/c");
});

test("NFKC maps compatibility characters: full-width letters become ASCII", () => {
  assert.equal(prepareNick("\uff32\uff4f\uff4d\uff45\uff4f"), "Romeo"); // ＲＯＭＥＯ in full width
  assert.equal(prepareNick("\u2160"), "I"); // ROMAN NUMERAL ONE
  assert.equal(prepareNick("e\u0301"), "\u00e9"); // composed
  assert.equal(prepareNick("\ufb01re"), "fire"); // ligature fi
});

test("table B.1 characters are mapped to nothing", () => {
  assert.equal(prepareNick("Ro\u00admeo"), "Romeo"); // soft hyphen
  assert.equal(prepareNick("Ro\u200bmeo\u2060"), "Romeo"); // zero width space, word joiner
  assert.equal(prepareNick("\u2764\ufe0f"), "\u2764"); // variation selector dropped, HEAVY BLACK HEART is in 3.2
});

test("nicks empty after mapping are rejected", () => {
  assert.equal(prepareNick(""), null);
  assert.equal(prepareNick("\u00ad"), null);
  assert.equal(prepareNick("\ufeff\u200b\u180b"), null);
  assert.equal(prepareNick("   "), null);
});

test("code points unassigned in Unicode 3.2 are rejected (strict mode): emoji", () => {
  assert.equal(prepareNick("\u{1f916}"), null); // ROBOT FACE, Unicode 8.0
  assert.equal(prepareNick("\u{1f916}\ufe0f"), null);
  assert.equal(prepareNick("Romeo \u{1f600}"), null);
  assert.equal(prepareNick("\u0221"), null); // unassigned in 3.2, assigned in 4.0
  assert.equal(prepareNick("\u{1f130}"), null); // SQUARED LATIN CAPITAL LETTER A (5.2): NFKC would give "A"
});

test("control characters, private use and other prohibited characters are rejected", () => {
  for (const bad of [
    "Rom\u0000eo", "Rom\teo", "Rom\u007feo", // C.2.1
    "Rom\u0085eo", "Rom\u200eeo", "Rom\u{1d173}eo", // C.2.2 (U+200E is also C.8)
    "Rom\ue000eo", "\u{f0000}", "\u{10fffd}", // C.3
    "Rom\ufdd0eo", "Rom\uffffeo", // C.4
    "Rom\ud800eo", // C.5 (a lone surrogate)
    "Rom\ufffdeo", // C.6
    "Rom\u2ff0eo", // C.7
    "Rom\u202eeo", "Rom\u206aeo", // C.8
    "Rom\u{e0001}eo", // C.9
    "Rom\u1680eo", // C.1.2 (OGHAM SPACE MARK has no compatibility decomposition)
  ]) {
    assert.equal(prepareNick(bad), null, JSON.stringify(bad));
  }
  // NFKC comes before the prohibition: most non-ASCII spaces become an ASCII space, which resourceprep allows.
  assert.equal(prepareNick("Rom\u3000eo"), "Rom eo");
  assert.equal(prepareNick("Rom\u00a0eo"), "Rom eo");
});

test("bidi: RandALCat with LCat, or not at both ends, is rejected; RTL-only nicks pass", () => {
  assert.equal(prepareNick("\u05d0a"), null); // Hebrew alef followed by a Latin letter
  assert.equal(prepareNick("a\u05d0"), null);
  assert.equal(prepareNick("\u05d01"), null); // RandALCat first but not last
  assert.equal(prepareNick("1\u05d0"), null);
  assert.equal(prepareNick("\u0627\u0031\u0628"), "\u0627\u0031\u0628"); // Arabic letters around a digit
  assert.equal(prepareNick("\u05e8\u05d5\u05de\u05d9\u05d0\u05d5"), "\u05e8\u05d5\u05de\u05d9\u05d0\u05d5"); // רומיאו
  assert.equal(prepareNick("\u05d0 \u05d1"), "\u05d0 \u05d1");
});

test("a prepared nick is at most 1023 bytes of UTF-8", () => {
  assert.equal(prepareNick("a".repeat(1023)), "a".repeat(1023));
  assert.equal(prepareNick("a".repeat(1024)), null);
  assert.equal(prepareNick("\u00e9".repeat(512)), null); // 1024 bytes
  assert.equal(prepareNick("\u00e9".repeat(511) + "a"), "\u00e9".repeat(511) + "a"); // 1023 bytes
  assert.equal(prepareNick("\u00ad".repeat(2000) + "Romeo"), "Romeo"); // the limit applies after mapping
});
