// Ghost occupants (issue 10, point 1): bounces and unanswered pings remove an occupant's session as
// Prosody's MUC does (XEP-0045 §15.7 "Service removes user because of error response", status 333);
// the room verifies every session with an XEP-0199 ping after each (re)connection and once per interval.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";

const ROOM = "harfleur@chat.shakespeare.lit";
const PISTOL = "pistol@shakespeare.lit/harfleur";
const GOWER = "gower@shakespeare.lit/cell";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

function room(options: { occupantPingSeconds?: number } = {}): RoomDriver {
  const driver = new RoomDriver("chat.shakespeare.lit", [], {}, options);
  driver.join("harfleur", "gower", GOWER);
  driver.join("harfleur", "pistol", PISTOL);
  return driver;
}

/** XEP-0045's examples 205 and 206 use this test's room, nicks and addresses. */
const removal = (caption: string): Element => example("0045", caption);

function assertRemoved(sent: Element[], text: string): void {
  const [self] = to(sent, PISTOL);
  assertMatches(self!, removal("MUC service removes user because of error"));
  assertMatches(self!, parseXml(`<presence type='unavailable'><status>${text}</status></presence>`));
  const [others] = to(sent, GOWER);
  assertMatches(others!, removal("MUC service informs other occupants of removal because of an error"));
  assertMatches(others!, parseXml(`<presence type='unavailable'><status>${text}</status></presence>`));
  const codes = others!.getChild("x", "http://jabber.org/protocol/muc#user")!.getChildren("status").map((s) => s.attrs.code);
  assert.deepEqual(codes, ["333"], "no 307 beside 333 (XEP-0045 1.33)");
}

test("a message bounced by an occupant's session with service-unavailable removes it (Prosody's kickable errors)", () => {
  const driver = room();
  const sent = driver.send(
    `<message type='error' from='${PISTOL}' to='${ROOM}'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></message>`,
  );
  assertRemoved(sent, "Kicked: service unavailable");
  assert.equal(driver.room("harfleur")!.occupants.has("pistol"), false);
  assert.ok(driver.effects.some((e) => e.kind === "store" && e.write.op === "occupant.delete" && e.write.jid === PISTOL), "the stored occupant row is deleted");
});

test("a private message bounced with recipient-unavailable removes the session that bounced it", () => {
  const driver = room();
  const sent = driver.send(
    `<message type='error' from='${PISTOL}' to='${ROOM}/gower'><error type='wait'><recipient-unavailable xmlns='${STANZAS}'/></error></message>`,
  );
  assertRemoved(sent, "Kicked: recipient unavailable");
});

test("an error that does not mean the session is gone, or from a non-occupant, changes nothing", () => {
  const driver = room();
  assert.deepEqual(driver.send(`<message type='error' from='${PISTOL}' to='${ROOM}'><error type='modify'><not-acceptable xmlns='${STANZAS}'/></error></message>`), []);
  assert.deepEqual(driver.send(`<message type='error' from='romeo@montague.lit/x' to='${ROOM}'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></message>`), []);
  assert.equal(driver.room("harfleur")!.occupants.size, 2);
});

function pings(sent: Element[]): Element[] {
  return sent.filter((s) => s.name === "iq" && s.getChild("ping", "urn:xmpp:ping"));
}

test("after the component connects, the room pings every session from its own address", () => {
  const driver = room();
  assert.deepEqual(driver.online(), [], "pings go out with the next tick");
  const sent = pings(driver.advance(1000));
  assert.deepEqual(sent.map((p) => p.attrs.to).sort(), [GOWER, PISTOL].sort());
  for (const ping of sent) {
    const shape = example("0199", "Ping");
    shape.attrs.from = ROOM;
    shape.attrs.to = ping.attrs.to;
    shape.attrs.id = ping.attrs.id;
    assertMatches(ping, shape);
  }
});

test("a session whose server answers the room's ping with service-unavailable is removed; a pong keeps it", () => {
  const driver = room();
  driver.online();
  const sent = pings(driver.advance(1000));
  const toPistol = sent.find((p) => p.attrs.to === PISTOL)!;
  const toGower = sent.find((p) => p.attrs.to === GOWER)!;
  assert.deepEqual(driver.send(`<iq type='result' from='${GOWER}' to='${ROOM}' id='${toGower.attrs.id}'/>`), []);
  const removed = driver.send(
    `<iq type='error' from='${PISTOL}' to='${ROOM}' id='${toPistol.attrs.id}'><ping xmlns='urn:xmpp:ping'/><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></iq>`,
  );
  assertRemoved(removed, "Kicked: service unavailable");
  assert.deepEqual([...driver.room("harfleur")!.occupants.keys()], ["gower"]);
  assert.deepEqual(pings(driver.advance(120_000)), [], "nothing more to verify until the next interval");
});

