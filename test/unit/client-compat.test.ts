// What real clients notice (issue 10, points 4 to 6): a presence without the MUC <x/> from a
// non-occupant is answered with a kick (XEP-0045 §7.2.1), presences are built as Prosody builds them
// (muc#user <x/> first; a nick change's unavailable carries nothing else), the room advertises
// urn:xmpp:sid:0, private messages carry the occupant-id, the entry presence's id is reflected, and
// <no-store/> or chat-state-only messages get no stanza-id and no history.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";

const DOMAIN = "chat.shakespeare.lit";
const ROOM = `coven@${DOMAIN}`;
const CRONE = "crone1@shakespeare.lit/desktop";
const HAG = "hag66@shakespeare.lit/pda";
const MUC_USER = "http://jabber.org/protocol/muc#user";

function coven(): RoomDriver {
  const driver = new RoomDriver(DOMAIN);
  driver.join("coven", "firstwitch", CRONE);
  return driver;
}

test("§7.2.1: a groupchat 1.0 join (no <x/>) from a non-occupant is answered with a kick: 110, 307, 333", () => {
  const driver = coven();
  const sent = driver.send(example("0045", "User Seeks to Enter a Room (groupchat 1.0)"));
  assert.equal(sent.length, 1, "nothing is broadcast: nobody entered");
  assertMatches(sent[0]!, example("0045", "Service Response to groupchat 1.0 join / non-occupant presence update"));
  assert.equal(driver.room("coven")!.occupants.has("thirdwitch"), false);
  assert.ok(driver.effects.every((e) => e.kind !== "store"));
});

test("§7.2.1: the same presence to a room that does not exist creates nothing", () => {
  const driver = new RoomDriver(DOMAIN);
  const [kick] = driver.send(example("0045", "User Seeks to Enter a Room (groupchat 1.0)"));
  assertMatches(kick!, parseXml(`<presence type='unavailable' from='${ROOM}/thirdwitch'><x xmlns='${MUC_USER}'><status code='110'/><status code='307'/><status code='333'/></x></presence>`));
  assert.equal(driver.room("coven"), undefined);
});

test("presences carry the muc#user <x/> first, before the payload relayed from the client (profanity reads the first)", () => {
  const driver = coven();
  const sent = driver.send(
    `<presence from='${HAG}' to='${ROOM}/thirdwitch'><x xmlns='http://jabber.org/protocol/muc'/><x xmlns='vcard-temp:x:update'><photo/></x></presence>`,
  );
  for (const presence of sent.filter((s) => s.name === "presence" && s.attrs.from === `${ROOM}/thirdwitch`)) {
    const first = presence.getChildElements()[0]!;
    assert.equal(first.name, "x");
    assert.equal(first.attrs.xmlns, MUC_USER, presence.toString());
    assert.ok(presence.getChild("x", "vcard-temp:x:update"), "the client's payload is relayed");
  }
});

test("§7.6: the unavailable presence of a nick change carries the muc#user <x/> only, as Prosody sends it", () => {
  const driver = coven();
  driver.send(`<presence from='${HAG}' to='${ROOM}/thirdwitch'><x xmlns='http://jabber.org/protocol/muc'/><x xmlns='vcard-temp:x:update'><photo/></x></presence>`);
  const sent = driver.send(`<presence from='${HAG}' to='${ROOM}/oldhag'><x xmlns='vcard-temp:x:update'><photo/></x></presence>`);
  const unavailable = to(sent, HAG).find((s) => s.attrs.type === "unavailable")!;
  // Shaped like XEP-0045's "Service Updates Nick" (example 50), to the occupant itself.
  assertMatches(
    unavailable,
    parseXml(`<presence from='${ROOM}/thirdwitch' type='unavailable'><x xmlns='${MUC_USER}'><item affiliation='none' jid='${HAG}' nick='oldhag' role='participant'/><status code='303'/><status code='110'/></x></presence>`),
  );
  assert.deepEqual(
    unavailable.getChildElements().filter((c) => c.name === "x").map((c) => c.attrs.xmlns),
    [MUC_USER],
  );
  const available = to(sent, HAG).find((s) => s.attrs.from === `${ROOM}/oldhag`)!;
  assert.equal(available.getChildElements()[0]!.attrs.xmlns, MUC_USER);
});

test("the self-presence reflects the id of the entry presence", () => {
  const driver = coven();
  const sent = driver.send(`<presence from='${HAG}' to='${ROOM}/thirdwitch' id='n13mt3l'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const self = to(sent, HAG).find((s) => s.attrs.from === `${ROOM}/thirdwitch`)!;
  assert.equal(self.attrs.id, "n13mt3l");
  const other = to(sent, CRONE).find((s) => s.attrs.from === `${ROOM}/thirdwitch`)!;
  assert.equal(other.attrs.id, undefined, "the others' copies do not carry the sender's id");
});

test("the room advertises urn:xmpp:sid:0, since it stamps stanza-ids", () => {
  const driver = coven();
  const [info] = driver.send(`<iq from='${HAG}' to='${ROOM}' id='d1' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
  const features = info!.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
  assert.ok(features.includes("urn:xmpp:sid:0"), features.join(" "));
});

test("XEP-0421 §4: a private message carries the sender's occupant-id, and a forged one is removed", () => {
  const driver = coven();
  driver.join("coven", "thirdwitch", HAG);
  const witch = driver.room("coven")!.occupants.get("thirdwitch")!;
  const [pm] = driver.send(
    `<message from='${HAG}' to='${ROOM}/firstwitch' type='chat' id='pm1'><body>I'll give thee a wind.</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>`,
  );
  const ids = pm!.getChildren("occupant-id", "urn:xmpp:occupant-id:0");
  assert.deepEqual(ids.map((i) => i.attrs.id), [witch.occupantId]);
});

test("<no-store/> and chat-state-only messages are relayed without stanza-id and kept out of history", () => {
  const driver = coven();
  driver.join("coven", "thirdwitch", HAG);
  for (const payload of [
    "<body>Fillet of a fenny snake</body><no-store xmlns='urn:xmpp:hints'/>",
    "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
  ]) {
    const sent = driver.send(`<message from='${HAG}' to='${ROOM}' type='groupchat'>${payload}</message>`);
    assert.equal(sent.length, 2, "relayed to both occupants");
    for (const message of sent) assert.equal(message.getChild("stanza-id", "urn:xmpp:sid:0"), undefined, message.toString());
    assert.ok(driver.effects.every((e) => e.kind !== "store"), "nothing stored");
  }
  assert.equal(driver.room("coven")!.history.length, 0);
  const kept = driver.send(`<message from='${HAG}' to='${ROOM}' type='groupchat'><body>In the cauldron boil and bake</body></message>`);
  assert.ok(kept[0]!.getChild("stanza-id", "urn:xmpp:sid:0"));
  assert.equal(driver.room("coven")!.history.length, 1);
});
