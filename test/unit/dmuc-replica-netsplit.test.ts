// DMUC2 replica, netsplit and netjoin (docs/PROTOCOL.md "Netsplit (XEP-0282 §Netsplit)", "Netjoin"), driven
// through the pure MucService: the gateway dmuc.oulubox.test serves rubenro and msa of oulubox.test in
// wallops@channel.avalon.test, whose primary (channel.avalon.test) becomes unreachable and comes back.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";
import { parseNetjoinAnswer } from "../../src/core/dmuc/wire.js";

const ROOM = "wallops@channel.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const LOCAL = "oulubox.test";
const RUBENRO = "rubenro@oulubox.test/shaver";
const MSA = "msa@oulubox.test/bicycle";
const DMUC = "urn:xmpp:tmp:dmuc:0";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const SID = "urn:xmpp:sid:0";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

const stores = (d: RoomDriver, op: string) => d.effects.flatMap((e) => (e.kind === "store" && e.write.op === op ? [e.write] : []));
const audits = (d: RoomDriver, kind: string) => d.effects.flatMap((e) => (e.kind === "audit" && e.record.kind === kind ? [e.record] : []));
const logged = (d: RoomDriver, event: string) => d.effects.some((e) => e.kind === "log" && e.event === event);
const room = (d: RoomDriver) => d.state.dmuc.replicated.get(ROOM)!;
const submissions = (out: Element[]) => to(out, ROOM).filter((s) => s.getChild("submit", DMUC));

function rosterPresence(nick: string, role: string, attrs = ""): string {
  return `<presence from='${ROOM}/${nick}' ${attrs}><x xmlns='${MUC_USER}'><item affiliation='none' role='${role}'/></x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-${nick}'/></presence>`;
}

type SplitPolicies = { splitAway?: boolean; splitEntry?: boolean };

/** A replica driver with the given split policies (DMUC_SPLIT_AWAY, DMUC_SPLIT_ENTRY), the rest default. */
function replicaDriver(policies: SplitPolicies = {}): RoomDriver {
  const links = { keepaliveSeconds: 60, linkTimeoutSeconds: 30, splitPingSeconds: 5, splitAway: true, trustPrimaryEnter: false, splitEntry: false, ...policies };
  return new RoomDriver(REPLICA, [], { localDomain: LOCAL }, { links });
}

/** A linked room: Wumpus (remote moderator), history q9X, subject; rubenro (BigCheese) and msa (Efchen) entered. */
function linked(config = "<config whois='moderators' presencebroadcast='moderator participant visitor'/>", options?: SplitPolicies): RoomDriver {
  const d = options ? replicaDriver(options) : new RoomDriver(REPLICA, [], { localDomain: LOCAL });
  const [check] = d.send(`<iq type='set' id='r1' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='60' history='50'/></iq>`);
  d.send(`<iq type='result' id='${check!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  d.send(`<iq type='set' id='s1' from='${ROOM}' to='${REPLICA}'><state xmlns='${DMUC}' last='true'>${config}
    ${rosterPresence("Wumpus", "moderator")}
    <message from='${ROOM}/Wumpus' type='groupchat'><body>Honest! He did!!</body><stanza-id xmlns='${SID}' by='${ROOM}' id='q9X'/><delay xmlns='urn:xmpp:delay' stamp='1990-01-23T19:50:01Z'/></message>
    <subject nick='Wumpus' stamp='1990-01-23T19:40:00Z'>The war</subject>
  </state></iq>`);
  for (const [i, [jid, nick]] of [[RUBENRO, "BigCheese"], [MSA, "Efchen"]].entries()) {
    d.send(rosterPresence(nick!, "participant").replace("<presence ", `<presence to='${REPLICA}' `));
    const [query] = d.send(`<iq type='set' id='e${i}' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${jid}' nick='${nick}'/></iq>`);
    d.send(`<iq type='result' id='${query!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  }
  assert.equal(room(d).local.size, 2);
  return d;
}

/** The primary's JID bounces: our server could not reach channel.avalon.test. */
function bounce(d: RoomDriver): Element[] {
  return d.send(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
}

function split(config?: string, options?: SplitPolicies): RoomDriver {
  const d = linked(config, options);
  bounce(d);
  assert.notEqual(room(d).splitSince, null);
  return d;
}

function netjoin(d: RoomDriver, id = "n1", body?: string, attrs = ""): Element[] {
  return d.send(
    `<iq type='set' id='${id}' from='${ROOM}' to='${REPLICA}'>` +
      (body ??
        `<netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z' ${attrs}>
        <config whois='moderators' presencebroadcast='moderator participant visitor'/>
        ${rosterPresence("BigCheese", "participant")}
        ${rosterPresence("Efchen", "participant")}
        ${rosterPresence("Phaedrus", "participant")}
        <message from='${ROOM}/Wumpus' type='groupchat'><body>Honest! He did!!</body><stanza-id xmlns='${SID}' by='${ROOM}' id='q9X'/><delay xmlns='urn:xmpp:delay' stamp='1990-01-23T19:50:01Z'/></message>
        <message from='${ROOM}/Wumpus' type='groupchat'><body>Anyone there?</body><stanza-id xmlns='${SID}' by='${ROOM}' id='m1'/><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='2026-01-01T00:00:10Z'/></message>
        <message from='${ROOM}/Phaedrus' type='groupchat'><body>Hello</body><stanza-id xmlns='${SID}' by='${ROOM}' id='m2'/><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='2026-01-01T00:00:20Z'/></message>
        <subject nick='Phaedrus' stamp='2026-01-01T00:00:30Z'>Peace</subject>
      </netjoin>`) +
      `</iq>`,
  );
}

test("netsplit: an error bounce from the room's JID marks the room split (logged, audited); nothing is relayed any more", () => {
  const d = linked();
  d.now = new Date(d.now.getTime() + 1000);
  const out = bounce(d);
  // Only the remote occupant's away presence goes out (splitAway, on by default).
  assert.deepEqual(out.map((s) => [s.attrs.to, s.attrs.from, s.getChildText("show")]).sort(), [[MSA, `${ROOM}/Wumpus`, "away"], [RUBENRO, `${ROOM}/Wumpus`, "away"]]);
  assert.equal(room(d).splitSince, d.now.getTime());
  assert.ok(logged(d, "dmuc.link_split"));
  assert.deepEqual(audits(d, "link.split").map((r) => [r.roomJid, r.details.reason, r.details.condition]), [[ROOM, "link bounce", "remote-server-not-found"]]);
  // A second bounce changes nothing.
  bounce(d);
  assert.equal(audits(d, "link.split").length, 0);
  // A presence bounce from room/nick splits too.
  const other = linked();
  other.send(`<presence type='error' from='${ROOM}/Wumpus' to='${REPLICA}'><error type='cancel'><remote-server-timeout xmlns='${STANZAS}'/></error></presence>`);
  assert.notEqual(room(other).splitSince, null);
  // Local chat is no longer submitted.
  const said = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>hello?</body></message>`);
  assert.equal(submissions(said).length, 0);
});

