import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";

const CRONE = "crone1@shakespeare.lit/desktop";
const HAG = "hag66@shakespeare.lit/pda";
const ROOM = "coven@chat.shakespeare.lit";
const withFrom = (el: Element, from: string): Element => {
  el.attrs.from = from;
  return el;
};
const errorOf = (condition: string, type: string) =>
  parseXml(`<message type='error'><error type='${type}'><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`);

test("§7.8.2: the room relays an invitation with the inviter, reason, password, a body and jabber:x:conference", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  muc.configure("coven", CRONE, { "muc#roomconfig_roomsecret": "cauldronburn", "muc#roomconfig_whois": "anyone" });
  const [invitation] = muc.send(example("0045", "Occupant Sends a Mediated Invitation"));
  assertMatches(invitation!, example("0045", "Room Sends Invitation to Invitee on Behalf of Invitor"));
  assertMatches(invitation!, parseXml(`<message><x xmlns='jabber:x:conference' jid='${ROOM}'/></message>`));
  assert.match(invitation!.getChildText("body") ?? "", /^crone1@shakespeare.lit\/desktop invited you to the room coven@chat.shakespeare.lit \(Hey Hecate/);
});

test("§7.8.2: in a semi-anonymous room the invitee sees the inviter's room JID", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  const [invitation] = muc.send(`<message from='${CRONE}' to='${ROOM}' id='i1'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='hecate@shakespeare.lit'/></x></message>`);
  assertMatches(
    invitation!,
    parseXml(`<message from='${ROOM}' to='hecate@shakespeare.lit' id='i1'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='${ROOM}/firstwitch'><reason/></invite></x>
      <body>${ROOM}/firstwitch invited you to the room ${ROOM}</body></message>`),
  );
});

test("§7.8.3: a decline is relayed to the inviter with the decliner's bare JID", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  const declined = example("0045", "Invitee Declines Invitation");
  declined.getChild("x")!.getChild("decline")!.attrs.to = CRONE;
  const [relayed] = muc.send(declined);
  assertMatches(relayed!, example("0045", "Room Informs Invitor that Invitation Was Declined"));
});

test("only occupants may invite; visitors may not; a malformed invitee is jid-malformed", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  assertMatches(muc.send(withFrom(example("0045", "Occupant Sends a Mediated Invitation"), HAG))[0]!, errorOf("not-acceptable", "cancel"));
  assertMatches(
    muc.send(`<message from='${CRONE}' to='${ROOM}' id='x'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='a@@b'/></x></message>`)[0]!,
    errorOf("jid-malformed", "modify"),
  );
  muc.configure("coven", CRONE, { "muc#roomconfig_moderatedroom": "1" });
  muc.join("coven", "hag", HAG);
  if (muc.room("coven")!.occupants.get("hag")!.role === "visitor") {
    assertMatches(muc.send(`<message from='${HAG}' to='${ROOM}' id='v'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='hecate@shakespeare.lit'/></x></message>`)[0]!, errorOf("forbidden", "auth"));
  }
});

test("members-only: a mere member may not invite (example 135) unless allowinvites; an admin's invitee becomes a member", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  muc.configure("coven", CRONE, { "muc#roomconfig_membersonly": "1" });
  muc.affiliate("coven", "hag66@shakespeare.lit", { affiliation: "member" });
  muc.join("coven", "thirdwitch", HAG);
  const invite = `<message from='${HAG}' to='${ROOM}' id='C6E14DF6'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='hecate@shakespeare.lit'/></x></message>`;
  assertMatches(muc.send(invite)[0]!, errorOf("forbidden", "auth"));
  assert.equal(muc.room("coven")!.affiliations.has("hecate@shakespeare.lit"), false);

  const sent = muc.send(`<message from='${CRONE}' to='${ROOM}' id='i2'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='hecate@shakespeare.lit/broom'/></x></message>`);
  assert.equal(muc.room("coven")!.affiliations.get("hecate@shakespeare.lit")?.affiliation, "member");
  assert.equal(to(sent, "hecate@shakespeare.lit/broom").length, 1);
  assert.ok(muc.effects.some((e) => e.kind === "store" && e.write.op === "affiliation.set" && e.write.jid === "hecate@shakespeare.lit"));

  muc.configure("coven", CRONE, { "muc#roomconfig_allowinvites": "1" });
  const allowed = muc.send(invite.replace("hecate@", "macbeth@"));
  assert.equal(to(allowed, "macbeth@shakespeare.lit").length, 1);
});

test("other normal messages to the room are still refused", () => {
  const muc = new RoomDriver();
  muc.join("coven", "firstwitch", CRONE);
  assertMatches(muc.send(`<message from='${CRONE}' to='${ROOM}' id='n'><body>hi</body></message>`)[0]!, errorOf("bad-request", "modify"));
});
