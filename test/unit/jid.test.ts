import { test } from "node:test";
import assert from "node:assert/strict";
import { bareString, jidToString, parseBareJid, parseJid } from "../../src/xmpp/jid.js";

test("JIDs parse into parts, with local and domain case-folded and the resource kept", () => {
  assert.deepEqual(parseJid("Romeo@Montague.LIT/Orchard"), { local: "romeo", domain: "montague.lit", resource: "Orchard" });
  assert.deepEqual(parseJid("conference.example.org"), { local: null, domain: "conference.example.org", resource: null });
  assert.deepEqual(parseJid("room@muc.example.org/nick/with/slashes"), { local: "room", domain: "muc.example.org", resource: "nick/with/slashes" });
  assert.equal(jidToString(parseJid("a@b.c/d")!), "a@b.c/d");
  assert.equal(bareString(parseJid("a@b.c/d")!), "a@b.c");
});

test("malformed JIDs are rejected", () => {
  for (const bad of ["", "@example.org", "user@", "a@b@c", "user@exa mple.org", "room@muc.example.org/", "us\u0000er@x.org", "a<b@x.org", "x..y"]) {
    assert.equal(parseJid(bad), null, bad);
  }
  assert.equal(parseJid("a".repeat(1024) + "@x.org"), null);
});

test("bare JIDs need a local part and no resource", () => {
  assert.ok(parseBareJid("admin@example.org"));
  assert.equal(parseBareJid("example.org"), null);
  assert.equal(parseBareJid("admin@example.org/res"), null);
});