test("netsplit: a submission bounced by the room's server splits the room at once; the user gets no error, the others the message", () => {
  const d = linked();
  const [submitted] = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>hi</body></message>`);
  assert.ok(submitted!.getChild("submit", DMUC));
  // Some other error from the room (it refused something) is not a split.
  d.send(`<message type='error' from='${ROOM}' to='${REPLICA}' id='${submitted!.attrs.id}'><error type='cancel'><item-not-found xmlns='${STANZAS}'/></error></message>`);
  assert.equal(room(d).splitSince, null);
  const out = d.send(`<message type='error' from='${ROOM}' to='${REPLICA}' id='${submitted!.attrs.id}'><error type='wait'><remote-server-timeout xmlns='${STANZAS}'/></error></message>`);
  assert.notEqual(room(d).splitSince, null);
  assert.deepEqual(audits(d, "link.split").map((r) => r.details.condition), ["remote-server-timeout"]);
  // Local continuation: both local users get rubenro's message at once, from the room, with its origin-id.
  const chat = out.filter((s) => s.name === "message" && s.getChildText("body") === "hi");
  assert.deepEqual(chat.map((s) => s.attrs.to).sort(), [MSA, RUBENRO].sort());
  assert.equal(chat[0]!.attrs.from, `${ROOM}/BigCheese`);
  assert.equal(out.filter((s) => s.attrs.type === "error").length, 0, "no error reaches the user");
  // Kept on the link: sent again when the room is heard from, and not delivered again when it comes back.
  d.now = new Date(d.now.getTime() + 6_000);
  const heal = d.send(`<message from='${ROOM}' to='${REPLICA}'><link xmlns='${DMUC}'/></message>`);
  assert.equal(submissions(heal).length, 1);
  const originId = submissions(heal)[0]!.getChild("submit", DMUC)!.getChild("message")!.getChild("origin-id", SID)!.attrs.id;
  const echo = d.send(`<message type='groupchat' from='${ROOM}/BigCheese' to='${REPLICA}'><body>hi</body><origin-id xmlns='${SID}' id='${originId}'/><stanza-id xmlns='${SID}' by='${ROOM}' id='e1'/></message>`);
  assert.equal(echo.filter((s) => s.getChildText("body") === "hi").length, 0);
  assert.deepEqual(stores(d, "history.append").map((w) => w.op === "history.append" && w.entry.stanzaId), ["e1"]);
});

test("netsplit: a submission unacknowledged for 5 s splits the room; after 2 s it is sent again and delivered locally meanwhile", () => {
  const d = linked();
  d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>anyone?</body></message>`);
  d.now = new Date(d.now.getTime() + 2_000);
  const resent = d.tick();
  assert.equal(submissions(resent).length, 1, "sent again");
  assert.deepEqual(resent.filter((s) => s.getChildText("body") === "anyone?" && s.attrs.to !== ROOM).map((s) => s.attrs.to).sort(), [MSA, RUBENRO].sort(), "unacknowledged: delivered locally at once");
  d.now = new Date(d.now.getTime() + 2_999);
  d.tick();
  assert.equal(room(d).splitSince, null);
  d.now = new Date(d.now.getTime() + 1);
  const out = d.tick();
  assert.equal(room(d).splitSince, d.now.getTime());
  assert.equal(audits(d, "link.split")[0]!.details.reason, "link unacknowledged");
  assert.equal(out.filter((s) => s.getChildText("body") === "anyone?").length, 0, "not delivered twice");
  // Probed every 5 s at first, then less often.
  d.now = new Date(d.now.getTime() + 5_000);
  assert.equal(d.tick().filter((s) => s.getChild("link", DMUC)?.attrs.probe === "true").length, 1);
  d.now = new Date(d.now.getTime() + 5_000);
  assert.equal(d.tick().length, 0);
  d.now = new Date(d.now.getTime() + 5_000);
  assert.equal(d.tick().filter((s) => s.getChild("link", DMUC)?.attrs.probe === "true").length, 1);
});

