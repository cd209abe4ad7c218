// Issue 15: a DMUC2 replica applies the input and flood limits to its own users' stanzas before it
// relays them to the primary (plugins/replica-limits.ts), with the same errors as for rooms here.
// Driven through the pure MucService: the gateway dmuc.oulubox.test serves the users of oulubox.test
// in wallops@channel.avalon.test, whose primary is on channel.avalon.test.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { DEFAULT_FLOOD_LIMITS } from "../../src/core/flood/limits.js";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";

const ROOM = "wallops@channel.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const LOCAL = "oulubox.test";
const RUBENRO = "rubenro@oulubox.test/shaver";
const MSA = "msa@oulubox.test/bicycle";
const DMUC = "urn:xmpp:tmp:dmuc:0";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const RATE = { ratePerSecond: 10, burst: 30 };

/** A replica with ROOM linked and RUBENRO in it as BigCheese (replicate, state, ENTER as the protocol goes). */
function linked(): RoomDriver {
  const d = new RoomDriver(REPLICA, [], { localDomain: LOCAL }, { ...RATE, maxBodyChars: 1000 });
  const check = to(d.send(`<iq type='set' id='r1' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='30' history='50'/></iq>`), LOCAL)[0]!;
  d.send(`<iq type='result' id='${check.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  d.send(`<iq type='set' id='s1' from='${ROOM}' to='${REPLICA}'><state xmlns='${DMUC}' last='true'><config whois='moderators' presencebroadcast='moderator participant visitor'/></state></iq>`);
  d.send(`<presence from='${ROOM}/BigCheese' to='${REPLICA}'><x xmlns='${MUC_USER}'><item affiliation='none' role='participant'/></x></presence>`);
  const [query] = d.send(`<iq type='set' id='e1' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${RUBENRO}' nick='BigCheese'/></iq>`);
  d.send(`<iq type='result' id='${query!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  assert.equal(d.state.dmuc.replicated.get(ROOM)?.local.get(RUBENRO), "BigCheese", "the user is in the replica's copy");
  return d;
}

/** What went to the primary: the stanzas submitted on the link. */
const submitted = (out: Element[]) => to(out, ROOM).flatMap((s) => s.getChild("submit", DMUC)?.getChildElements() ?? []);
const errorOf = (stanza: Element) => {
  const error = stanza.getChild("error")!;
  return `${error.attrs.type}/${error.getChildElements().find((c) => c.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas")!.name}`;
};

test("input limits: a message whose bodies together exceed the limit is refused from the room, not relayed", () => {
  const d = linked();
  const big = "x".repeat(600);
  const out = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='m1'><body>${big}</body><body xmlns='urn:example:other'>${big}</body></message>`);
  assert.deepEqual(submitted(out), []);
  assert.equal(out.length, 1);
  assertMatches(out[0]!, parseXml(`<message type='error' id='m1' from='${ROOM}' to='${RUBENRO}'><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
  // Two bodies in one language: not-acceptable, as for a room here.
  const [twice] = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='m2'><body>a</body><body>b</body></message>`);
  assert.equal(errorOf(twice!), "modify/not-acceptable");
  // Within the limits: relayed.
  assert.equal(submitted(d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='m3'><body>fine</body></message>`)).length, 1);
});

test("message flood: beyond DMUC_RATE_BURST the user's messages are refused wait/policy-violation and not relayed, audited once", () => {
  const d = linked();
  let relayed = 0;
  const refusals: Element[] = [];
  const audits: string[] = [];
  for (let i = 0; i < 60; i++) {
    const out = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='f${i}'><body>${i}</body></message>`);
    relayed += submitted(out).length;
    refusals.push(...out.filter((s) => s.attrs.type === "error"));
    audits.push(...d.effects.flatMap((e) => (e.kind === "audit" ? [e.record.kind] : [])));
  }
  assert.equal(relayed, RATE.burst, "the burst, then nothing (no time passed)");
  assert.ok(refusals.length > 0);
  for (const refusal of refusals) {
    assert.equal(errorOf(refusal), "wait/policy-violation");
    assert.equal(refusal.attrs.from, ROOM);
  }
  assert.deepEqual(audits, ["flood.refused"]);
  // The bucket refills: a second later, ten more pass.
  d.now = new Date(d.now.getTime() + 1_000);
  let later = 0;
  for (let i = 0; i < 20; i++) later += submitted(d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='g${i}'><body>${i}</body></message>`)).length;
  assert.equal(later, RATE.ratePerSecond);
});

test("entry flood: a session's entries beyond DMUC_JOIN_BURST are refused wait/policy-violation and not relayed", () => {
  const d = linked();
  let relayed = 0;
  const answers: Element[] = [];
  for (let i = 0; i < 30; i++) {
    const out = d.send(`<presence from='${MSA}' to='${ROOM}/nick${i}'><x xmlns='${MUC}'/></presence>`);
    relayed += submitted(out).length;
    answers.push(...out.filter((s) => s.attrs.type === "error"));
  }
  assert.equal(relayed, DEFAULT_FLOOD_LIMITS.joinBurst);
  // A presence flood is answered at most once a second.
  assert.equal(answers.length, 1);
  assert.equal(errorOf(answers[0]!), "wait/policy-violation");
});

test("presence updates beyond DMUC_PRESENCE_BURST are held, and the latest is relayed when the budget allows", () => {
  const d = linked();
  const relayed: Element[] = [];
  for (let i = 0; i < 12; i++) {
    relayed.push(...submitted(d.send(`<presence from='${RUBENRO}' to='${ROOM}/BigCheese'><status>s${i}</status></presence>`)));
  }
  assert.deepEqual(relayed.map((p) => p.getChildText("status")), ["s0", "s1", "s2", "s3", "s4"]);
  const released = submitted(d.advance(1_000));
  assert.deepEqual(released.map((p) => p.getChildText("status")), ["s11"], "only the latest, once");
  // An exit always goes through.
  assert.equal(submitted(d.send(`<presence from='${RUBENRO}' to='${ROOM}/BigCheese' type='unavailable'/>`)).length, 1);
});
