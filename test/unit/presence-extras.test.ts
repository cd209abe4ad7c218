// XEP-0410 self-ping, presence probes (Prosody #1535), the resync join (#667 scenario) and
// subject changes versus messages carrying a subject.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";

const CRONE = "crone1@shakespeare.lit/desktop";
const HAG = "hag66@shakespeare.lit/pda";
const ROOM = "coven@chat.shakespeare.lit";
const err = (name: string, condition: string, type = "cancel") =>
  parseXml(`<${name} type='error'><error type='${type}'><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></${name}>`);
const ping = (from: string, nick: string) => `<iq from='${from}' to='${ROOM}/${nick}' id='p' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`;

test("XEP-0410: a self-ping from the occupant's session is answered by the room; others get errors", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  assertMatches(muc.send(ping(CRONE, "firstwitch"))[0]!, parseXml(`<iq type='result' id='p' from='${ROOM}/firstwitch' to='${CRONE}'/>`));
  assertMatches(muc.send(ping(HAG, "firstwitch"))[0]!, err("iq", "not-acceptable"));
  assertMatches(muc.send(ping(CRONE, "nobody"))[0]!, err("iq", "item-not-found"));
  muc.join("coven", "thirdwitch", HAG);
  assertMatches(muc.send(ping(HAG, "firstwitch"))[0]!, err("iq", "service-unavailable"));
});

test("presence probes: occupants get the current presence, or unavailable for a reserved nick; others not-acceptable", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  const probe = (from: string, nick: string) => muc.send(`<presence from='${from}' to='${ROOM}/${nick}' type='probe'/>`);
  assertMatches(probe(HAG, "firstwitch")[0]!, err("presence", "not-acceptable"));
  muc.join("coven", "thirdwitch", HAG);
  const [current] = probe(CRONE, "thirdwitch");
  assertMatches(current!, parseXml(`<presence from='${ROOM}/thirdwitch' to='${CRONE}'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='${HAG}'/></x></presence>`));
  assert.deepEqual(probe(CRONE, "nobody"), []);
  muc.affiliate("coven", "wiccarocks@shakespeare.lit", { affiliation: "member", nick: "secondwitch" });
  assertMatches(
    probe(CRONE, "secondwitch")[0]!,
    parseXml(`<presence type='unavailable' from='${ROOM}/secondwitch'><x xmlns='http://jabber.org/protocol/muc#user'><item nick='secondwitch' affiliation='member' role='none' jid='wiccarocks@shakespeare.lit'/></x></presence>`),
  );
  // A participant in a semi-anonymous room does not learn the real JID.
  const [hidden] = probe(HAG, "secondwitch");
  assert.equal(hidden!.getChild("x")!.getChild("item")!.attrs.jid, undefined);
});

test("a message with a subject and a body is a message, not a subject change (#667); a resync join replays history and subject", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  muc.send(`<message from='${CRONE}' to='${ROOM}' type='groupchat'><subject>Greetings</subject><body>Hello</body></message>`);
  assert.equal(muc.room("coven")!.subject, null);
  muc.send(`<message from='${CRONE}' to='${ROOM}' type='groupchat'><subject>Cauldrons</subject></message>`);
  assert.equal(muc.room("coven")!.subject?.text, "Cauldrons");

  const resync = to(muc.send(`<presence from='${CRONE}' to='${ROOM}/firstwitch'><x xmlns='http://jabber.org/protocol/muc'/></presence>`), CRONE);
  assert.deepEqual(resync.map((s) => s.name), ["presence", "message", "message"]);
  assertMatches(resync[1]!, parseXml(`<message type='groupchat' from='${ROOM}/firstwitch'><subject>Greetings</subject><body>Hello</body></message>`));
  assertMatches(resync[2]!, parseXml(`<message type='groupchat' from='${ROOM}/firstwitch'><subject>Cauldrons</subject></message>`));
  // A plain presence update is not a resync.
  const update = to(muc.send(`<presence from='${CRONE}' to='${ROOM}/firstwitch'><show>away</show></presence>`), CRONE);
  assert.deepEqual(update.map((s) => s.name), ["presence"]);
});
