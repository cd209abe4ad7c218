// Flood limits on room presence (issue 15 point 1): entries, exits, nick changes and presence updates
// are counted per session and per bare JID before the room does O(occupants) work; refusals are cheap
// (one answer a second, one audit event per episode) and presence updates are coalesced, latest wins.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { DEFAULT_FLOOD_LIMITS, MESSAGE_ANSWERS_PER_SECOND } from "../../src/core/flood/limits.js";
import type { Element } from "@xmpp/xml";

const ROOM = "coven@chat.shakespeare.lit";
const ROMEO = "romeo@montague.lit/orchard";
const JULIET = "juliet@capulet.lit/balcony";
const { joinBurst, presenceBurst } = DEFAULT_FLOOD_LIMITS;

function room(): RoomDriver {
  const driver = new RoomDriver();
  driver.join("coven", "romeo", ROMEO);
  return driver;
}

const enter = (from: string, nick: string) => `<presence from='${from}' to='${ROOM}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`;
const leave = (from: string, nick: string) => `<presence from='${from}' to='${ROOM}/${nick}' type='unavailable'/>`;
const status = (from: string, nick: string, text: string) => `<presence from='${from}' to='${ROOM}/${nick}'><status>${text}</status></presence>`;
const condition = (el: Element | undefined) => el?.getChild("error")?.getChildElements()[0]?.name;
const audits = (driver: RoomDriver) => driver.effects.filter((e) => e.kind === "audit" && e.record.kind === "flood.refused");

test("an entry/exit loop is refused with wait/policy-violation after the burst; the others see nothing of the refused entries", () => {
  const driver = room();
  // Each cycle is one entry and one exit: the session's allowance covers joinBurst / 2 cycles at one instant.
  for (let i = 0; i < joinBurst / 2; i++) {
    assert.equal(to(driver.send(enter(JULIET, "juliet")), ROMEO).length, 1, `entry ${i} is seen`);
    assert.equal(to(driver.send(leave(JULIET, "juliet")), ROMEO).length, 1, `exit ${i} is seen`);
  }
  const refused = driver.send(enter(JULIET, "juliet"));
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.attrs.type, "error");
  assert.equal(refused[0]!.attrs.to, JULIET);
  assert.equal(refused[0]!.getChild("error")!.attrs.type, "wait");
  assert.equal(refused[0]!.getChild("error")!.attrs.by, ROOM);
  assert.equal(condition(refused[0]), "policy-violation");
  assert.equal(audits(driver).length, 1, "the refusal is audited");
  assert.ok(driver.effects.every((e) => e.kind !== "store"), "nothing stored for a refused entry");
  assert.equal(driver.room("coven")!.occupants.has("juliet"), false);

  // The same flood a moment later: no answer at all (the first one said it), no second audit.
  driver.now = new Date(driver.now.getTime() + 100);
  assert.deepEqual(driver.send(enter(JULIET, "juliet")), []);
  assert.equal(audits(driver).length, 0);

  // Two seconds on, the bucket has two tokens again: she may enter, and the room sees her.
  driver.now = new Date(driver.now.getTime() + 2_000);
  assert.equal(to(driver.send(enter(JULIET, "juliet")), ROMEO).length, 1);
});

test("an exit is never refused, even with no allowance left", () => {
  const driver = room();
  driver.send(enter(JULIET, "juliet"));
  for (let i = 1; i < joinBurst; i++) driver.send(`<presence from='${JULIET}' to='${ROOM}/juliet${i}'/>`); // nick changes use up the rest
  assert.equal(condition(driver.send(`<presence from='${JULIET}' to='${ROOM}/again'/>`)[0]), "policy-violation");
  const left = to(driver.send(leave(JULIET, `juliet${joinBurst - 1}`)), ROMEO);
  assert.equal(left.length, 1);
  assert.equal(left[0]!.attrs.type, "unavailable");
  assert.equal(driver.room("coven")!.sessionNicks.size, 1);
});

test("a nick-change flood is refused after the burst, and the occupant keeps its last accepted nick", () => {
  const driver = room();
  driver.send(enter(JULIET, "juliet"));
  let accepted = 1;
  let refusedAt = -1;
  for (let i = 0; i < joinBurst * 2 && refusedAt < 0; i++) {
    const out = driver.send(`<presence from='${JULIET}' to='${ROOM}/n${i}'/>`);
    if (out[0]?.attrs.type === "error") refusedAt = i;
    else accepted++;
  }
  assert.equal(accepted, joinBurst);
  assert.ok(driver.room("coven")!.occupants.has(`n${refusedAt - 1}`));
});