test("netsplit: local groupchat is delivered locally from room/nick with an origin-id and no stanza-id, and queued", () => {
  const d = split();
  const out = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>Still here?</body><stanza-id xmlns='${SID}' by='${ROOM}' id='forged'/></message>`);
  assert.deepEqual(out.map((s) => s.attrs.to).sort(), [MSA, RUBENRO]);
  const originId = out[0]!.getChild("origin-id", SID)!.attrs.id;
  assert.ok(originId);
  for (const copy of out) {
    assertMatches(copy, parseXml(`<message type='groupchat' id='c1' from='${ROOM}/BigCheese'><body>Still here?</body><origin-id xmlns='${SID}' id='${originId}'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-BigCheese'/></message>`));
    assert.equal(copy.getChild("stanza-id", SID), undefined);
  }
  // A client's own origin-id is kept.
  const [own] = d.send(`<message from='${MSA}' to='${ROOM}' type='groupchat' id='c2'><body>Yes</body><origin-id xmlns='${SID}' id='mine'/></message>`);
  assert.deepEqual(own!.getChildren("origin-id", SID).map((o) => o.attrs.id), ["mine"]);
  const queue = room(d).splitQueue;
  assert.deepEqual(queue.map((q) => [q.session, q.stanza.getChild("origin-id", SID)!.attrs.id]), [[RUBENRO, originId], [MSA, "mine"]]);
  assert.equal(stores(d, "history.append").length, 0);
});

test("netsplit: presence changes and departures of local users are broadcast locally", () => {
  const d = split();
  const away = d.send(`<presence from='${RUBENRO}' to='${ROOM}/BigCheese'><show>away</show></presence>`);
  assert.deepEqual(away.map((s) => s.attrs.to).sort(), [MSA, RUBENRO]);
  assertMatches(to(away, MSA)[0]!, parseXml(`<presence from='${ROOM}/BigCheese'><show>away</show><x xmlns='${MUC_USER}'><item role='participant'/></x></presence>`));
  assert.deepEqual(to(away, RUBENRO)[0]!.getChild("x", MUC_USER)!.getChildren("status").map((s) => s.attrs.code), ["110"]);
  assert.equal(submissions(away).length, 0);

  const gone = d.send(`<presence from='${MSA}' to='${ROOM}/Efchen' type='unavailable'><status>bye</status></presence>`);
  assert.deepEqual(gone.filter((s) => s.name === "presence").map((s) => s.attrs.to).sort(), [MSA, RUBENRO]);
  assertMatches(to(gone, RUBENRO)[0]!, parseXml(`<presence type='unavailable' from='${ROOM}/Efchen'><status>bye</status><x xmlns='${MUC_USER}'><item role='none'/></x></presence>`));
  assert.ok(!room(d).local.has(MSA));
  assert.ok(!room(d).roster.has("Efchen"));
});

test("netsplit: private messages between local occupants are delivered locally; to remote occupants refused", () => {
  const d = split();
  const out = d.send(`<message from='${RUBENRO}' to='${ROOM}/Efchen' type='chat' id='p1'><body>psst</body></message>`);
  assert.equal(out.length, 1);
  assertMatches(out[0]!, parseXml(`<message type='chat' id='p1' from='${ROOM}/BigCheese' to='${MSA}'><body>psst</body><x xmlns='${MUC_USER}'/></message>`));
  const [refused] = d.send(`<message from='${RUBENRO}' to='${ROOM}/Wumpus' type='chat' id='p2'><body>psst</body></message>`);
  assertMatches(refused!, parseXml(`<message type='error' id='p2' from='${ROOM}/Wumpus' to='${RUBENRO}'><error type='wait'><recipient-unavailable xmlns='${STANZAS}'/></error></message>`));
  // IQs to the room wait for the primary.
  const [iq] = d.send(`<iq from='${RUBENRO}' to='${ROOM}' type='get' id='q1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
  assertMatches(iq!, parseXml(`<iq type='error' id='q1' from='${ROOM}' to='${RUBENRO}'><error type='wait'><recipient-unavailable xmlns='${STANZAS}'/></error></iq>`));
});

test("netsplit: entering during the split is refused with wait/service-unavailable 'netsplit'", () => {
  const d = split();
  const out = d.send(`<presence from='argl@oulubox.test/laptop' to='${ROOM}/Argl'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assert.equal(out.length, 1);
  assertMatches(out[0]!, parseXml(`<presence type='error' from='${ROOM}/Argl' to='argl@oulubox.test/laptop'><error type='wait'><service-unavailable xmlns='${STANZAS}'/><text xmlns='${STANZAS}'>netsplit</text></error></presence>`));
  assert.equal(submissions(out).length, 0);
  assert.ok(!room(d).roster.has("Argl"));
});

test("netsplit: with splitchat='false' local chat is refused to the sender", () => {
  const d = split("<config whois='moderators' presencebroadcast='moderator participant visitor' splitchat='false'/>");
  assert.equal(room(d).splitChat, false);
  const out = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>hello?</body></message>`);
  assert.equal(out.length, 1);
  assertMatches(out[0]!, parseXml(`<message type='error' id='c1' from='${ROOM}' to='${RUBENRO}'><error type='wait'><recipient-unavailable xmlns='${STANZAS}'/></error></message>`));
  assert.equal(room(d).splitQueue.length, 0);
  const [pm] = d.send(`<message from='${RUBENRO}' to='${ROOM}/Efchen' type='chat' id='p1'><body>psst</body></message>`);
  assert.equal(pm!.attrs.type, "error");
});

test("netsplit: a live broadcast arriving while split is processed, and the room stays split until the netjoin", () => {
  const d = split();
  const out = d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>back?</body><stanza-id xmlns='${SID}' by='${ROOM}' id='live1'/></message>`);
  assert.deepEqual(out.map((s) => s.attrs.to).sort(), [MSA, RUBENRO, ROOM].sort());
  assert.ok(to(out, ROOM)[0]!.getChild("resync", DMUC), "the room is there again: the replica asks for the netjoin");
  assert.equal(stores(d, "history.append").length, 1);
  assert.notEqual(room(d).splitSince, null);
});

