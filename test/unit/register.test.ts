import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";

const OWNER = "crone1@shakespeare.lit/desktop";
const HAG = "hag66@shakespeare.lit/pda";
const ROOM = "coven@chat.shakespeare.lit";

function covenWithMember(): RoomDriver {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", OWNER);
  muc.affiliate("coven", "hag66@shakespeare.lit", { affiliation: "member" });
  return muc;
}

const submit = (nick: string, from = HAG, id = "nv71va54") =>
  `<iq from='${from}' id='${id}' to='${ROOM}' type='set'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>${nick}</value></field></x></query></iq>`;

const errorOf = (condition: string, type: string) =>
  parseXml(`<iq type='error'><error type='${type}'><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);

test("§7.10: a member asking for registration requirements gets the muc#register form with a required nick", () => {
  const muc = covenWithMember();
  const [reply] = muc.send(example("0045", "User Requests Registration Requirements"));
  assertMatches(
    reply!,
    parseXml(`<iq from='${ROOM}' id='jw81b36f' to='${HAG}' type='result'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='form'>
      <field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>
      <field type='text-single' var='muc#register_roomnick' label='Nickname'><required/></field></x></query></iq>`),
  );
});

test("§7.10: registering reserves the nick (affiliation kept with the nick, stored and audited); a second get says registered", () => {
  const muc = covenWithMember();
  const [reply] = muc.send(example("0045", "User Submits Registration Form"));
  assertMatches(reply!, parseXml(`<iq type='result' id='nv71va54' to='${HAG}'/>`));
  assert.deepEqual(muc.room("coven")!.affiliations.get("hag66@shakespeare.lit"), { affiliation: "member", nick: "thirdwitch" });
  const write = muc.effects.find((e) => e.kind === "store");
  assert.deepEqual(write?.kind === "store" && write.write, { op: "affiliation.set", roomJid: ROOM, jid: "hag66@shakespeare.lit", entry: { affiliation: "member", nick: "thirdwitch" } });
  assert.ok(muc.effects.some((e) => e.kind === "audit" && e.record.kind === "affiliation.changed"));

  const [again] = muc.send(example("0045", "User Requests Registration Requirements"));
  assertMatches(again!, example("0045", "User Is Already Registered"));
});

test("§7.12: disco#info on x-roomuser-item returns the reserved nick, and nothing when there is none", () => {
  const muc = covenWithMember();
  muc.send(submit("thirdwitch"));
  const [reply] = muc.send(example("0045", "User Requests Reserved Nickname"));
  assertMatches(reply!, example("0045", "Room Returns Nickname"));
  const [none] = muc.send(`<iq from='${OWNER}' id='n2' to='${ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>`);
  assertMatches(none!, parseXml(`<iq type='result' id='n2'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>`));
  assert.equal(none!.getChild("query")!.children.length, 0);
  const [unknown] = muc.send(`<iq from='${OWNER}' id='n3' to='${ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info' node='nope'/></iq>`);
  assertMatches(unknown!, errorOf("item-not-found", "cancel"));
});

test("registering while in the room republishes the occupant's presence with its affiliation", () => {
  const muc = covenWithMember();
  muc.join("coven", "hag", HAG);
  const sent = muc.send(submit("thirdwitch"));
  const [self] = to(sent, HAG).filter((s) => s.name === "presence");
  assertMatches(self!, parseXml(`<presence from='${ROOM}/hag'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='${HAG}'/><status code='110'/></x></presence>`));
  assert.equal(to(sent, OWNER).filter((s) => s.name === "presence").length, 1);
});

test("unaffiliated users may not register (registration-required), outcasts are forbidden", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", OWNER);
  assertMatches(muc.send(example("0045", "User Requests Registration Requirements"))[0]!, errorOf("registration-required", "auth"));
  assertMatches(muc.send(submit("thirdwitch"))[0]!, errorOf("registration-required", "auth"));
  muc.affiliate("coven", "hag66@shakespeare.lit", { affiliation: "outcast" });
  assertMatches(muc.send(submit("thirdwitch"))[0]!, errorOf("forbidden", "auth"));
});

