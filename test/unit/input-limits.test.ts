// Input limits at the edge (issue 15 points 2 and 3, issue 16 points 3 and 6), on the pure service with
// the XEP-0045 examples' people: every refusal is the right XMPP error, changes no state and stores
// nothing; what passes can always be serialised.
import assert from "node:assert/strict";
import { test } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import { RoomDriver } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";
import { codePoints, measureStanza } from "../../plugins/input-limits.js";

const DOMAIN = "chat.shakespeare.lit";
const ROOM = `coven@${DOMAIN}`;
const CROONE = "crone1@shakespeare.lit/desktop";
const WITCH = "wiccarocks@shakespeare.lit/laptop";
const HAG = "hag66@shakespeare.lit/pda";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

function condition(el: Element | undefined): { type?: string; condition?: string; by?: string } {
  const error = el?.getChild("error");
  return { type: error?.attrs.type, condition: error?.getChildElements().find((c) => c.attrs.xmlns === STANZAS)?.name, by: error?.attrs.by };
}

/** An element nested `levels` deep: <x><x>...</x></x>. */
function nested(levels: number): Element {
  const root = xml("x", { xmlns: "urn:example:deep" });
  let current = root;
  for (let i = 1; i < levels; i++) {
    const child = xml("x");
    current.append(child);
    current = child;
  }
  return root;
}

/** A room with crone1 (owner) and wiccarocks, at the limits given. */
function coven(plugins: ConstructorParameters<typeof RoomDriver>[3] = {}): RoomDriver {
  const driver = new RoomDriver(DOMAIN, [], {}, { maxBodyChars: 100, input: { maxSubjectChars: 50, maxStanzaBytes: 4096, maxDepth: 32, maxChildren: 40 }, ...plugins });
  driver.join("coven", "firstwitch", CROONE);
  driver.join("coven", "secondwitch", WITCH);
  return driver;
}

const storeWrites = (driver: RoomDriver) => driver.effects.filter((e) => e.kind === "store");

function groupchat(...children: Element[]): Element {
  return xml("message", { from: WITCH, to: ROOM, type: "groupchat", id: "m1" }, ...children);
}

test("measureStanza walks thousands of levels without recursion, and stops early", () => {
  assert.equal(measureStanza(nested(20_000)).depth, 20_000);
  assert.equal(measureStanza(nested(20_000), { depth: 10 }).depth, 11);
  assert.equal(measureStanza(parseXml("<message><body>hi</body><body xml:lang='de'>hallo</body></message>")).children, 2);
  assert.equal(codePoints("😀😀é"), 3);
  assert.equal(codePoints("\ud83d"), 1, "a lone surrogate is one code point");
});