test("netjoin: roster diff, missed messages once with their delay and stored, subject; the answer lists sessions; queued messages follow as submissions", () => {
  const d = split();
  const splitAt = d.now;
  const [said] = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>Still here?</body></message>`);
  const originId = said!.getChild("origin-id", SID)!.attrs.id!;
  d.now = new Date(d.now.getTime() + 60_000);

  const out = netjoin(d);
  for (const session of [RUBENRO, MSA]) {
    const got = to(out, session);
    // Wumpus is gone, Phaedrus is new; BigCheese and Efchen are unchanged.
    assertMatches(got[0]!, parseXml(`<presence type='unavailable' from='${ROOM}/Wumpus'><x xmlns='${MUC_USER}'><item role='none'/></x></presence>`));
    assertMatches(got[1]!, parseXml(`<presence from='${ROOM}/Phaedrus'><x xmlns='${MUC_USER}'><item role='participant'/></x></presence>`));
    // m1 and m2 as catch-up, in order, with the room's delay; q9X is not delivered again.
    assertMatches(got[2]!, parseXml(`<message type='groupchat' from='${ROOM}/Wumpus'><body>Anyone there?</body><stanza-id xmlns='${SID}' id='m1'/><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='2026-01-01T00:00:10.000Z'/></message>`));
    assertMatches(got[3]!, parseXml(`<message type='groupchat' from='${ROOM}/Phaedrus'><body>Hello</body><stanza-id xmlns='${SID}' id='m2'/><delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:20.000Z'/></message>`));
    assertMatches(got[4]!, parseXml(`<message type='groupchat' from='${ROOM}/Phaedrus'><subject>Peace</subject></message>`));
    assert.equal(got.length, 5);
  }
  assert.deepEqual(stores(d, "history.append").map((w) => w.op === "history.append" && w.entry.stanzaId), ["m1", "m2"]);
  const [answer] = to(out, ROOM);
  assertMatches(
    answer!,
    parseXml(`<iq type='result' id='n1' from='${REPLICA}' to='${ROOM}'><netjoin xmlns='${DMUC}'>
      <occupant jid='${RUBENRO}' nick='BigCheese'/>
      <occupant jid='${MSA}' nick='Efchen'/>
    </netjoin></iq>`),
  );
  assert.equal(answer!.getChild("netjoin", DMUC)!.getChildren("message").length, 0);
  assert.ok(out.indexOf(answer!) > out.indexOf(to(out, MSA)[4]!), "the answer comes after the catch-up");
  // What rubenro said during the split follows the answer on the link, numbered, with its own time.
  const [queued] = submissions(out);
  assertMatches(
    queued!,
    parseXml(`<message from='${REPLICA}' to='${ROOM}'><link xmlns='${DMUC}' seq='1'/><submit xmlns='${DMUC}' stamp='${splitAt.toISOString()}'>
      <message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>Still here?</body><origin-id xmlns='${SID}' id='${originId}'/></message>
    </submit></message>`),
  );
  assert.equal(submissions(out).length, 1);
  assert.ok(out.indexOf(queued!) > out.indexOf(answer!));
  // Kept until the primary acknowledges it: the split row became a numbered one.
  assert.equal(stores(d, "queue.split-taken").length, 1);
  assert.deepEqual(stores(d, "queue.add").map((w) => w.op === "queue.add" && w.seq), [1]);
  const healed = room(d);
  assert.equal(healed.splitSince, null);
  assert.equal(healed.splitQueue.length, 0);
  assert.deepEqual([...healed.roster.keys()].sort(), ["BigCheese", "Efchen", "Phaedrus"]);
  assert.equal(healed.subject?.text, "Peace");
  assert.ok(logged(d, "dmuc.link_healed"));
  assert.deepEqual(audits(d, "link.healed")[0]!.details, { wasSplit: true, received: 2, delivered: 2, sent: 1, occupants: 2, rosterChanges: 2 });

  // A repeated netjoin adds nothing twice and sends the users nothing.
  const again = netjoin(d, "n2");
  assert.equal(to(again, RUBENRO).length, 0);
  assert.equal(stores(d, "history.append").length, 0);
  assert.equal(submissions(again).filter((m) => m.getChild("link", DMUC)?.attrs.seq !== "1").length, 0);

  // Submitting resumes.
  const [submitted] = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c2'><body>ok</body></message>`);
  assert.ok(submitted!.getChild("submit", DMUC));
});

