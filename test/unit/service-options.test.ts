// Service options operators expect from Prosody (issue 10): who may create rooms, the configuration
// new rooms start with (hidden by default), and occupant-ids that stay the same across restarts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomDriver } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";
import { DEFAULT_ROOM_CONFIG, newRoom } from "../../src/core/room/types.js";
import { occupantIdFor } from "../../src/core/room/occupant-id.js";

const DOMAIN = "chat.shakespeare.lit";
const CRONE = "crone1@shakespeare.lit/desktop";
const HAG = "hag66@shakespeare.lit/pda";
const STRANGER = "pistol@harfleur.lit/camp";
const ADMIN = "admin@shakespeare.lit/console";

const enter = (driver: RoomDriver, from: string, room = "coven", nick = "witch") =>
  driver.send(`<presence from='${from}' to='${room}@${DOMAIN}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);

test("room creation 'admin': only service administrators create rooms; others get not-allowed as from Prosody", () => {
  const driver = new RoomDriver(DOMAIN, ["admin@shakespeare.lit"], { roomCreation: "admin", localDomain: "shakespeare.lit" });
  const [refused] = enter(driver, CRONE);
  assertMatches(
    refused!,
    parseXml(`<presence type='error' from='coven@${DOMAIN}/witch'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Room creation is restricted</text></error></presence>`),
  );
  assert.equal(driver.room("coven"), undefined);
  driver.join("coven", "admin", ADMIN);
  assert.ok(driver.room("coven"), "the administrator creates it");
  const entered = enter(driver, CRONE);
  assert.ok(entered.every((s) => s.attrs.type !== "error"), "others may enter a room that exists");
});

test("room creation 'local': users of the service's own server (and administrators) create rooms, remote users do not", () => {
  const driver = new RoomDriver(DOMAIN, [], { roomCreation: "local", localDomain: "shakespeare.lit" });
  const [refused] = enter(driver, STRANGER, "camp");
  assert.equal(refused!.attrs.type, "error");
  assert.equal(driver.room("camp"), undefined);
  enter(driver, HAG);
  assert.ok(driver.room("coven"));
});

test("new rooms are hidden by default (Prosody's muc_room_default_public = false): not in disco#items", () => {
  const driver = new RoomDriver(DOMAIN);
  driver.join("coven", "crone", CRONE);
  assert.equal(driver.room("coven")!.config.public, false);
  const [items] = driver.send(`<iq from='${HAG}' to='${DOMAIN}' id='i1' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`);
  assert.equal(items!.getChild("query")!.getChildren("item").length, 0);
});

test("service-wide room defaults (public, persistent, history length, whois) apply to new rooms", () => {
  const roomDefaults = { ...DEFAULT_ROOM_CONFIG, public: true, persistent: true, historyLength: 7, whois: "anyone" as const };
  const driver = new RoomDriver(DOMAIN, [], { roomDefaults });
  const [self] = enter(driver, CRONE).filter((s) => s.name === "presence");
  const codes = self!.getChild("x", "http://jabber.org/protocol/muc#user")!.getChildren("status").map((s) => s.attrs.code);
  assert.ok(codes.includes("100"), "a non-anonymous room says so on entry");
  const config = driver.room("coven")!.config;
  assert.deepEqual([config.public, config.persistent, config.historyLength, config.whois], [true, true, 7, "anyone"]);
});

test("XEP-0421: occupant-ids are derived from the room's secret: the same after a restart and a new visit, different in another room", () => {
  const driver = new RoomDriver(DOMAIN);
  driver.join("coven", "crone", CRONE);
  enter(driver, HAG);
  const room = driver.room("coven")!;
  const first = room.occupants.get("witch")!.occupantId;
  assert.notEqual(room.occupantIdSecret, "", "a secret per room, from the shell's random ids");

  // A restart restores the room with its stored secret but without Hag, who comes back later.
  const restored = new RoomDriver(DOMAIN);
  const rooms = restored.state.rooms.with(room.jid, { ...newRoom(room.jid, room.config, room.occupantIdSecret), affiliations: room.affiliations });
  restored.state = { ...restored.state, rooms };
  enter(restored, "hag66@shakespeare.lit/laptop");
  assert.equal(restored.room("coven")!.occupants.get("witch")!.occupantId, first);

  assert.notEqual(occupantIdFor({ jid: `other@${DOMAIN}`, occupantIdSecret: room.occupantIdSecret }, "hag66@shakespeare.lit"), first);
  const created = new RoomDriver(DOMAIN);
  enter(created, CRONE);
  const save = created.effects.find((e) => e.kind === "store" && e.write.op === "room.save");
  assert.ok(save?.kind === "store" && save.write.op === "room.save" && save.write.occupantIdSecret === created.room("coven")!.occupantIdSecret, "the secret is stored with the new room");
});
