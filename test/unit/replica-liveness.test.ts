// Liveness of the sessions a DMUC2 replica serves (issue 10): the replica dmuc.oulubox.test verifies
// its local users in wallops@channel.avalon.test as a room verifies its occupants (XEP-0199 pings after
// each (re)connection and once per interval, src/core/liveness.ts), from its own address; a session that
// is gone is reported to the primary, on the link, as the bounce it amounts to; the primary removes it
// (status 333) and sends <leave/>, as for any occupant that bounces.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";
import { parseSubmit } from "../../src/core/dmuc/wire.js";

const ROOM = "wallops@channel.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const LOCAL = "oulubox.test";
const RUBENRO = "rubenro@oulubox.test/shaver";
const MSA = "msa@oulubox.test/bicycle";
const DMUC = "urn:xmpp:tmp:dmuc:0";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const PING = "urn:xmpp:ping";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

function rosterPresence(nick: string, role: string): string {
  return `<presence from='${ROOM}/${nick}'><x xmlns='${MUC_USER}'><item affiliation='none' role='${role}'/></x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-${nick}'/></presence>`;
}

/** The replica with a linked room where rubenro (BigCheese) and msa (Efchen) entered through it. */
function linked(occupantPingSeconds?: number): RoomDriver {
  const d = new RoomDriver(REPLICA, [], { localDomain: LOCAL }, occupantPingSeconds === undefined ? {} : { occupantPingSeconds });
  const [check] = d.send(`<iq type='set' id='r1' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='60' history='20'/></iq>`);
  d.send(`<iq type='result' id='${check!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  d.send(`<iq type='set' id='s1' from='${ROOM}' to='${REPLICA}'><state xmlns='${DMUC}' last='true'><config whois='moderators'/>${rosterPresence("Wumpus", "moderator")}</state></iq>`);
  for (const [i, [jid, nick]] of [[RUBENRO, "BigCheese"], [MSA, "Efchen"]].entries()) {
    d.send(rosterPresence(nick!, "participant").replace("<presence ", `<presence to='${REPLICA}' `));
    const [query] = d.send(`<iq type='set' id='e${i}' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${jid}' nick='${nick}'/></iq>`);
    d.send(`<iq type='result' id='${query!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  }
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.local.size, 2);
  return d;
}

/** The component (re)connected; the checks go out with the next tick. */
function reconnected(d: RoomDriver): Element[] {
  return [...d.online(), ...d.tick()];
}

const pings = (out: Element[]) => out.filter((s) => s.name === "iq" && s.getChild("ping", PING));
/** The stanzas submitted to the primary on the link. */
const submitted = (out: Element[]) => to(out, ROOM).flatMap((s) => (s.getChild("submit", DMUC) ? [parseSubmit(s)!.stanza] : []));

test("replica liveness: after connecting, the replica pings each session it serves from its own address", () => {
  const d = linked();
  const out = reconnected(d);
  assert.deepEqual(pings(out).map((p) => [p.attrs.from, p.attrs.to, p.attrs.type]).sort(), [[REPLICA, MSA, "get"], [REPLICA, RUBENRO, "get"]]);
  assert.deepEqual(submitted(out), [], "nothing goes to the primary for a check");
});

test("replica liveness: a session whose server says it is gone is reported to the primary as its bounce; the others stay", () => {
  const d = linked();
  const sent = pings(reconnected(d));
  const ping = (jid: string) => sent.find((p) => p.attrs.to === jid)!;
  assert.deepEqual(d.send(`<iq type='result' id='${ping(RUBENRO).attrs.id}' from='${RUBENRO}' to='${REPLICA}'/>`), []);
  const out = d.send(`<iq type='error' id='${ping(MSA).attrs.id}' from='${MSA}' to='${REPLICA}'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></iq>`);
  const [bounce, ...more] = submitted(out);
  assert.equal(more.length, 0);
  assertMatches(bounce!, parseXml(`<presence type='error' from='${MSA}' to='${ROOM}'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></presence>`));
  // The primary decides: until its <leave/>, the session is still served.
  assert.ok(d.state.dmuc.replicated.get(ROOM)!.local.has(MSA));
  d.send(`<iq type='set' id='l1' from='${ROOM}' to='${REPLICA}'><leave xmlns='${DMUC}' jid='${MSA}'><presence type='unavailable' from='${ROOM}/Efchen'><x xmlns='${MUC_USER}'><item affiliation='none' role='none'/><status code='110'/><status code='333'/></x></presence></leave></iq>`);
  assert.deepEqual([...d.state.dmuc.replicated.get(ROOM)!.local.keys()], [RUBENRO]);
  // An answer that does not mean "gone" (a client without ping support of another kind) keeps the session.
  const again = pings(reconnected(d)).find((p) => p.attrs.to === RUBENRO)!;
  assert.deepEqual(submitted(d.send(`<iq type='error' id='${again.attrs.id}' from='${RUBENRO}' to='${REPLICA}'><error type='cancel'><feature-not-implemented xmlns='${STANZAS}'/></error></iq>`)), []);
});

test("replica liveness: a ping unanswered for 60 s reports the session with remote-server-timeout", () => {
  const d = linked();
  const sent = pings(reconnected(d));
  const rubenro = sent.find((p) => p.attrs.to === RUBENRO)!;
  d.send(`<iq type='result' id='${rubenro.attrs.id}' from='${RUBENRO}' to='${REPLICA}'/>`);
  assert.deepEqual(submitted(d.advance(59_000)).filter((s) => s.name === "presence"), []);
  const reported = submitted(d.advance(2_000)).filter((s) => s.name === "presence");
  assert.equal(reported.length, 1);
  assertMatches(reported[0]!, parseXml(`<presence type='error' from='${MSA}' to='${ROOM}'><error type='cancel'><remote-server-timeout xmlns='${STANZAS}'/></error></presence>`));
});

test("replica liveness: each served session is pinged once per interval", () => {
  const d = linked(30);
  const answer = (out: Element[]) => {
    for (const p of pings(out)) d.send(`<iq type='result' id='${p.attrs.id}' from='${p.attrs.to}' to='${REPLICA}'/>`);
    return pings(out).map((p) => p.attrs.to).sort();
  };
  assert.deepEqual(answer(reconnected(d)), [MSA, RUBENRO]);
  const seen: string[] = [];
  for (let s = 1; s < 31; s++) seen.push(...answer(d.advance(1000)));
  assert.deepEqual(seen.sort(), [MSA, RUBENRO]);
});

test("replica liveness: while the room is split, a gone session leaves the replica's room, and the netjoin answer no longer lists it", () => {
  const d = linked();
  // The primary's server bounces: the replica serves the room alone until the netjoin.
  d.send(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
  assert.notEqual(d.state.dmuc.replicated.get(ROOM)!.splitSince, null);
  const sent = pings(reconnected(d));
  assert.deepEqual(sent.map((p) => p.attrs.to).sort(), [MSA, RUBENRO]);
  d.send(`<iq type='result' id='${sent.find((p) => p.attrs.to === RUBENRO)!.attrs.id}' from='${RUBENRO}' to='${REPLICA}'/>`);
  const out = d.send(`<iq type='error' id='${sent.find((p) => p.attrs.to === MSA)!.attrs.id}' from='${MSA}' to='${REPLICA}'><error type='cancel'><service-unavailable xmlns='${STANZAS}'/></error></iq>`);
  assert.deepEqual(submitted(out), [], "nothing to the primary during the split");
  const [left] = to(out, RUBENRO);
  assertMatches(left!, parseXml(`<presence type='unavailable' from='${ROOM}/Efchen'/>`));
  assert.deepEqual([...d.state.dmuc.replicated.get(ROOM)!.local.keys()], [RUBENRO]);
  // The primary's netjoin: the answer lists the replica's occupants, without Efchen.
  const [answer] = d.send(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'><config whois='moderators'/>${rosterPresence("Wumpus", "moderator")}${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`).filter((s) => s.name === "iq");
  const listed = answer!.getChild("netjoin", DMUC)!.getChildren("occupant").map((o) => o.attrs.jid);
  assert.deepEqual(listed, [RUBENRO]);
});