test("the sessions of one bare JID share twice one session's allowance", () => {
  const driver = room();
  let entries = 0;
  for (let s = 0; s < 4; s++) {
    const full = `juliet@capulet.lit/r${s}`;
    for (let i = 0; i < joinBurst; i++) {
      const out = driver.send(enter(full, "juliet"));
      if (out[0]?.attrs.type === "error" || out.length === 0) break;
      entries++;
      driver.send(leave(full, "juliet"));
    }
  }
  // Each entry+exit costs 2 tokens of the user's 2 * joinBurst.
  assert.equal(entries, joinBurst);
});

test("rapid presence updates are coalesced: the burst is broadcast, then only the latest, at the next tick", () => {
  const driver = room();
  driver.join("coven", "juliet", JULIET);
  let seen = 0;
  for (let i = 1; i <= 20; i++) seen += to(driver.send(status(JULIET, "juliet", `s${i}`)), ROMEO).length;
  assert.equal(seen, presenceBurst);
  assert.ok(!driver.effects.some((e) => e.kind === "store" || e.kind === "audit"), "a coalesced update is not stored");
  assert.deepEqual(driver.tick(), [], "no token yet at the same instant");
  driver.now = new Date(driver.now.getTime() + 1_000);
  const released = to(driver.tick(), ROMEO);
  assert.equal(released.length, 1);
  assert.equal(released[0]!.getChildText("status"), "s20");
  assert.ok(driver.effects.some((e) => e.kind === "store" && e.write.op === "occupant.save"), "the released presence is stored");
  driver.now = new Date(driver.now.getTime() + 5_000);
  assert.deepEqual(driver.tick(), [], "nothing twice");
});

test("a room's presence broadcast budget coalesces many occupants' updates beyond it", () => {
  const driver = new RoomDriver("chat.shakespeare.lit", [], { flood: { ...DEFAULT_FLOOD_LIMITS, roomPresenceRate: 3 } });
  driver.join("coven", "romeo", ROMEO);
  const users = ["a", "b", "c", "d", "e"].map((n) => `${n}@capulet.lit/x`);
  driver.now = new Date(driver.now.getTime() + 10_000); // the entries used up the budget; refill it
  users.forEach((u, i) => driver.join("coven", `u${i}`, u));
  driver.now = new Date(driver.now.getTime() + 10_000);
  let seen = 0;
  users.forEach((u, i) => (seen += to(driver.send(status(u, `u${i}`, "busy")), ROMEO).length));
  assert.equal(seen, 3);
  driver.now = new Date(driver.now.getTime() + 1_000);
  assert.equal(to(driver.tick(), ROMEO).length, 2);
});

test("a coalesced update of a session that left meanwhile is dropped", () => {
  const driver = room();
  driver.join("coven", "juliet", JULIET);
  for (let i = 0; i <= presenceBurst; i++) driver.send(status(JULIET, "juliet", `s${i}`));
  driver.send(leave(JULIET, "juliet"));
  driver.now = new Date(driver.now.getTime() + 2_000);
  assert.deepEqual(driver.tick(), []);
  assert.equal(driver.room("coven")!.occupants.has("juliet"), false);
});

test("a message flood: every refusal is answered up to MESSAGE_ANSWERS_PER_SECOND a second, the rest dropped unanswered", () => {
  const driver = new RoomDriver("chat.shakespeare.lit", [], {}, { ratePerSecond: 10, burst: 30 });
  driver.join("coven", "romeo", ROMEO);
  const message = (i: number) => `<message from='${ROMEO}' to='${ROOM}' type='groupchat' id='m${i}'><body>${i}</body></message>`;
  let echoed = 0;
  const errors: Element[] = [];
  for (let i = 0; i < 200; i++) {
    const out = driver.send(message(i));
    echoed += out.filter((s) => s.attrs.type === "groupchat").length;
    errors.push(...out.filter((s) => s.attrs.type === "error"));
  }
  assert.equal(echoed, 30, "the burst");
  assert.equal(errors.length, MESSAGE_ANSWERS_PER_SECOND, "ten refusals answered in that second, not 170");
  for (const e of errors) assert.equal(condition(e), "policy-violation");
  // A second later: ten tokens again, and the refusals after them are answered again.
  driver.now = new Date(driver.now.getTime() + 1_000);
  const later = Array.from({ length: 30 }, (_, i) => driver.send(message(1000 + i))).flat();
  assert.equal(later.filter((s) => s.attrs.type === "groupchat").length, 10);
  assert.equal(later.filter((s) => s.attrs.type === "error").length, MESSAGE_ANSWERS_PER_SECOND);
});
