// Tombstones (issue 10, Prosody's muc_tombstones): a destroyed persistent room answers entries with
// <gone/> and its new venue while the tombstone lasts, then may be created again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomDriver } from "../helpers/room-driver.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";

const DOMAIN = "chat.shakespeare.lit";
const CRONE = "crone1@shakespeare.lit/desktop";
const HAG = "hag66@shakespeare.lit/pda";
const DAY = 86_400_000;

function heath(persistent: boolean): RoomDriver {
  const driver = new RoomDriver(DOMAIN, ["admin@shakespeare.lit"], { tombstoneDays: 31 });
  driver.join("heath", "firstwitch", CRONE);
  driver.configure("heath", CRONE, { "muc#roomconfig_persistentroom": persistent ? "1" : "0" });
  return driver;
}

const enterHeath = (driver: RoomDriver) => driver.send(`<presence from='${HAG}' to='heath@${DOMAIN}/thirdwitch'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);

test("after the owner destroys a persistent room (Owner Submits Room Destruction Request), entering it gets <gone/> with the new venue", () => {
  const driver = heath(true);
  const [result] = driver.send(example("0045", "Owner Submits Room Destruction Request"));
  assertMatches(result!, example("0045", "Service Informs Owner of Successful Destruction"));
  assert.ok(driver.effects.some((e) => e.kind === "store" && e.write.op === "tombstone.save" && e.write.alternateVenue === `coven@${DOMAIN}`), "the tombstone is stored");

  const [gone] = enterHeath(driver);
  assertMatches(
    gone!,
    parseXml(`<presence type='error' from='heath@${DOMAIN}/thirdwitch' to='${HAG}'><error type='cancel' by='heath@${DOMAIN}'>
      <gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:coven@${DOMAIN}?join</gone>
      <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Macbeth doth come.</text></error></presence>`),
  );
  assert.equal(driver.room("heath"), undefined, "not created again");

  driver.now = new Date(driver.now.getTime() + 32 * DAY);
  const entered = enterHeath(driver);
  assert.ok(entered.every((s) => s.attrs.type !== "error"), "after the tombstone expires, the room may be created again");
  assert.ok(driver.room("heath"));
});

test("a temporary room leaves no tombstone", () => {
  const driver = heath(false);
  driver.send(example("0045", "Owner Submits Room Destruction Request"));
  assert.ok(enterHeath(driver).every((s) => s.attrs.type !== "error"));
});

test("a room destroyed by a service administrator's command leaves a tombstone too", () => {
  const driver = heath(true);
  driver.send(
    `<iq from='admin@shakespeare.lit/console' to='${DOMAIN}' id='c1' type='set'><command xmlns='http://jabber.org/protocol/commands' node='http://prosody.im/protocol/muc#destroy' action='complete'>
      <x xmlns='jabber:x:data' type='submit'><field var='rooms'><value>heath@${DOMAIN}</value></field></x></command></iq>`,
  );
  assert.equal(driver.room("heath"), undefined);
  const [gone] = enterHeath(driver);
  assertMatches(gone!, parseXml(`<presence type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>This room has been destroyed</text></error></presence>`));
});