test("netjoin: the primary's broadcast of a message sent back is stored but not delivered again (echo), once", () => {
  const d = split();
  const [said] = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>Still here?</body></message>`);
  const originId = said!.getChild("origin-id", SID)!.attrs.id!;
  netjoin(d);
  const broadcast = (sid: string) =>
    d.send(`<message type='groupchat' from='${ROOM}/BigCheese' to='${REPLICA}' id='c1'>
      <body>Still here?</body><origin-id xmlns='${SID}' id='${originId}'/>
      <stanza-id xmlns='${SID}' by='${ROOM}' id='${sid}'/><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='2026-01-01T00:00:00Z'/>
    </message>`);
  assert.equal(broadcast("echo1").length, 0);
  assert.deepEqual(stores(d, "history.append").map((w) => w.op === "history.append" && w.entry.stanzaId), ["echo1"]);
  assert.equal(room(d).echoes.size, 0);
  // The origin-id is forgotten: a later message with it is delivered as usual.
  assert.equal(broadcast("echo2").length, 2);
});

test("netjoin: local presences changed during the split are kept and relayed; nicks that left here do not come back", () => {
  const d = split();
  d.send(`<presence from='${RUBENRO}' to='${ROOM}/BigCheese'><show>away</show></presence>`);
  d.send(`<presence from='${MSA}' to='${ROOM}/Efchen' type='unavailable'/>`);
  const out = netjoin(d);
  // rubenro does not see Efchen come back, nor its own old presence.
  const got = to(out, RUBENRO).filter((s) => s.name === "presence");
  assert.deepEqual(got.map((p) => p.attrs.from), [`${ROOM}/Wumpus`, `${ROOM}/Phaedrus`]);
  const answer = to(out, ROOM)[0]!.getChild("netjoin", DMUC)!;
  assert.deepEqual(answer.getChildren("occupant").map((o) => o.attrs.jid), [RUBENRO]);
  // After the answer, rubenro's away presence reaches the primary as if sent now (submitted on the link).
  const [submitted] = submissions(out);
  assertMatches(submitted!, parseXml(`<message from='${REPLICA}' to='${ROOM}'><submit xmlns='${DMUC}'><presence from='${RUBENRO}' to='${ROOM}/BigCheese'><show>away</show></presence></submit></message>`));
  assert.ok(out.indexOf(submitted!) > out.indexOf(to(out, ROOM)[0]!));
  assert.equal(room(d).roster.get("BigCheese")!.getChildText("show"), "away");
  assert.ok(!room(d).roster.has("Efchen"));
  // The primary's unavailable for Efchen (after our answer) tells rubenro nothing new.
  const late = d.send(rosterPresence("Efchen", "none", "type='unavailable'").replace("<presence ", `<presence to='${REPLICA}' `));
  assert.equal(late.length, 0);
});

test("netjoin: for a room we do not have, item-not-found; from an occupant JID, forbidden", () => {
  const d = new RoomDriver(REPLICA, [], { localDomain: LOCAL });
  const [missing] = netjoin(d);
  assertMatches(missing!, parseXml(`<iq type='error' id='n1' from='${REPLICA}' to='${ROOM}'><error type='cancel'><item-not-found xmlns='${STANZAS}'/></error></iq>`));
  const linkedRoom = linked();
  const [fromNick] = linkedRoom.send(`<iq type='set' id='n3' from='${ROOM}/Wumpus' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2026-01-01T00:00:00Z'/></iq>`);
  assertMatches(fromNick!, parseXml(`<iq type='error' id='n3'><error type='auth'><forbidden xmlns='${STANZAS}'/></error></iq>`));
  const [malformed] = linkedRoom.send(`<iq type='set' id='n4' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}'/></iq>`);
  assertMatches(malformed!, parseXml(`<iq type='error' id='n4'><error type='modify'><bad-request xmlns='${STANZAS}'/></error></iq>`));
});

