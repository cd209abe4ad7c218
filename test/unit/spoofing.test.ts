// Elements only the room may assert (issue 16 point 5, issue 15 point 5): a client's stanza-id "by" the
// room in another letter case (XEP-0359 §4: compare after normalisation), delays claiming to come from
// the room in both namespaces (XEP-0203, legacy XEP-0091) are removed from the broadcast and from the
// stored history; other entities' stanza-ids and delays stay (XEP-0045 §7.9).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Element } from "@xmpp/xml";
import { RoomDriver } from "../helpers/room-driver.js";
import { parseXml } from "../helpers/xml.js";

const DOMAIN = "chat.shakespeare.lit";
const ROOM = `coven@${DOMAIN}`;
const CRONE = "crone1@shakespeare.lit/desktop";
const WITCH = "wiccarocks@shakespeare.lit/laptop";

function coven(): RoomDriver {
  const driver = new RoomDriver(DOMAIN);
  driver.join("coven", "firstwitch", CRONE);
  driver.join("coven", "secondwitch", WITCH);
  return driver;
}

/** The broadcast copy for the crone, and the stanza stored in history. */
function sendAndRead(driver: RoomDriver, message: string): { copy: Element; stored: Element } {
  const copy = driver.send(message).find((s) => s.attrs.to === CRONE)!;
  const write = driver.effects.find((e) => e.kind === "store" && e.write.op === "history.append");
  assert.ok(copy && write && write.kind === "store" && write.write.op === "history.append", "broadcast and stored");
  return { copy, stored: write.write.entry.stanza };
}

const children = (el: Element, name: string, xmlns: string) => el.getChildren(name, xmlns).map((c) => ({ ...c.attrs }));

test("XEP-0359 §4: a client's stanza-id by the room in other letter case is removed; the room's own is the only one", () => {
  const driver = coven();
  const { copy, stored } = sendAndRead(
    driver,
    `<message from='${WITCH}' to='${ROOM}' type='groupchat' id='m1'><body>Thrice the brinded cat hath mew'd.</body>` +
      `<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='COVEN@Chat.Shakespeare.LIT'/>` +
      `<stanza-id xmlns='urn:xmpp:sid:0' id='theirs' by='shakespeare.lit'/></message>`,
  );
  for (const el of [copy, stored]) {
    const ids = children(el, "stanza-id", "urn:xmpp:sid:0");
    assert.deepEqual(ids.map((a) => a.by), ["shakespeare.lit", ROOM], el.toString());
    assert.notEqual(ids[1]!.id, "forged");
  }
});

test("XEP-0203 and XEP-0091: delays claiming to come from the room are removed, in both namespaces and any case", () => {
  const driver = coven();
  const { copy, stored } = sendAndRead(
    driver,
    `<message from='${WITCH}' to='${ROOM}' type='groupchat'><body>Thrice and once the hedge-pig whined.</body>` +
      `<delay xmlns='urn:xmpp:delay' from='Coven@chat.shakespeare.lit' stamp='2002-09-10T23:08:25Z'/>` +
      `<x xmlns='jabber:x:delay' from='coven@chat.shakespeare.lit' stamp='20020910T23:08:25'/></message>`,
  );
  for (const el of [copy, stored]) {
    assert.deepEqual(children(el, "delay", "urn:xmpp:delay"), [], el.toString());
    assert.deepEqual(children(el, "x", "jabber:x:delay"), [], el.toString());
  }
});

test("XEP-0045 §7.9: a delay from the original sender of converted one-to-one history stays", () => {
  const driver = coven();
  const { copy } = sendAndRead(
    driver,
    `<message from='${CRONE}' to='${ROOM}' type='groupchat'><body>Harpier cries 'Tis time, 'tis time.</body>` +
      `<delay xmlns='urn:xmpp:delay' from='wiccarocks@shakespeare.lit/laptop' stamp='2002-09-10T23:05:37Z'/></message>`,
  );
  assert.deepEqual(children(copy, "delay", "urn:xmpp:delay"), [{ xmlns: "urn:xmpp:delay", from: "wiccarocks@shakespeare.lit/laptop", stamp: "2002-09-10T23:05:37Z" }]);
});

test("§7.5: a private message loses the same forged room assertions", () => {
  const driver = coven();
  const [pm] = driver.send(
    `<message from='${WITCH}' to='${ROOM}/firstwitch' type='chat'><body>psst</body>` +
      `<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='coven@CHAT.shakespeare.lit'/>` +
      `<occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/>` +
      `<delay xmlns='urn:xmpp:delay' from='coven@chat.shakespeare.lit' stamp='2002-09-10T23:08:25Z'/></message>`,
  );
  assert.equal(pm?.attrs.to, CRONE);
  assert.deepEqual(
    pm!.getChildElements().map((c) => `${c.name} ${c.attrs.xmlns ?? ""}`.trim()),
    ["body", "x http://jabber.org/protocol/muc#user", "occupant-id urn:xmpp:occupant-id:0"],
    pm!.toString(),
  );
  // The occupant-id is the room's own (XEP-0421), never the one the sender forged.
  assert.notEqual(pm!.getChild("occupant-id", "urn:xmpp:occupant-id:0")!.attrs.id, "forged");
});

test("the room's answer to an invitation from a non-occupant is not-acceptable (XEP-0045 §7.4's rule for non-occupants)", () => {
  const driver = coven();
  const [reply] = driver.send(
    parseXml(`<message from='hecate@shakespeare.lit/broom' to='${ROOM}' id='inv1'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='hag66@shakespeare.lit'/></x></message>`),
  );
  assert.equal(reply?.attrs.type, "error");
  assert.equal(reply?.getChild("error")?.getChild("not-acceptable", "urn:ietf:params:xml:ns:xmpp-stanzas") !== undefined, true, reply?.toString());
  assert.equal(driver.effects.filter((e) => e.kind === "send").length, 1, "nothing goes to the invitee");
});