test("an answer from another address, or a second answer, is not taken for the session's", () => {
  const driver = room();
  driver.online();
  const toPistol = pings(driver.advance(1000)).find((p) => p.attrs.to === PISTOL)!;
  const forged = `<iq type='error' from='gower@shakespeare.lit/cell' to='${ROOM}' id='${toPistol.attrs.id}'><error type='cancel'><item-not-found xmlns='${STANZAS}'/></error></iq>`;
  driver.send(forged);
  assert.equal(driver.room("harfleur")!.occupants.size, 2);
  driver.send(`<iq type='result' from='${PISTOL}' to='${ROOM}' id='${toPistol.attrs.id}'/>`);
  driver.send(`<iq type='error' from='${PISTOL}' to='${ROOM}' id='${toPistol.attrs.id}'><error type='cancel'><item-not-found xmlns='${STANZAS}'/></error></iq>`);
  assert.equal(driver.room("harfleur")!.occupants.size, 2);
});

test("a client that does not implement ping (feature-not-implemented) stays", () => {
  const driver = room();
  driver.online();
  const toPistol = pings(driver.advance(1000)).find((p) => p.attrs.to === PISTOL)!;
  driver.send(`<iq type='error' from='${PISTOL}' to='${ROOM}' id='${toPistol.attrs.id}'><error type='cancel'><feature-not-implemented xmlns='${STANZAS}'/></error></iq>`);
  assert.equal(driver.room("harfleur")!.occupants.has("pistol"), true);
});

test("a ping left unanswered for a minute removes the session", () => {
  const driver = room();
  driver.online();
  const sent = pings(driver.advance(1000));
  const toGower = sent.find((p) => p.attrs.to === GOWER)!;
  driver.send(`<iq type='result' from='${GOWER}' to='${ROOM}' id='${toGower.attrs.id}'/>`);
  assert.equal(driver.advance(58_000).length, 0);
  const removed = driver.advance(2000);
  assertRemoved(removed, "Kicked: remote server timeout");
  assert.equal(driver.room("harfleur")!.occupants.has("pistol"), false);
});

test("each session is pinged once per interval, spread over it", () => {
  const driver = room({ occupantPingSeconds: 30 });
  const first = pings(driver.advance(30_000));
  assert.deepEqual(first.map((p) => p.attrs.to).sort(), [GOWER, PISTOL].sort());
  for (const ping of first) driver.send(`<iq type='result' from='${ping.attrs.to}' to='${ROOM}' id='${ping.attrs.id}'/>`);
  const second = pings(driver.advance(30_000));
  assert.deepEqual(second.map((p) => p.attrs.to).sort(), [GOWER, PISTOL].sort());
});

test("a user back with a new session after a server restart gets a normal entry; the ghost goes at the check", () => {
  const driver = room();
  const back = "pistol@shakespeare.lit/harfleur-2";
  const sent = driver.send(`<presence from='${back}' to='${ROOM}/pistol'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const mine = to(sent, back);
  assert.ok(mine.some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/gower`), "the roster");
  const self = mine.find((s) => s.name === "presence" && s.attrs.from === `${ROOM}/pistol`)!;
  assert.ok(self.getChild("x", "http://jabber.org/protocol/muc#user")!.getChildren("status").some((s) => s.attrs.code === "110"));
  assert.ok(mine.some((s) => s.name === "message" && s.getChild("subject")), "the subject ends the entry");
  assert.equal(sent.filter((s) => s.attrs.type === "error").length, 0, "no conflict with the ghost");

  driver.online();
  const toGhost = pings(driver.advance(1000)).find((p) => p.attrs.to === PISTOL)!;
  const removed = driver.send(`<iq type='error' from='${PISTOL}' to='${ROOM}' id='${toGhost.attrs.id}'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></iq>`);
  assert.deepEqual([...driver.room("harfleur")!.occupants.get("pistol")!.sessions.keys()], [back]);
  assert.equal(to(removed, GOWER).filter((s) => s.attrs.type === "unavailable").length, 0, "the others still see pistol");
});

test("an IQ bounce to a relayed IQ does not remove the session at once, but has it verified", () => {
  const driver = room({ occupantPingSeconds: 0 });
  driver.send(`<iq type='error' from='${PISTOL}' to='${ROOM}/gower' id='relayed'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></iq>`);
  assert.equal(driver.room("harfleur")!.occupants.has("pistol"), true);
  assert.deepEqual(pings(driver.advance(1000)).map((p) => p.attrs.to), [PISTOL]);
});