test("netjoin: catchup='false' (users served directly meanwhile): the copy is brought up to date silently", () => {
  const d = split();
  d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>Still here?</body></message>`);
  const out = netjoin(d, "n1", undefined, "catchup='false'");
  assert.equal(to(out, RUBENRO).length, 0);
  assert.equal(to(out, MSA).length, 0);
  assert.deepEqual(stores(d, "history.append").map((w) => w.op === "history.append" && w.entry.stanzaId), ["m1", "m2"]);
  assert.deepEqual([...room(d).roster.keys()].sort(), ["BigCheese", "Efchen", "Phaedrus"]);
  assert.equal(room(d).subject?.text, "Peace");
  assert.equal(submissions(out).length, 1);
  assert.equal(room(d).splitSince, null);
});

test("netjoin: a message the primary served directly to some sessions while we were down goes to the others only", () => {
  const d = split();
  const healed = netjoin(
    d,
    "n2",
    `<netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>
      ${rosterPresence("BigCheese", "participant")}
      ${rosterPresence("Efchen", "participant")}
      <message from='${ROOM}/Wumpus' type='groupchat'><body>to both</body><stanza-id xmlns='${SID}' by='${ROOM}' id='d1'/><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='2026-01-01T00:00:10Z'/></message>
      <message from='${ROOM}/Wumpus' type='groupchat'><body>BigCheese had it</body><stanza-id xmlns='${SID}' by='${ROOM}' id='d2'/><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='2026-01-01T00:00:11Z'/></message>
      <served id='d2'><session jid='${RUBENRO}'/></served>
    </netjoin>`,
  );
  const bodies = (jid: string) => to(healed, jid).filter((s) => s.name === "message").map((s) => s.getChildText("body"));
  assert.deepEqual(bodies(RUBENRO), ["to both"]);
  assert.deepEqual(bodies(MSA), ["to both", "BigCheese had it"]);
  assert.deepEqual(stores(d, "history.append").map((w) => w.op === "history.append" && w.entry.stanzaId), ["d1", "d2"], "both stored");
});

test("netjoin: a roster presence that differs only in attribute order is not delivered again", () => {
  const d = split();
  const out = netjoin(
    d,
    "n1",
    `<netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>
      <presence from='${ROOM}/Wumpus'><x xmlns='${MUC_USER}'><item role='moderator' affiliation='none'/></x><occupant-id id='occ-Wumpus' xmlns='urn:xmpp:occupant-id:0'/></presence>
      ${rosterPresence("BigCheese", "participant")}
      ${rosterPresence("Efchen", "moderator")}
    </netjoin>`,
  );
  // Only Efchen's new role is news, then Wumpus, shown away since the split, is back.
  assert.deepEqual(to(out, RUBENRO).map((p) => p.attrs.from), [`${ROOM}/Efchen`, `${ROOM}/Wumpus`]);
  assert.deepEqual(to(out, MSA).map((p) => p.attrs.from), [`${ROOM}/Efchen`, `${ROOM}/Wumpus`]);
  assert.equal(to(out, MSA)[1]!.getChild("show"), undefined);
  assert.deepEqual(to(out, MSA)[0]!.getChild("x", MUC_USER)!.getChildren("status").map((s) => s.attrs.code), ["110"]);
});

// ---------------------------------------------------------------------------------------------------
// Away, local kicks, local entry (issue 5)

const ARGL = "argl@oulubox.test/laptop";
const KEEP_ROSTER = `<netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>
  ${rosterPresence("Wumpus", "moderator")}
  ${rosterPresence("BigCheese", "participant")}
  ${rosterPresence("Efchen", "participant")}
</netjoin>`;

test("netsplit away: remote occupants are shown away to local users per viewer (no 110); their real presence comes back after the netjoin's diff", () => {
  const d = linked("<config whois='anyone' presencebroadcast='moderator participant visitor'/>");
  d.send(rosterPresence("Wumpus", "moderator").replace("<item ", "<item jid='wiz@avalon.test/x' ").replace("<presence ", `<presence to='${REPLICA}' `).replace("</presence>", "<show>chat</show><status>here</status></presence>"));
  const out = bounce(d);
  assert.equal(out.length, 2);
  for (const session of [RUBENRO, MSA]) {
    const [away] = to(out, session);
    assertMatches(away!, parseXml(`<presence from='${ROOM}/Wumpus'><show>away</show><status>Netsplit: this server cannot be reached</status><x xmlns='${MUC_USER}'><item role='moderator' jid='wiz@avalon.test/x'/></x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-Wumpus'/></presence>`));
    assert.equal(away!.getChildren("show").length, 1);
    assert.equal(away!.getChildren("status").length, 1);
    assert.equal(away!.getChild("x", MUC_USER)!.getChildren("status").length, 0);
  }
  // The roster keeps the real presence; after the netjoin (Wumpus unchanged), it is sent again.
  assert.equal(room(d).roster.get("Wumpus")!.getChildText("show"), "chat");
  const healed = netjoin(d, "n1", KEEP_ROSTER.replace("<item ", "<item jid='wiz@avalon.test/x' ").replace(`id='occ-Wumpus'/>`, `id='occ-Wumpus'/><show>chat</show><status>here</status>`));
  for (const session of [RUBENRO, MSA]) {
    const got = to(healed, session);
    assert.equal(got.length, 1);
    assertMatches(got[0]!, parseXml(`<presence from='${ROOM}/Wumpus'><show>chat</show><status>here</status></presence>`));
  }
  assert.ok(healed.indexOf(to(healed, MSA)[0]!) < healed.indexOf(to(healed, ROOM)[0]!), "before the answer");
  assert.equal(room(d).splitAway, undefined);
  // A nick gone at netjoin is only announced unavailable (by the diff).
  const gone = split();
  const out2 = netjoin(gone);
  assert.deepEqual(to(out2, RUBENRO).filter((p) => p.name === "presence" && p.attrs.from === `${ROOM}/Wumpus`).map((p) => p.attrs.type), ["unavailable"]);
});

test("netsplit away: with splitAway false nobody is shown away, and nothing is sent again at netjoin", () => {
  const d = linked(undefined, { splitAway: false });
  assert.equal(bounce(d).length, 0);
  assert.notEqual(room(d).splitSince, null);
  const out = netjoin(d, "n1", KEEP_ROSTER);
  assert.equal(to(out, RUBENRO).length, 0);
  // A ping left unanswered splits silently too.
  const t = linked(undefined, { splitAway: false });
  t.now = new Date(t.now.getTime() + 60_000);
  t.tick();
  t.now = new Date(t.now.getTime() + 30_000);
  assert.equal(t.tick().filter((s) => s.name === "presence").length, 0);
  assert.notEqual(room(t).splitSince, null);
});

function kick(d: RoomDriver, from: string, nick: string, reason = "flooding", id = "k1"): Element[] {
  return d.send(`<iq from='${from}' to='${ROOM}' type='set' id='${id}'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='${nick}' role='none'><reason>${reason}</reason></item></query></iq>`);
}

/** Split, with rubenro (BigCheese) a moderator. */
function splitWithModerator(): RoomDriver {
  const d = linked();
  d.send(rosterPresence("BigCheese", "moderator").replace("<presence ", `<presence to='${REPLICA}' `));
  bounce(d);
  return d;
}