test("§7.2: an entry presence nested 9,000 levels deep is refused with policy-violation; nobody enters, nothing is stored", () => {
  const driver = coven();
  const entry = xml("presence", { from: HAG, to: `${ROOM}/thirdwitch` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" }), nested(9000));
  const sent = driver.send(entry);
  assert.equal(sent.length, 1, sent.map(String).join("\n"));
  assertMatches(sent[0]!, parseXml(`<presence type='error' from='${ROOM}/thirdwitch' to='${HAG}'><error type='modify'><policy-violation xmlns='${STANZAS}'/></error></presence>`));
  assert.equal(condition(sent[0]).by, ROOM);
  assert.equal(driver.room("coven")!.occupants.has("thirdwitch"), false);
  assert.deepEqual(storeWrites(driver), []);
});

test("a presence update nested too deep leaves the occupant's presence as it was", () => {
  const driver = coven();
  const before = driver.room("coven")!.occupants.get("secondwitch")!;
  const sent = driver.send(xml("presence", { from: WITCH, to: `${ROOM}/secondwitch` }, xml("show", {}, "away"), nested(100)));
  assert.deepEqual(condition(sent[0]), { type: "modify", condition: "policy-violation", by: ROOM });
  assert.equal(driver.room("coven")!.occupants.get("secondwitch"), before);
});

test("a groupchat message nested 15,000 levels deep gets policy-violation, not internal-server-error", () => {
  const driver = coven();
  const sent = driver.send(groupchat(xml("body", {}, "hi"), nested(15_000)));
  assert.equal(sent.length, 1);
  assert.deepEqual(condition(sent[0]), { type: "modify", condition: "policy-violation", by: ROOM });
  assert.deepEqual(storeWrites(driver), []);
});

test("an IQ to the service nested too deep gets policy-violation; an error stanza is never answered", () => {
  const driver = coven();
  const [reply] = driver.send(xml("iq", { from: HAG, to: DOMAIN, type: "get", id: "d1" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }, nested(40))));
  assert.deepEqual(condition(reply), { type: "modify", condition: "policy-violation", by: DOMAIN });
  assert.deepEqual(driver.send(xml("message", { from: HAG, to: ROOM, type: "error" }, nested(40))), []);
});

test("RFC 6121 §5.2.3: bodies count together, in code points, whatever their namespace", () => {
  const driver = coven();
  // 30 bodies in 30 languages, each under the limit, together over it.
  const many = Array.from({ length: 30 }, (_, i) => xml("body", { "xml:lang": `x-l${i}` }, "a".repeat(10)));
  assert.deepEqual(condition(driver.send(groupchat(...many))[0]), { type: "modify", condition: "policy-violation", by: ROOM });
  // A short first body, then a long one.
  const shortThenLong = driver.send(groupchat(xml("body", {}, "hi"), xml("body", { "xml:lang": "de" }, "b".repeat(99))));
  assert.equal(condition(shortThenLong[0]).condition, "policy-violation");
  // A body in another namespace first.
  const foreignFirst = driver.send(groupchat(xml("body", { xmlns: "urn:example:other" }, "x"), xml("body", {}, "c".repeat(100))));
  assert.equal(condition(foreignFirst[0]).condition, "policy-violation");
  assert.deepEqual(storeWrites(driver), []);
  // 100 emoji are 100 characters (200 UTF-16 units): accepted at a limit of 100; 101 are not.
  const emoji = driver.send(groupchat(xml("body", {}, "😀".repeat(100))));
  assert.equal(emoji[0]!.attrs.type, "groupchat", emoji[0]!.toString());
  assert.equal(condition(driver.send(groupchat(xml("body", {}, "😀".repeat(101))))[0]).condition, "policy-violation");
});

test("RFC 6121 §5.2.3: two bodies in one language get not-acceptable; one per language passes", () => {
  const driver = coven();
  const twice = driver.send(groupchat(xml("body", {}, "one"), xml("body", {}, "two")));
  assert.deepEqual(condition(twice[0]), { type: "modify", condition: "not-acceptable", by: ROOM });
  const sameLang = driver.send(xml("message", { from: WITCH, to: ROOM, type: "groupchat", "xml:lang": "en" }, xml("body", {}, "one"), xml("body", { "xml:lang": "en" }, "two")));
  assert.equal(condition(sameLang[0]).condition, "not-acceptable");
  const two = driver.send(groupchat(xml("body", {}, "Thrice the brinded cat hath mew'd."), xml("body", { "xml:lang": "de" }, "Dreimal hat die Katze miaut.")));
  assert.equal(two[0]!.attrs.type, "groupchat");
});

test("§8.1: a subject over the limit gets policy-violation and the subject stays", () => {
  const driver = coven();
  const sent = driver.send(xml("message", { from: CROONE, to: ROOM, type: "groupchat" }, xml("subject", {}, "s".repeat(51))));
  assert.deepEqual(condition(sent[0]), { type: "modify", condition: "policy-violation", by: ROOM });
  assert.equal(driver.room("coven")!.subject?.text ?? "", "");
  const ok = driver.send(xml("message", { from: CROONE, to: ROOM, type: "groupchat" }, xml("subject", {}, "Fire Burn and Cauldron Bubble!")));
  assert.equal(ok[0]!.attrs.type, "groupchat");
  assert.equal(driver.room("coven")!.subject?.text, "Fire Burn and Cauldron Bubble!");
});

test("too many children, or too many bytes, get policy-violation", () => {
  const driver = coven();
  const wide = driver.send(groupchat(xml("body", {}, "hi"), xml("x", { xmlns: "urn:example:wide" }, ...Array.from({ length: 41 }, () => xml("y")))));
  assert.deepEqual(condition(wide[0]), { type: "modify", condition: "policy-violation", by: ROOM });
  const big = driver.send(groupchat(xml("body", {}, "hi"), xml("x", { xmlns: "urn:example:big" }, "z".repeat(5000))));
  assert.deepEqual(condition(big[0]), { type: "modify", condition: "policy-violation", by: ROOM });
  const entry = driver.send(xml("presence", { from: HAG, to: `${ROOM}/thirdwitch` }, xml("status", {}, "é".repeat(2100))));
  assert.equal(condition(entry[0]).condition, "policy-violation", "bytes of UTF-8, not characters");
  assert.equal(driver.room("coven")!.occupants.has("thirdwitch"), false);
});

test("XEP-0004 §3.3: a boolean field with two values is refused with not-acceptable and changes nothing", () => {
  const driver = coven();
  const before = driver.room("coven")!.config;
  const [reply] = driver.send(
    `<iq from='${CROONE}' to='${ROOM}' id='cfg' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
      `<field var='muc#roomconfig_persistentroom'><value>1</value><value>0</value></field></x></query></iq>`,
  );
  assert.deepEqual(condition(reply), { type: "modify", condition: "not-acceptable", by: undefined });
  assert.equal(driver.room("coven")!.config, before);
  const [list] = driver.send(
    `<iq from='${CROONE}' to='${ROOM}' id='cfg2' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='muc#roomconfig_whois'><value>anyone</value><value>moderators</value></field></x></query></iq>`,
  );
  assert.equal(condition(list).condition, "not-acceptable");
});

test("DMUC_RATE_LIMIT is per user: five sessions share one bucket, and leaving does not refill it", () => {
  const driver = coven({ ratePerSecond: 1, burst: 5 });
  const sessions = [1, 2, 3, 4, 5].map((i) => `hag66@shakespeare.lit/s${i}`);
  sessions.forEach((s, i) => driver.send(`<presence from='${s}' to='${ROOM}/hag${i}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`));
  const say = (from: string) => driver.send(xml("message", { from, to: ROOM, type: "groupchat" }, xml("body", {}, "hi"))).find((s) => s.attrs.to === from);
  const answers = sessions.flatMap((s) => [say(s), say(s)]).map((s) => s?.attrs.type);
  assert.deepEqual(answers, ["groupchat", "groupchat", "groupchat", "groupchat", "groupchat", "error", "error", "error", "error", "error"]);
  // Everyone leaves and comes back at once: the bucket is still empty.
  sessions.forEach((s) => driver.send(`<presence from='${s}' to='${ROOM}/x' type='unavailable'/>`));
  driver.send(`<presence from='${sessions[0]}' to='${ROOM}/hag0'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assert.deepEqual(condition(say(sessions[0]!)), { type: "wait", condition: "policy-violation", by: ROOM });
  driver.now = new Date(driver.now.getTime() + 1000);
  assert.equal(say(sessions[0]!)?.attrs.type, "groupchat", "the bucket refills with time");
});

test("DMUC2 control traffic carries whole histories: a <state/> wider and bigger than a client's limits is taken", () => {
  const ROOM2 = "wallops@channel.avalon.test";
  const REPLICA = "dmuc.oulubox.test";
  const DMUC = "urn:xmpp:tmp:dmuc:0";
  const d = new RoomDriver(REPLICA, [], { localDomain: "oulubox.test" }, { maxBodyChars: 100, input: { maxStanzaBytes: 4096, maxChildren: 40 } });
  const asked = d.send(`<iq type='set' id='r1' from='${ROOM2}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='60' history='50'/></iq>`);
  // The replica first asks its server module whether one of its users is in the room.
  const check = asked.find((s) => s.getChild("directed", DMUC));
  assert.ok(check, "the replica asks the server module before it replicates");
  d.send(`<iq type='result' id='${check.attrs.id}' from='oulubox.test' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  const messages = Array.from(
    { length: 60 },
    (_, i) => `<message from='${ROOM2}/Wumpus' type='groupchat'><body>${"w".repeat(90)} ${i}</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM2}' id='s${i}'/></message>`,
  );
  const [answer] = d.send(`<iq type='set' id='s1' from='${ROOM2}' to='${REPLICA}'><state xmlns='${DMUC}' last='true'><config whois='moderators'/>${messages.join("")}</state></iq>`);
  assert.equal(answer?.attrs.type, "result", answer?.toString());
  assert.equal(d.state.dmuc.replicated.get(ROOM2)?.history.length, 50);
  // Nested deeper than its wrapping allows, it is refused like anything else.
  const [deep] = d.send(xml("iq", { type: "set", id: "s2", from: ROOM2, to: REPLICA }, xml("state", { xmlns: DMUC, last: "true" }, nested(40))));
  assert.deepEqual(condition(deep), { type: "modify", condition: "policy-violation", by: REPLICA });
});
