// What a room keeps of an occupant's presence (issue 14, memory): the relayed payload only, identical
// payload elements shared between occupants, and what every viewer receives unchanged by it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { keptPresence } from "../../src/core/room/kept-presence.js";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { parseXml } from "../helpers/xml.js";

const ROOM = "coven@chat.shakespeare.lit";
const CAPS = `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='NjZPZ3kuWhmRNFUgzNuCb9MkCWQ='/>`;
const join = (from: string, nick: string, extra: string) =>
  `<presence from='${from}' to='${ROOM}/${nick}' id='j-${nick}'><show>dnd</show>${CAPS}${extra}<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`;

test("keeps the relayed payload only, and shares identical payload elements between presences", () => {
  const a = keptPresence(parseXml(join("crone1@shakespeare.lit/desktop", "firstwitch", `<x xmlns='vcard-temp:x:update'><photo>aa</photo></x>`)));
  const b = keptPresence(parseXml(join("hag66@shakespeare.lit/pda", "secondwitch", `<x xmlns='vcard-temp:x:update'><photo>bb</photo></x>`)));
  assert.equal(a.toString(), `<presence><show>dnd</show>${CAPS.replace(/'/g, '"')}<x xmlns="vcard-temp:x:update"><photo>aa</photo></x></presence>`);
  assert.equal(a.children[0], b.children[0], "one <show/> for both");
  assert.equal(a.children[1], b.children[1], "one <c/> for both");
  assert.notEqual(a.children[2], b.children[2], "each its own avatar hash");
  // Room-owned elements from the client are never kept (nor relayed).
  const spoofed = keptPresence(parseXml(`<presence><x xmlns='http://jabber.org/protocol/muc#user'><item role='moderator'/></x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/><status>hi</status></presence>`));
  assert.equal(spoofed.toString(), "<presence><status>hi</status></presence>");
});

test("every viewer gets the newcomer's payload as sent, and a later entrant gets it in the roster", () => {
  const muc = new RoomDriver();
  const crone = "crone1@shakespeare.lit/desktop";
  const hag = "hag66@shakespeare.lit/pda";
  const wiz = "wiz@shakespeare.lit/broom";
  muc.join("coven", "firstwitch", crone);
  const avatar = `<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x>`;
  const seen = to(muc.send(join(hag, "secondwitch", avatar)), crone);
  const payload = (stanza: ReturnType<typeof parseXml>) => stanza.children.filter((c) => typeof c !== "string" && !(c.name === "x" && c.attrs.xmlns === "http://jabber.org/protocol/muc#user") && c.name !== "occupant-id").map(String);
  const expected = ["<show>dnd</show>", CAPS.replace(/'/g, '"'), avatar.replace(/'/g, '"')].map((s) => parseXml(s).toString());
  assert.deepEqual(payload(seen[0]!), expected);
  // The third occupant's roster carries the second's stored payload.
  const roster = to(muc.send(join(wiz, "thirdwitch", "")), wiz).filter((s) => s.name === "presence" && s.attrs.from === `${ROOM}/secondwitch`);
  assert.equal(roster.length, 1);
  assert.deepEqual(payload(roster[0]!), expected);
});