test("netsplit kick: a local moderator kicks a local occupant: 307 (+110 for the kicked), result, roster updated, kick in the netjoin answer", () => {
  const d = splitWithModerator();
  const out = kick(d, RUBENRO, "Efchen");
  assertMatches(to(out, MSA)[0]!, parseXml(`<presence type='unavailable' from='${ROOM}/Efchen'><x xmlns='${MUC_USER}'><item affiliation='none' role='none' jid='${MSA}'><actor nick='BigCheese'/><reason>flooding</reason></item><status code='307'/><status code='110'/></x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-Efchen'/></presence>`));
  const [seen, result] = to(out, RUBENRO);
  assertMatches(seen!, parseXml(`<presence type='unavailable' from='${ROOM}/Efchen'><x xmlns='${MUC_USER}'><item role='none'><actor nick='BigCheese'/><reason>flooding</reason></item><status code='307'/></x></presence>`));
  assert.deepEqual(seen!.getChild("x", MUC_USER)!.getChildren("status").map((s) => s.attrs.code), ["307"]);
  assertMatches(result!, parseXml(`<iq type='result' id='k1' from='${ROOM}' to='${RUBENRO}'/>`));
  assert.ok(!room(d).local.has(MSA));
  assert.ok(!room(d).roster.has("Efchen"));
  assert.equal(audits(d, "dmuc.split_kick").length, 1);
  // msa's stanzas are no longer served as an occupant's.
  const [refused] = d.send(`<message from='${MSA}' to='${ROOM}' type='groupchat' id='c1'><body>hey</body></message>`);
  assert.equal(refused!.attrs.type, "error");

  const healed = netjoin(d);
  const answer = to(healed, ROOM)[0]!.getChild("netjoin", DMUC)!;
  assertMatches(answer, parseXml(`<netjoin xmlns='${DMUC}'><occupant jid='${RUBENRO}' nick='BigCheese'/><kick jid='${MSA}' nick='Efchen' actor='${RUBENRO}'>flooding</kick></netjoin>`));
  assert.deepEqual(answer.getChildren("occupant").map((o) => o.attrs.jid), [RUBENRO]);
  assert.deepEqual(parseNetjoinAnswer(answer)!.kicks, [{ jid: MSA, nick: "Efchen", actor: RUBENRO, reason: "flooding" }]);
  // Efchen, still in the primary's roster, is not taken back; the kick record is gone after the netjoin.
  assert.ok(!room(d).roster.has("Efchen"));
  assert.equal(room(d).splitKicks, undefined);
  assert.deepEqual(parseNetjoinAnswer(to(netjoin(d, "n2"), ROOM)[0]!.getChild("netjoin", DMUC))!.kicks, []);
});

test("netsplit kick: by a non-moderator forbidden; of a remote occupant not-allowed; of an unknown nick item-not-found; other admin IQs wait", () => {
  const d = splitWithModerator();
  assertMatches(kick(d, MSA, "BigCheese")[0]!, parseXml(`<iq type='error' id='k1' from='${ROOM}' to='${MSA}'><error type='auth'><forbidden xmlns='${STANZAS}'/></error></iq>`));
  const [across] = kick(d, RUBENRO, "Wumpus");
  assertMatches(across!, parseXml(`<iq type='error' id='k1' from='${ROOM}' to='${RUBENRO}'><error type='cancel'><not-allowed xmlns='${STANZAS}'/><text xmlns='${STANZAS}'>cannot kick across a netsplit</text></error></iq>`));
  assertMatches(kick(d, RUBENRO, "Nobody")[0]!, parseXml(`<iq type='error' id='k1'><error type='cancel'><item-not-found xmlns='${STANZAS}'/></error></iq>`));
  const [ban] = d.send(`<iq from='${RUBENRO}' to='${ROOM}' type='set' id='b1'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='msa@oulubox.test' affiliation='outcast'/></query></iq>`);
  assertMatches(ban!, parseXml(`<iq type='error' id='b1'><error type='wait'><recipient-unavailable xmlns='${STANZAS}'/></error></iq>`));
  assert.deepEqual([...room(d).local.keys()].sort(), [MSA, RUBENRO]);
  assert.equal(room(d).splitKicks?.length, 0);
});

function enter(d: RoomDriver, nick: string, extra = "<history maxstanzas='1'/>", from = ARGL): Element[] {
  return d.send(`<presence from='${from}' to='${ROOM}/${nick}'><show>dnd</show><x xmlns='http://jabber.org/protocol/muc'>${extra}</x></presence>`);
}

