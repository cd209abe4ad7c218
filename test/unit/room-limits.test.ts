// Issue 16 point 8: history in memory bounded by bytes, and room creation limits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomDriver, to } from "../helpers/room-driver.js";

const ROMEO = "romeo@montague.lit/orchard";
const JULIET = "juliet@capulet.lit/balcony";
const ADMIN = "prince@verona.lit/palace";
const condition = (el: { getChild(n: string): { getChildElements(): { name: string }[] } | undefined } | undefined) => el?.getChild("error")?.getChildElements()[0]?.name;

test("a room keeps only the newest history that fits its memory bound; every message is still stored", () => {
  const driver = new RoomDriver("chat.shakespeare.lit", [], { maxHistoryChars: 3_000 });
  driver.join("coven", "romeo", ROMEO);
  let stored = 0;
  for (let i = 0; i < 5; i++) {
    driver.send(`<message from='${ROMEO}' to='coven@chat.shakespeare.lit' type='groupchat' id='m${i}'><body>${String(i).repeat(1_000)}</body></message>`);
    stored += driver.effects.filter((e) => e.kind === "store" && e.write.op === "history.append").length;
  }
  assert.equal(stored, 5);
  const history = driver.room("coven")!.history;
  assert.ok(history.reduce((n, e) => n + e.chars, 0) <= 3_000);
  assert.equal(history.length, 2);
  // What a newcomer sees: the two newest messages, then the subject.
  const sent = to(driver.send(`<presence from='${JULIET}' to='coven@chat.shakespeare.lit/juliet'><x xmlns='http://jabber.org/protocol/muc'/></presence>`), JULIET);
  const bodies = sent.filter((s) => s.name === "message" && s.getChild("body")).map((s) => s.getChildText("body")![0]);
  assert.deepEqual(bodies, ["3", "4"]);
});

test("a message larger than the bound alone is still kept as the newest", () => {
  const driver = new RoomDriver("chat.shakespeare.lit", [], { maxHistoryChars: 500 });
  driver.join("coven", "romeo", ROMEO);
  driver.send(`<message from='${ROMEO}' to='coven@chat.shakespeare.lit' type='groupchat'><body>${"x".repeat(900)}</body></message>`);
  assert.equal(driver.room("coven")!.history.length, 1);
});

test("one user may own at most maxRoomsPerUser rooms; administrators are exempt; refusals store nothing", () => {
  const driver = new RoomDriver("chat.shakespeare.lit", ["prince@verona.lit"], { roomQuota: { maxRooms: 100, maxRoomsPerUser: 2 } });
  driver.join("r1", "romeo", ROMEO);
  driver.join("r2", "romeo", ROMEO);
  const [refused] = driver.send(`<presence from='${ROMEO}' to='r3@chat.shakespeare.lit/romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assert.equal(refused!.attrs.type, "error");
  assert.equal(refused!.getChild("error")!.attrs.type, "cancel");
  assert.equal(condition(refused), "not-allowed");
  assert.ok(driver.effects.every((e) => e.kind !== "store"));
  assert.equal(driver.room("r3"), undefined);
  // Entering an existing room is no creation.
  driver.join("r1", "juliet", JULIET);
  assert.ok(driver.room("r1")!.occupants.has("juliet"));
  for (const r of ["a1", "a2", "a3"]) driver.join(r, "prince", ADMIN);
  assert.ok(driver.room("a3"));
});

test("the service holds at most maxRooms rooms", () => {
  const driver = new RoomDriver("chat.shakespeare.lit", [], { roomQuota: { maxRooms: 2, maxRoomsPerUser: 100 } });
  driver.join("r1", "romeo", ROMEO);
  driver.join("r2", "juliet", JULIET);
  const [refused] = driver.send(`<presence from='${JULIET}' to='r3@chat.shakespeare.lit/juliet'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assert.equal(condition(refused), "not-allowed");
  assert.equal(driver.state.rooms.size, 2);
});