test("a nick reserved by someone else or used by another occupant cannot be registered (conflict)", () => {
  const muc = covenWithMember();
  muc.affiliate("coven", "wiccarocks@shakespeare.lit", { affiliation: "member", nick: "secondwitch" });
  assertMatches(muc.send(submit("secondwitch"))[0]!, errorOf("conflict", "cancel"));
  assertMatches(muc.send(submit("firstwitch"))[0]!, errorOf("conflict", "cancel"));
  assertMatches(muc.send(submit(""))[0]!, errorOf("bad-request", "modify"));
  const [wrongType] = muc.send(`<iq from='${HAG}' id='w' to='${ROOM}' type='set'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></query></iq>`);
  assertMatches(wrongType!, errorOf("bad-request", "modify"));
});

test("entering with someone else's reserved nick is a conflict; its owner may use it", () => {
  const muc = covenWithMember();
  muc.send(submit("thirdwitch"));
  const [refused] = muc.send(`<presence from='wiccarocks@shakespeare.lit/laptop' to='${ROOM}/thirdwitch'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assertMatches(refused!, parseXml(`<presence type='error' from='${ROOM}/thirdwitch'><error type='cancel' by='${ROOM}'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`));
  const entered = muc.join("coven", "thirdwitch", HAG);
  assert.ok(to(entered, HAG).some((s) => s.name === "presence" && s.attrs.type === undefined && s.attrs.from === `${ROOM}/thirdwitch`));
});

test("<remove/> deregisters: a member becomes unaffiliated and moderators get an affiliation notice", () => {
  const muc = covenWithMember();
  muc.send(submit("thirdwitch"));
  const sent = muc.send(`<iq from='${HAG}' id='unreg1' to='${ROOM}' type='set'><query xmlns='jabber:iq:register'><remove/></query></iq>`);
  assertMatches(to(sent, HAG)[0]!, parseXml(`<iq type='result' id='unreg1'/>`));
  assert.equal(muc.room("coven")!.affiliations.has("hag66@shakespeare.lit"), false);
  const [notice] = to(sent, OWNER);
  assertMatches(notice!, parseXml(`<message from='${ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><item jid='hag66@shakespeare.lit' affiliation='none'/></x></message>`));
  assert.equal(notice!.getChild("x")!.getChildElements().length, 1);
});

test("an owner who deregisters keeps the owner affiliation but loses the reserved nick", () => {
  const muc = covenWithMember();
  muc.send(submit("firstwitch", OWNER));
  assert.deepEqual(muc.room("coven")!.affiliations.get("crone1@shakespeare.lit"), { affiliation: "owner", nick: "firstwitch" });
  muc.send(`<iq from='${OWNER}' id='u' to='${ROOM}' type='set'><query xmlns='jabber:iq:register'><remove/></query></iq>`);
  assert.deepEqual(muc.room("coven")!.affiliations.get("crone1@shakespeare.lit"), { affiliation: "owner" });
});

test("deregistering from a members-only room removes the occupant with status 321", () => {
  const muc = covenWithMember();
  muc.join("coven", "hag", HAG);
  muc.configure("coven", OWNER, { "muc#roomconfig_membersonly": "1" });
  const sent = muc.send(`<iq from='${HAG}' id='u' to='${ROOM}' type='set'><query xmlns='jabber:iq:register'><remove/></query></iq>`);
  const gone = to(sent, HAG).find((s) => s.name === "presence");
  assertMatches(gone!, parseXml(`<presence type='unavailable' from='${ROOM}/hag'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='321'/></x></presence>`));
  assert.equal(muc.room("coven")!.occupants.has("hag"), false);
});