test("netsplit entry (splitEntry): a local user enters provisionally: roster (remote ones away), own presence with 110, history, subject; others see it", () => {
  const d = split(undefined, { splitEntry: true });
  const out = enter(d, "Argl");
  const got = to(out, ARGL);
  assert.deepEqual(got.map((s) => s.attrs.from), [`${ROOM}/Wumpus`, `${ROOM}/BigCheese`, `${ROOM}/Efchen`, `${ROOM}/Argl`, `${ROOM}/Wumpus`, `${ROOM}/Wumpus`]);
  assert.equal(got[0]!.getChildText("show"), "away");
  assertMatches(got[3]!, parseXml(`<presence from='${ROOM}/Argl'><show>dnd</show><x xmlns='${MUC_USER}'><item affiliation='none' role='participant' jid='${ARGL}'/><status code='110'/></x></presence>`));
  assertMatches(got[4]!, parseXml(`<message type='groupchat' from='${ROOM}/Wumpus'><body>Honest! He did!!</body></message>`));
  assertMatches(got[5]!, parseXml(`<message type='groupchat'><subject>The war</subject></message>`));
  for (const session of [RUBENRO, MSA]) {
    const [seen] = to(out, session);
    assertMatches(seen!, parseXml(`<presence from='${ROOM}/Argl'><show>dnd</show><x xmlns='${MUC_USER}'><item affiliation='none' role='participant'/></x></presence>`));
    assert.equal(seen!.getChild("x", MUC_USER)!.getChild("item")!.attrs.jid, undefined);
  }
  assert.equal(room(d).local.get(ARGL), "Argl");
  assert.ok(room(d).splitEntered?.has("Argl"));
  // The new occupant chats like any local one.
  assert.equal(d.send(`<message from='${ARGL}' to='${ROOM}' type='groupchat' id='c1'><body>hi</body></message>`).length, 3);
  // A taken nick: conflict.
  const [conflict] = enter(d, "Wumpus", "", "other@oulubox.test/r");
  assertMatches(conflict!, parseXml(`<presence type='error' from='${ROOM}/Wumpus' to='other@oulubox.test/r'><error type='cancel'><conflict xmlns='${STANZAS}'/></error></presence>`));
  // Without <x muc/>: refused as before.
  const [plain] = d.send(`<presence from='other@oulubox.test/r' to='${ROOM}/Other'/>`);
  assertMatches(plain!, parseXml(`<presence type='error'><error type='wait'><service-unavailable xmlns='${STANZAS}'/></error></presence>`));

  // Netjoin: Argl is kept (not announced gone) and listed in the answer; its presence is not relayed.
  d.send(`<presence from='${ARGL}' to='${ROOM}/Argl'><show>xa</show></presence>`);
  const healed = netjoin(d, "n1", KEEP_ROSTER);
  assert.equal(to(healed, ARGL).filter((p) => p.attrs.type === "unavailable").length, 0);
  assert.ok(!healed.some((s) => s.attrs.from === `${ROOM}/Argl` && s.attrs.type === "unavailable"));
  const answer = parseNetjoinAnswer(to(healed, ROOM)[0]!.getChild("netjoin", DMUC))!;
  assert.deepEqual(answer.occupants, [{ jid: RUBENRO, nick: "BigCheese" }, { jid: MSA, nick: "Efchen" }, { jid: ARGL, nick: "Argl" }]);
  // Its split-time message is submitted after the answer; its presence is not.
  assert.deepEqual(submissions(healed).map((m) => m.getChild("submit", DMUC)!.getChildElements()[0]!.name), ["message"]);
  assert.ok(room(d).roster.has("Argl"));
  assert.equal(room(d).splitEntered, undefined);
  // The primary does not admit it: its LEAVE is delivered as usual.
  const left = d.send(`<iq type='set' id='l1' from='${ROOM}' to='${REPLICA}'><leave xmlns='${DMUC}' jid='${ARGL}'><presence type='unavailable' from='${ROOM}/Argl'><x xmlns='${MUC_USER}'><item affiliation='none' role='none'/><status code='110'/></x></presence></leave></iq>`);
  assert.equal(to(left, ARGL)[0]!.attrs.type, "unavailable");
  assert.ok(!room(d).local.has(ARGL));
});

test("netsplit entry: the nick taken at the primary meanwhile: the provisional occupant leaves at netjoin and is not in the answer", () => {
  const d = split(undefined, { splitEntry: true });
  enter(d, "Argl");
  const healed = netjoin(d, "n1", KEEP_ROSTER.replace("</netjoin>", `${rosterPresence("Argl", "participant")}</netjoin>`));
  const [gone] = to(healed, ARGL);
  assertMatches(gone!, parseXml(`<presence type='unavailable' from='${ROOM}/Argl'><x xmlns='${MUC_USER}'><item role='none'/><status code='110'/></x></presence>`));
  const answer = parseNetjoinAnswer(to(healed, ROOM)[0]!.getChild("netjoin", DMUC))!;
  assert.deepEqual(answer.occupants.map((o) => o.jid), [RUBENRO, MSA]);
  // The others see the primary's Argl.
  assert.equal(to(healed, RUBENRO).filter((p) => p.attrs.from === `${ROOM}/Argl`).length, 1);
  assert.ok(!room(d).local.has(ARGL));
});

test("netsplit entry: off by default (and when splitEntry is false) entering is refused", () => {
  const d = split(undefined, { splitEntry: false });
  const [refused] = enter(d, "Argl");
  assertMatches(refused!, parseXml(`<presence type='error' from='${ROOM}/Argl' to='${ARGL}'><error type='wait'><service-unavailable xmlns='${STANZAS}'/><text xmlns='${STANZAS}'>netsplit</text></error></presence>`));
  assert.ok(!room(d).local.has(ARGL));
});

test("wire: the netjoin answer's <kick/>s parse (reason optional); a kick with a bare JID is malformed", () => {
  const parse = (kicks: string) => parseNetjoinAnswer(parseXml(`<netjoin xmlns='${DMUC}'><occupant jid='${RUBENRO}' nick='BigCheese'/>${kicks}</netjoin>`));
  assert.deepEqual(parse(`<kick jid='${MSA}' nick='Efchen' actor='${RUBENRO}'/>`)!.kicks, [{ jid: MSA, nick: "Efchen", actor: RUBENRO }]);
  assert.deepEqual(parse("")!.kicks, []);
  assert.equal(parse(`<kick jid='msa@oulubox.test' nick='Efchen' actor='${RUBENRO}'>x</kick>`), null);
  assert.equal(parse(`<kick jid='${MSA}' nick='' actor='${RUBENRO}'/>`), null);
});
