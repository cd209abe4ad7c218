// The room engine's core flows, driven with stanzas shaped like XEP-0045's examples.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MucService, emptyServiceState } from "../../src/core/service.js";
import { createPlugins } from "../../plugins/index.js";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";

const ROMEO = "romeo@montague.lit/orchard";
const JULIET = "juliet@capulet.lit/balcony";
const ROOM = "coven@chat.shakespeare.lit";

function muc(): RoomDriver {
  const driver = new RoomDriver();
  driver.join("coven", "romeo", ROMEO);
  return driver;
}

test("§7.2 / §10.1: the first occupant creates a locked room and is its owner", () => {
  const driver = new RoomDriver();
  const [self, subject] = driver.send(`<presence from='${ROMEO}' to='${ROOM}/romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assertMatches(
    self!,
    parseXml(`<presence from='${ROOM}/romeo' to='${ROMEO}'><x xmlns='http://jabber.org/protocol/muc#user'>
      <item affiliation='owner' role='moderator' jid='${ROMEO}'/><status code='110'/><status code='201'/></x></presence>`),
  );
  assertMatches(subject!, parseXml(`<message type='groupchat' from='${ROOM}' to='${ROMEO}'><subject/></message>`));
  const [refused] = driver.send(`<presence from='${JULIET}' to='${ROOM}/juliet'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assertMatches(refused!, parseXml(`<presence type='error' from='${ROOM}/juliet'><error type='cancel' by='${ROOM}'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`));
  assert.ok(driver.effects.every((e) => e.kind !== "store"), "a refused entry stores nothing");
});

test("§7.2.3: a new occupant gets the others' presence, its own with 110, then the subject; the others see it", () => {
  const driver = muc();
  const sent = driver.send(`<presence from='${JULIET}' to='${ROOM}/juliet'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const forJuliet = to(sent, JULIET);
  assert.deepEqual(forJuliet.map((s) => `${s.name} ${s.attrs.from}`), [`presence ${ROOM}/romeo`, `presence ${ROOM}/juliet`, `message ${ROOM}`]);
  // Semi-anonymous room: Juliet, a participant, does not see Romeo's real JID; Romeo, a moderator, sees hers.
  assert.equal(forJuliet[0]!.getChild("x", "http://jabber.org/protocol/muc#user")!.getChild("item")!.attrs.jid, undefined);
  const [forRomeo] = to(sent, ROMEO);
  assertMatches(forRomeo!, parseXml(`<presence from='${ROOM}/juliet'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='${JULIET}'/></x></presence>`));
  assert.ok(forRomeo!.getChild("occupant-id", "urn:xmpp:occupant-id:0")?.attrs.id, "XEP-0421 occupant-id on presence");
});

test("§7.2.9 / §7.2.4: a nick in use is a conflict, and no nick is jid-malformed", () => {
  const driver = muc();
  const [conflict] = driver.send(`<presence from='${JULIET}' to='${ROOM}/romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assertMatches(conflict!, parseXml(`<presence type='error'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`));
  const [noNick] = driver.send(`<presence from='${JULIET}' to='${ROOM}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assertMatches(noNick!, parseXml(`<presence type='error'><error type='modify'><jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`));
});

test("§7.4: a groupchat message is stored, stamped with stanza-id and occupant-id, and reaches everyone", () => {
  const driver = muc();
  driver.join("coven", "juliet", JULIET);
  const sent = driver.send(
    `<message from='${JULIET}' to='${ROOM}' type='groupchat' id='m1'><body>Harpier cries</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='forged'/></message>`,
  );
  assert.equal(sent.length, 2);
  for (const message of sent) {
    assertMatches(message, parseXml(`<message type='groupchat' from='${ROOM}/juliet' id='m1'><body>Harpier cries</body></message>`));
    const ids = message.getChildren("stanza-id", "urn:xmpp:sid:0");
    assert.equal(ids.length, 1, "the forged stanza-id is removed");
    assert.equal(ids[0]!.attrs.by, ROOM);
    assert.notEqual(ids[0]!.attrs.id, "forged");
  }
  const stored = driver.effects.filter((e) => e.kind === "store");
  assert.equal(stored.length, 1);
  assert.equal(stored[0]!.kind === "store" && stored[0]!.write.op, "history.append");
  const index = (kind: string) => driver.effects.findIndex((e) => e.kind === kind);
  assert.ok(index("store") < index("send"), "the write comes before the broadcast");
});

test("§7.4: someone not in the room cannot send to it", () => {
  const driver = muc();
  const [error] = driver.send(`<message from='${JULIET}' to='${ROOM}' type='groupchat'><body>hi</body></message>`);
  assertMatches(error!, parseXml(`<message type='error'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
});

test("§7.2.15: history is sent on entering with a delay stamped by the room, limited by maxstanzas", () => {
  const driver = muc();
  for (const text of ["one", "two", "three"]) driver.send(`<message from='${ROMEO}' to='${ROOM}' type='groupchat'><body>${text}</body></message>`);
  const sent = driver.send(`<presence from='${JULIET}' to='${ROOM}/juliet'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='2'/></x></presence>`);
  const history = to(sent, JULIET).filter((s) => s.name === "message" && s.getChild("body"));
  assert.deepEqual(history.map((m) => m.getChildText("body")), ["two", "three"]);
  assertMatches(history[0]!, parseXml(`<message type='groupchat' from='${ROOM}/romeo'><delay xmlns='urn:xmpp:delay' from='${ROOM}'/></message>`));
});

test("§7.6: a nick change is announced with 303 and the new nick, then the new presence", () => {
  const driver = muc();
  driver.join("coven", "juliet", JULIET);
  const sent = to(driver.send(`<presence from='${JULIET}' to='${ROOM}/jules'/>`), ROMEO);
  assertMatches(sent[0]!, parseXml(`<presence type='unavailable' from='${ROOM}/juliet'><x xmlns='http://jabber.org/protocol/muc#user'><item nick='jules'/><status code='303'/></x></presence>`));
  assertMatches(sent[1]!, parseXml(`<presence from='${ROOM}/jules'/>`));
  assert.ok(driver.room("coven")!.occupants.has("jules"));
});

test("§7.14 / §10.9: leaving broadcasts unavailable; a temporary room ends with its last occupant", () => {
  const driver = muc();
  const [gone] = driver.send(`<presence from='${ROMEO}' to='${ROOM}/romeo' type='unavailable'><status>bye</status></presence>`);
  assertMatches(gone!, parseXml(`<presence type='unavailable' from='${ROOM}/romeo'><status>bye</status><x xmlns='http://jabber.org/protocol/muc#user'><item role='none'/><status code='110'/></x></presence>`));
  assert.equal(driver.room("coven"), undefined);
  assert.ok(driver.effects.some((e) => e.kind === "store" && e.write.op === "room.delete"));
});

test("§7.5: private messages go between occupants only, marked as MUC private messages", () => {
  const driver = muc();
  driver.join("coven", "juliet", JULIET);
  const [pm] = driver.send(`<message from='${JULIET}' to='${ROOM}/romeo' type='chat'><body>psst</body></message>`);
  assertMatches(pm!, parseXml(`<message type='chat' from='${ROOM}/juliet' to='${ROMEO}'><body>psst</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`));
  const [missing] = driver.send(`<message from='${JULIET}' to='${ROOM}/nobody' type='chat'><body>psst</body></message>`);
  assertMatches(missing!, parseXml(`<message type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
});

test("limits: an oversized body and a flood from one occupant get policy-violation", () => {
  const service = new MucService({ domain: "chat.shakespeare.lit", admins: new Set(), name: "t" }, createPlugins({ maxHistoryMessages: 10, maxBodyChars: 5, ratePerSecond: 1, burst: 3 }));
  let state = emptyServiceState();
  let n = 0;
  const at = (ms: number) => ({ now: new Date(1_000_000 + ms), newId: () => `id${++n}` });
  const run = (xml: string, ms: number) => {
    const outcome = service.handle(state, parseXml(xml), at(ms));
    state = outcome.state;
    return outcome.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  };
  run(`<presence from='${ROMEO}' to='${ROOM}/romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>`, 0);
  const long = run(`<message from='${ROMEO}' to='${ROOM}' type='groupchat'><body>too long</body></message>`, 0);
  assertMatches(long[0]!, parseXml(`<message type='error'><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
  const results = [0, 0, 0, 0].map(() => run(`<message from='${ROMEO}' to='${ROOM}' type='groupchat'><body>hi</body></message>`, 10));
  // A refused stanza changes no state, so the oversized one took no token: three fit the burst of 3.
  assert.deepEqual(results.map((r) => r[0]!.attrs.type), ["groupchat", "groupchat", "groupchat", "error"]);
  assertMatches(results[3]![0]!, parseXml(`<message type='error'><error type='wait'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
  const later = run(`<message from='${ROMEO}' to='${ROOM}' type='groupchat'><body>hi</body></message>`, 1100);
  assert.equal(later[0]!.attrs.type, "groupchat", "the bucket refills with time");
});

test("§7.5: an IQ to an occupant is forwarded from the sender's room JID, and the answer comes back", () => {
  const driver = muc();
  driver.join("coven", "juliet", JULIET);
  const [forwarded] = driver.send(`<iq from='${JULIET}' to='${ROOM}/romeo' id='v1' type='get'><vCard xmlns='vcard-temp'/></iq>`);
  assertMatches(forwarded!, parseXml(`<iq type='get' from='${ROOM}/juliet' to='${ROMEO}'><vCard xmlns='vcard-temp'/></iq>`));
  assert.notEqual(forwarded!.attrs.id, "v1");
  const [answer] = driver.send(`<iq from='${ROMEO}' to='${ROOM}/juliet' id='${forwarded!.attrs.id}' type='result'><vCard xmlns='vcard-temp'><FN>Romeo</FN></vCard></iq>`);
  assertMatches(answer!, parseXml(`<iq type='result' id='v1' from='${ROOM}/romeo' to='${JULIET}'><vCard xmlns='vcard-temp'><FN>Romeo</FN></vCard></iq>`));
  // An answer from anyone but the session asked is dropped; so is a non-occupant's query refused.
  assert.deepEqual(driver.send(`<iq from='${JULIET}' to='${ROOM}/juliet' id='${forwarded!.attrs.id}' type='result'/>`), []);
  const [refused] = driver.send(`<iq from='nobody@x.lit/r' to='${ROOM}/romeo' id='v2' type='get'><vCard xmlns='vcard-temp'/></iq>`);
  assertMatches(refused!, parseXml(`<iq type='error' id='v2'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
});

test("§7.13 / §8.6: a visitor's voice request reaches the moderators, and an approval grants voice", () => {
  const driver = muc();
  driver.configure("coven", ROMEO, { "muc#roomconfig_moderatedroom": "1" });
  driver.join("coven", "hag", JULIET);
  assert.equal(driver.room("coven")!.occupants.get("hag")!.role, "visitor");
  const voiceRequest = example("0045", "Occupant Requests Voice").getChild("x")!;
  const [approval] = driver.send(`<message from='${JULIET}' to='${ROOM}'>${voiceRequest.toString()}</message>`);
  assertMatches(approval!, parseXml(`<message from='${ROOM}' to='${ROMEO}'><x xmlns='jabber:x:data' type='form'>
    <field var='muc#role'><value>participant</value></field><field var='muc#jid'><value>${JULIET}</value></field>
    <field var='muc#roomnick'><value>hag</value></field><field var='muc#request_allow'><value>false</value></field></x></message>`));
  const submission = example("0045", "Voice Request Approval Submission").getChild("x")!;
  for (const field of submission.getChildren("field")) {
    if (field.attrs.var === "muc#roomnick") field.getChild("value")!.children = ["hag"];
    if (field.attrs.var === "muc#jid") field.getChild("value")!.children = [JULIET];
  }
  const granted = driver.send(`<message from='${ROMEO}' to='${ROOM}'>${submission.toString()}</message>`);
  assert.equal(driver.room("coven")!.occupants.get("hag")!.role, "participant");
  assert.ok(granted.some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/hag`));
  // A participant cannot approve requests.
  const [refused] = driver.send(`<message from='${JULIET}' to='${ROOM}'>${submission.toString()}</message>`);
  assertMatches(refused!, parseXml(`<message type='error'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
});
