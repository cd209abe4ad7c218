// The undo of a room whose writes waited too long for the database (src/shell/lane-undo.ts): the room
// goes back to what it was before the lane's first queued stanza, only while nothing else changed it;
// and each withdrawn stanza gets the answer a client expects. Pure: rooms from the engine, no IO.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LaneUndo } from "../../src/shell/lane-undo.js";
import { RoomDriver } from "../helpers/room-driver.js";
import { parseXml } from "../helpers/xml.js";

const ROOM = "coven@chat.shakespeare.lit";
const ROMEO = "romeo@montague.lit/orchard";
const JULIET = "juliet@capulet.lit/balcony";

function roomWithRomeo(): RoomDriver {
  const driver = new RoomDriver();
  driver.join("coven", "romeo", ROMEO);
  return driver;
}

test("a lane's room goes back to what it was before its first queued stanza", () => {
  const d = roomWithRomeo();
  const undo = new LaneUndo();
  const s0 = d.state;
  d.send(`<presence from='${JULIET}' to='${ROOM}/juliet'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const s1 = d.state;
  undo.handled(ROOM, s0, s1, false, true);
  d.send(`<message from='${JULIET}' to='${ROOM}' type='groupchat'><body>Romeo?</body></message>`);
  undo.handled(ROOM, s1, d.state, true, true);
  assert.ok(undo.mayUndo(ROOM, d.state));
  const back = undo.undo(ROOM, d.state);
  assert.equal(back.rooms.get(ROOM), s0.rooms.get(ROOM), "juliet's entry and message are gone");
  assert.equal(undo.mayUndo(ROOM, back), false, "once");
});

test("a room changed outside its lane, or whose stanzas changed DMUC2 state, cannot be put back", () => {
  const d = roomWithRomeo();
  const undo = new LaneUndo();
  const s0 = d.state;
  d.send(`<message from='${ROMEO}' to='${ROOM}' type='groupchat'><body>one</body></message>`);
  undo.handled(ROOM, s0, d.state, false, true);
  // Something else (the timer, an operator) changed the room meanwhile.
  d.send(`<message from='${ROMEO}' to='${ROOM}' type='groupchat'><body>two</body></message>`);
  assert.equal(undo.mayUndo(ROOM, d.state), false);

  const other = new LaneUndo();
  const before = d.state;
  const after = { ...before, dmuc: { ...before.dmuc, links: new Map(before.dmuc.links).set(ROOM, new Map()) } };
  other.handled(ROOM, before, after, false, true);
  assert.equal(other.mayUndo(ROOM, after), false);
  // An idle lane has nothing to undo.
  const idle = new LaneUndo();
  idle.handled(ROOM, before, before, false, false);
  assert.equal(idle.mayUndo(ROOM, before), false);
});

test("answers: wait for messages, entries, nick changes and IQs; exits again; an occupant's presence update dropped", () => {
  const room = roomWithRomeo().state.rooms.get(ROOM);
  const answer = (xmlText: string) => LaneUndo.answerFor(parseXml(xmlText), room);
  assert.equal(answer(`<message from='${ROMEO}' to='${ROOM}' type='groupchat'><body>x</body></message>`), "refuse");
  assert.equal(answer(`<iq from='${ROMEO}' to='${ROOM}' type='set' id='1'/>`), "refuse");
  assert.equal(answer(`<presence from='${JULIET}' to='${ROOM}/juliet'/>`), "refuse", "an entry");
  assert.equal(answer(`<presence from='${ROMEO}' to='${ROOM}/romeo2'/>`), "refuse", "a nick change");
  assert.equal(answer(`<presence from='${ROMEO}' to='${ROOM}/romeo'><show>away</show></presence>`), "drop", "an update");
  assert.equal(answer(`<presence from='${ROMEO}' to='${ROOM}/romeo' type='unavailable'/>`), "again");
});
