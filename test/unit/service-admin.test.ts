import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";

const ADMIN = "admin@shakespeare.lit/console";
const CRONE = "crone1@shakespeare.lit/desktop";
const DOMAIN = "chat.shakespeare.lit";
const NODE = "http://prosody.im/protocol/muc#destroy";

const command = (from: string, inner = "", attrs = "") =>
  `<iq from='${from}' to='${DOMAIN}' id='c1' type='set'><command xmlns='http://jabber.org/protocol/commands' node='${NODE}' ${attrs}>${inner}</command></iq>`;

test("XEP-0050: an admin executes the destroy command, gets a form, submits it, and the room is destroyed", () => {
  const muc = new RoomDriver(DOMAIN, ["admin@shakespeare.lit"]);
  muc.join("coven", "firstwitch", CRONE);
  const [form] = muc.send(command(ADMIN, "", "action='execute'"));
  assertMatches(form!, parseXml(`<iq type='result' id='c1'><command xmlns='http://jabber.org/protocol/commands' node='${NODE}' status='executing'><x xmlns='jabber:x:data' type='form'><field var='rooms' type='list-multi'><option><value>coven@${DOMAIN}</value></option></field></x></command></iq>`));
  const sessionid = form!.getChild("command")!.attrs.sessionid;
  assert.ok(sessionid);

  // Prosody's clients submit the form without a type attribute.
  const sent = muc.send(command(ADMIN, `<x xmlns='jabber:x:data'><field var='rooms'><value>coven@${DOMAIN}</value></field></x>`, `sessionid='${sessionid}'`));
  assertMatches(to(sent, CRONE)[0]!, parseXml(`<presence type='unavailable' from='coven@${DOMAIN}/firstwitch'><x xmlns='http://jabber.org/protocol/muc#user'><destroy/><item affiliation='owner' role='none'/><status code='110'/></x></presence>`));
  assertMatches(
    to(sent, ADMIN)[0]!,
    parseXml(`<iq type='result' id='c1'><command xmlns='http://jabber.org/protocol/commands' node='${NODE}' status='completed' sessionid='${sessionid}'><note type='info'>The following rooms were destroyed:\ncoven@${DOMAIN}</note></command></iq>`),
  );
  assert.equal(muc.room("coven"), undefined);
  assert.ok(muc.effects.some((e) => e.kind === "store" && e.write.op === "room.delete"));
});

test("XEP-0050: non-admins are forbidden, unknown nodes are item-not-found, cancel ends the command", () => {
  const muc = new RoomDriver(DOMAIN, ["admin@shakespeare.lit"]);
  muc.join("coven", "firstwitch", CRONE);
  assertMatches(muc.send(command(CRONE))[0]!, parseXml(`<iq type='error'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  assert.ok(muc.room("coven"));
  const [unknown] = muc.send(command(ADMIN).replace(NODE, "urn:nope"));
  assertMatches(unknown!, parseXml(`<iq type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  const [canceled] = muc.send(command(ADMIN, "", "sessionid='s1' action='cancel'"));
  assertMatches(canceled!, parseXml(`<iq type='result'><command xmlns='http://jabber.org/protocol/commands' status='canceled' sessionid='s1'/></iq>`));
});

test("service admins are owners of every room (XEP-0045 §5.2)", () => {
  const muc = new RoomDriver(DOMAIN, ["admin@shakespeare.lit"]);
  muc.join("coven", "firstwitch", CRONE);
  const [form] = muc.send(`<iq from='${ADMIN}' to='coven@${DOMAIN}' id='o' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`);
  assert.equal(form!.attrs.type, "result");
  const entered = muc.join("coven", "admin", ADMIN);
  assertMatches(to(entered, ADMIN).find((s) => s.attrs.from === `coven@${DOMAIN}/admin`)!, parseXml(`<presence><x xmlns='http://jabber.org/protocol/muc#user'><item role='moderator'/></x></presence>`));
});

test("disco#items lists public, configured rooms with names, and the commands node for admins only", () => {
  const muc = new RoomDriver(DOMAIN, ["admin@shakespeare.lit"]);
  muc.join("coven", "firstwitch", CRONE);
  muc.configure("coven", CRONE, { "muc#roomconfig_roomname": "A Dark Cave", "muc#roomconfig_publicroom": "1" });
  muc.join("hidden", "firstwitch", CRONE);
  muc.configure("hidden", CRONE, { "muc#roomconfig_publicroom": "0" });
  muc.send(`<presence from='${CRONE}' to='locked@${DOMAIN}/firstwitch'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const [items] = muc.send(`<iq from='${CRONE}' to='${DOMAIN}' id='d' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`);
  const listed = items!.getChild("query")!.getChildren("item").map((i) => [i.attrs.jid, i.attrs.name]);
  assert.deepEqual(listed, [[`coven@${DOMAIN}`, "A Dark Cave"]]);

  const commands = (from: string) =>
    muc.send(`<iq from='${from}' to='${DOMAIN}' id='c' type='get'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`)[0]!.getChild("query")!.getChildren("item");
  assert.deepEqual(commands(ADMIN).map((i) => i.attrs.node), [
    NODE,
    "urn:dmuc-gateway:admin:list-rooms",
    "urn:dmuc-gateway:admin:room-info",
    "urn:dmuc-gateway:admin:occupants",
    "urn:dmuc-gateway:admin:create-room",
    "urn:dmuc-gateway:admin:destroy-room",
  ]);
  assert.deepEqual(commands(CRONE), []);
  const [features] = muc.send(`<iq from='${CRONE}' to='${DOMAIN}' id='f' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
  assert.ok(features!.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === "http://jabber.org/protocol/commands"));
});

test("an administrator creates a room with the ad-hoc command, and others enter it at once", () => {
  const muc = new RoomDriver(DOMAIN, ["admin@shakespeare.lit"]);
  const [form] = muc.send(`<iq from='${ADMIN}' to='${DOMAIN}' id='c1' type='set'><command xmlns='http://jabber.org/protocol/commands' node='urn:dmuc-gateway:admin:create-room' action='execute'/></iq>`);
  assert.equal(form!.getChild("command")!.attrs.status, "executing");
  const [done] = muc.send(
    `<iq from='${ADMIN}' to='${DOMAIN}' id='c2' type='set'><command xmlns='http://jabber.org/protocol/commands' node='urn:dmuc-gateway:admin:create-room' action='complete'>` +
      `<x xmlns='jabber:x:data' type='submit'><field var='room'><value>heath@${DOMAIN}</value></field><field var='name'><value>The heath</value></field></x></command></iq>`,
  );
  assert.equal(done!.getChild("command")!.attrs.status, "completed");
  const entered = muc.join("heath", "firstwitch", CRONE);
  assert.ok(to(entered, CRONE).some((s) => s.attrs.from === `heath@${DOMAIN}/firstwitch` && s.attrs.type !== "error"));
  const [again] = muc.send(
    `<iq from='${ADMIN}' to='${DOMAIN}' id='c3' type='set'><command xmlns='http://jabber.org/protocol/commands' node='urn:dmuc-gateway:admin:create-room' action='complete'>` +
      `<x xmlns='jabber:x:data' type='submit'><field var='room'><value>heath</value></field></x></command></iq>`,
  );
  assert.equal(again!.attrs.type, "error");
  assert.ok(again!.getChild("error")!.getChild("conflict"));
});
