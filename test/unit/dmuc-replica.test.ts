// DMUC2 replica role (docs/PROTOCOL.md "DMUC2 (XEP-0282): the wire protocol"), driven through the pure
// MucService with stanzas shaped like the protocol's examples: the gateway dmuc.oulubox.test serves the
// users of oulubox.test in wallops@channel.avalon.test, whose primary is on channel.avalon.test.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { MAX_ROOMS_PER_DOMAIN } from "../../src/core/dmuc/replica-replicate.js";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";

const ROOM = "wallops@channel.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const LOCAL = "oulubox.test";
const RUBENRO = "rubenro@oulubox.test/shaver";
const MSA = "msa@oulubox.test/bicycle";
const DMUC = "urn:xmpp:tmp:dmuc:0";
const MUC_USER = "http://jabber.org/protocol/muc#user";

function replica(): RoomDriver {
  return new RoomDriver(REPLICA, [], { localDomain: LOCAL });
}

const refusals = (d: RoomDriver) => d.effects.filter((e) => e.kind === "audit" && e.record.kind === "dmuc.refused");
const stores = (d: RoomDriver, op: string) => d.effects.flatMap((e) => (e.kind === "store" && e.write.op === op ? [e.write] : []));
const forbidden = (id: string, toJid: string) =>
  parseXml(`<iq type='error' id='${id}' from='${REPLICA}' to='${toJid}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
const items = (presence: Element) => presence.getChild("x", MUC_USER)!.getChildren("item");
const codes = (presence: Element) => presence.getChild("x", MUC_USER)!.getChildren("status").map((s) => s.attrs.code);

/** The primary's <replicate/>; the server module's check that a local user is in the room is answered `present`. */
function replicate(d: RoomDriver, from = ROOM, domain = LOCAL, present = "true"): Element[] {
  const out = d.send(`<iq type='set' id='r1' from='${from}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${domain}' keepalive='5' history='500'/></iq>`);
  const check = to(out, LOCAL).find((s) => s.getChild("directed", DMUC));
  if (!check) return out;
  assert.equal(check.getChild("directed", DMUC)!.attrs.jid, undefined, "asks about any session of the server");
  assert.equal(check.getChild("directed", DMUC)!.attrs.room, bareOf(from));
  return d.send(`<iq type='result' id='${check.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='${present}'/></iq>`);
}

const bareOf = (jid: string) => jid.split("/")[0]!;

/** The protocol's <state/> example: Wumpus (moderator, real JID shown), one history message, the subject. */
function sendState(d: RoomDriver, from = ROOM): Element[] {
  return d.send(`<iq type='set' id='s1' from='${from}' to='${REPLICA}'>
    <state xmlns='${DMUC}' last='true'>
      <config whois='moderators' presencebroadcast='moderator participant visitor'/>
      <presence from='${ROOM}/Wumpus'>
        <x xmlns='${MUC_USER}'><item affiliation='owner' role='moderator' jid='argl@killrc.oulubox.irc/laptop'/></x>
        <occupant-id xmlns='urn:xmpp:occupant-id:0' id='kdl3-a'/>
      </presence>
      <message from='${ROOM}/Wumpus' type='groupchat'>
        <body>Honest! He did!!</body>
        <stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='q9X'/>
        <delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='1990-01-23T19:50:01Z'/>
      </message>
      <subject nick='Wumpus' stamp='1990-01-23T19:40:00Z'>The war</subject>
    </state>
  </iq>`);
}

/** The primary broadcasts an occupant's presence to the replica. */
function presenceBroadcast(d: RoomDriver, nick: string, role: string, attrs = "", extra = ""): Element[] {
  return d.send(
    `<presence from='${ROOM}/${nick}' to='${REPLICA}' ${attrs}><x xmlns='${MUC_USER}'><item affiliation='none' role='${role}' jid='x@elsewhere.test/${nick}'/>${extra}</x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-${nick}'/></presence>`,
  );
}

function enter(d: RoomDriver, jid: string, nick: string, id = "e1", extra = "<history xmlns='http://jabber.org/protocol/muc' maxstanzas='20'/><status code='201'/>"): Element[] {
  return d.send(`<iq type='set' id='${id}' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${jid}' nick='${nick}'>${extra}</enter></iq>`);
}

function answerDirected(d: RoomDriver, query: Element, present: boolean): Element[] {
  return d.send(`<iq type='result' id='${query.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='${present}'/></iq>`);
}

/** A linked room with its state and `users` entered (each: presence broadcast, ENTER, module says yes). */
function linked(users: { jid: string; nick: string; role: string }[] = []): RoomDriver {
  const d = replica();
  replicate(d);
  sendState(d);
  users.forEach((u, i) => {
    presenceBroadcast(d, u.nick, u.role);
    const [query] = enter(d, u.jid, u.nick, `e${i}`);
    answerDirected(d, query!, true);
  });
  return d;
}

test("replicate: accepted for our own domain, with our keepalive minimum and history maximum", () => {
  const d = replica();
  const [reply] = replicate(d);
  assertMatches(reply!, parseXml(`<iq type='result' id='r1' from='${REPLICA}' to='${ROOM}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='10' history='50'/></iq>`));
  const room = d.state.dmuc.replicated.get(ROOM);
  assert.equal(room?.primaryJid, ROOM);
  assert.equal(room?.keepaliveSeconds, 10);
  assert.deepEqual(stores(d, "replica.save").map((w) => w.roomJid), [ROOM]);
  assert.ok(d.effects.some((e) => e.kind === "audit" && e.record.kind === "dmuc.replica_linked"));
});

test("replicate: a domain not ours is forbidden, logged and audited", () => {
  const d = replica();
  const [reply] = replicate(d, ROOM, "yeggmaex.test");
  assertMatches(reply!, forbidden("r1", ROOM));
  assert.equal(d.state.dmuc.replicated.size, 0);
  assert.equal(refusals(d).length, 1);
  assert.ok(d.effects.some((e) => e.kind === "log" && e.event === "dmuc.refused"));
});

test("replicate: only for a room one of our users has entered, as the server module says; bounded per remote domain", () => {
  const d = replica();
  const [refused] = replicate(d, ROOM, LOCAL, "false");
  assertMatches(refused!, forbidden("r1", ROOM));
  assert.equal(d.state.dmuc.replicated.size, 0);
  // A module that does not know the question (no mod_dmuc_replica): refused unless primaries are trusted.
  const [query] = to(d.send(`<iq type='set' id='r2' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='60' history='5'/></iq>`), LOCAL);
  const [noModule] = d.send(`<iq type='error' id='${query!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  assertMatches(noModule!, forbidden("r2", ROOM));
  // No answer at all: refused after a while.
  d.send(`<iq type='set' id='r3' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='60' history='5'/></iq>`);
  d.now = new Date(d.now.getTime() + 3_000);
  assertMatches(to(d.tick(), ROOM)[0]!, forbidden("r3", ROOM));
  assert.equal(d.state.dmuc.replicated.size, 0);
  // One remote domain may not fill the replica with rooms.
  for (let i = 0; i < MAX_ROOMS_PER_DOMAIN; i++) replicate(d, `room${i}@channel.mallory.test`);
  assert.equal(d.state.dmuc.replicated.size, MAX_ROOMS_PER_DOMAIN);
  const [bounded] = d.send(`<iq type='set' id='r4' from='one-more@channel.mallory.test' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='60' history='5'/></iq>`);
  assertMatches(bounded!, parseXml(`<iq type='error' id='r4'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  const [other] = replicate(d, ROOM);
  assert.equal(other!.attrs.type, "result", "other domains are not held back");
});

test("disco#info of the service advertises the dmuc feature; the replica identity only on the dmuc node, where only peers look", () => {
  const d = replica();
  const [reply] = d.send(`<iq type='get' id='d1' from='${ROOM}' to='${REPLICA}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
  assertMatches(reply!, parseXml(`<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='${DMUC}'/></query></iq>`));
  assert.deepEqual(reply!.getChild("query")!.getChildren("identity").map((i) => `${i.attrs.category}/${i.attrs.type}`), ["conference/text"], "one identity for clients");
  const [node] = d.send(`<iq type='get' id='d2' from='${ROOM}' to='${REPLICA}'><query xmlns='http://jabber.org/protocol/disco#info' node='${DMUC}'/></iq>`);
  assertMatches(node!, parseXml(`<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info' node='${DMUC}'><identity category='conference' type='dmuc-replica'/><feature var='${DMUC}'/></query></iq>`));
  const plain = new RoomDriver(REPLICA);
  const [other] = plain.send(`<iq type='get' id='d1' from='${ROOM}' to='${REPLICA}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
  assert.ok(!other!.toString().includes(DMUC));
});

test("state: settings, roster, history (stanza-id and time kept) and subject are applied and stored", () => {
  const d = replica();
  replicate(d);
  const [reply] = sendState(d);
  assertMatches(reply!, parseXml(`<iq type='result' id='s1' from='${REPLICA}' to='${ROOM}'/>`));
  const room = d.state.dmuc.replicated.get(ROOM)!;
  assert.deepEqual([...room.roster.keys()], ["Wumpus"]);
  assert.equal(room.history.length, 1);
  assert.equal(room.history[0]!.stanzaId, "q9X");
  assert.equal(room.history[0]!.at.toISOString(), "1990-01-23T19:50:01.000Z");
  assert.equal(room.history[0]!.stanza.getChild("delay"), undefined);
  assert.deepEqual(room.subject, { text: "The war", nick: "Wumpus", at: new Date("1990-01-23T19:40:00Z") });
  const appended = stores(d, "history.append");
  assert.equal(appended.length, 1);
  assert.ok(stores(d, "replica.save").length === 1);
  // A replayed state does not store the same message twice.
  sendState(d);
  assert.equal(stores(d, "history.append").length, 0);
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.history.length, 1);
});

test("enter: verified with the server module, then roster, own presence (110 + codes), history and subject, then result", () => {
  const d = replica();
  replicate(d);
  sendState(d);
  presenceBroadcast(d, "BigCheese", "participant");
  const [query, ...rest] = enter(d, RUBENRO, "BigCheese");
  assert.equal(rest.length, 0);
  assertMatches(query!, parseXml(`<iq type='get' from='${REPLICA}' to='${LOCAL}'><directed xmlns='${DMUC}' jid='${RUBENRO}' room='${ROOM}'/></iq>`));
  const out = answerDirected(d, query!, true);
  const user = to(out, RUBENRO);
  assert.deepEqual(user.map((s) => s.name), ["presence", "presence", "message", "message"]);
  // The roster: Wumpus, without the real JID (a participant in a whois=moderators room).
  assertMatches(user[0]!, parseXml(`<presence from='${ROOM}/Wumpus'><x xmlns='${MUC_USER}'><item affiliation='owner' role='moderator'/></x><occupant-id xmlns='urn:xmpp:occupant-id:0' id='kdl3-a'/></presence>`));
  assert.equal(items(user[0]!)[0]!.attrs.jid, undefined);
  // Its own presence, with 110 and the codes of <enter/>.
  assertMatches(user[1]!, parseXml(`<presence from='${ROOM}/BigCheese'><x xmlns='${MUC_USER}'><item role='participant'/><status code='110'/><status code='201'/></x></presence>`));
  // The history with the room's delay, then the subject.
  assertMatches(user[2]!, parseXml(`<message type='groupchat' from='${ROOM}/Wumpus'><body>Honest! He did!!</body><stanza-id xmlns='urn:xmpp:sid:0' id='q9X'/><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='1990-01-23T19:50:01.000Z'/></message>`));
  assertMatches(user[3]!, parseXml(`<message type='groupchat' from='${ROOM}/Wumpus'><subject>The war</subject></message>`));
  const [result] = to(out, ROOM);
  assertMatches(result!, parseXml(`<iq type='result' id='e1' from='${REPLICA}' to='${ROOM}'/>`));
  assert.ok(out.indexOf(result!) > out.indexOf(user[3]!), "the result comes after the deliveries");
  // The first local user: the module diverts the room's traffic to us.
  assertMatches(to(out, LOCAL)[0]!, parseXml(`<iq type='set' from='${REPLICA}'><divert xmlns='${DMUC}' room='${ROOM}' acks='true'/></iq>`));
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.local.get(RUBENRO), "BigCheese");
});

test("enter: a silent ENTER is verified too, and then sends the user nothing", () => {
  const silent = linked();
  presenceBroadcast(silent, "BigCheese", "participant");
  const [q] = silent.send(`<iq type='set' id='e2' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${RUBENRO}' nick='BigCheese' silent='true'/></iq>`);
  assert.ok(q!.getChild("directed", DMUC));
  const done = answerDirected(silent, q!, true);
  assert.equal(to(done, RUBENRO).length, 0);
  assertMatches(to(done, ROOM)[0]!, parseXml(`<iq type='result' id='e2'/>`));
  assert.equal(silent.state.dmuc.replicated.get(ROOM)!.local.get(RUBENRO), "BigCheese");
});

test("enter: what is broadcast while a silent ENTER's check is out reaches the user when it is in", () => {
  const d = linked();
  presenceBroadcast(d, "BigCheese", "participant");
  const [q] = d.send(`<iq type='set' id='e3' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${RUBENRO}' nick='BigCheese' silent='true'/></iq>`);
  // Meanwhile someone enters the room and says something: the primary already counts BigCheese ours.
  presenceBroadcast(d, "Efchen", "participant");
  d.send(`<message type='groupchat' from='${ROOM}/Efchen' to='${REPLICA}'><body>hello</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='s-late'/></message>`);
  const done = to(answerDirected(d, q!, true), RUBENRO);
  assert.deepEqual(done.map((s) => `${s.name} ${s.attrs.from}`), [`presence ${ROOM}/Efchen`, `message ${ROOM}/Efchen`]);
  assert.equal(done[1]!.getChildText("body"), "hello");
});

test("enter: what is broadcast while an ENTER's check is out follows the subject, unless the history asked for has it", () => {
  const d = linked();
  presenceBroadcast(d, "BigCheese", "participant");
  const [q] = enter(d, RUBENRO, "BigCheese", "e4", "<history xmlns='http://jabber.org/protocol/muc' maxstanzas='0'/>");
  d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>meanwhile</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='s-mid'/></message>`);
  const done = to(answerDirected(d, q!, true), RUBENRO);
  assert.deepEqual(done.map((s) => s.getChildText("body") ?? (s.getChild("subject") ? "subject" : s.name)), ["presence", "presence", "subject", "meanwhile"]);
  // Asked for the history: the message is in it, and not sent twice.
  const e = linked();
  presenceBroadcast(e, "BigCheese", "participant");
  const [q2] = enter(e, RUBENRO, "BigCheese", "e5");
  e.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>meanwhile</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='s-mid'/></message>`);
  const bodies = to(answerDirected(e, q2!, true), RUBENRO).map((s) => s.getChildText("body")).filter((b) => b !== null);
  assert.deepEqual(bodies, ["Honest! He did!!", "meanwhile"]);
});

test("enter without mod_dmuc_replica: refused unless the operator trusts the primary (DMUC_TRUST_PRIMARY_ENTER)", () => {
  const noModule = (q: Element) =>
    `<iq type='error' id='${q.attrs.id}' from='${LOCAL}' to='${REPLICA}'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`;
  const strict = linked();
  presenceBroadcast(strict, "BigCheese", "participant");
  const [q1] = enter(strict, RUBENRO, "BigCheese", "e9");
  assertMatches(to(strict.send(noModule(q1!)), ROOM)[0]!, forbidden("e9", ROOM));

  const links = { keepaliveSeconds: 60, linkTimeoutSeconds: 30, splitPingSeconds: 5, splitAway: true, trustPrimaryEnter: true, splitEntry: false };
  const trusting = new RoomDriver(REPLICA, [], { localDomain: LOCAL }, { links });
  replicate(trusting);
  sendState(trusting);
  presenceBroadcast(trusting, "BigCheese", "participant");
  const [q2] = enter(trusting, RUBENRO, "BigCheese", "e9");
  const done = trusting.send(noModule(q2!));
  assert.ok(to(done, RUBENRO).some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/BigCheese`), "served: its own presence");
  assertMatches(to(done, ROOM)[0]!, parseXml(`<iq type='result' id='e9'/>`));
});

test("enter: the module says no (or errs, or never answers): forbidden to the primary, nothing to the user", () => {
  const d = linked();
  presenceBroadcast(d, "BigCheese", "participant");
  const [query] = enter(d, RUBENRO, "BigCheese");
  const out = answerDirected(d, query!, false);
  assert.equal(to(out, RUBENRO).length, 0);
  assert.equal(out.length, 1);
  assertMatches(out[0]!, forbidden("e1", ROOM));
  assert.equal(refusals(d).length, 1);
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.local.size, 0);
  assert.equal(d.state.dmuc.pending.size, 0);

  const [again] = enter(d, RUBENRO, "BigCheese", "e2");
  const err = d.send(`<iq type='error' id='${again!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  assertMatches(err[0]!, forbidden("e2", ROOM));

  enter(d, RUBENRO, "BigCheese", "e3");
  d.now = new Date(d.now.getTime() + 11_000);
  const late = d.tick();
  assertMatches(to(late, ROOM).find((s) => s.attrs.id === "e3")!, forbidden("e3", ROOM));
  assert.equal(d.state.dmuc.pending.size, 0);
});

test("enter: a user of another domain is forbidden without asking the module", () => {
  const d = linked();
  presenceBroadcast(d, "BigCheese", "participant");
  const out = enter(d, "rubenro@yeggmaex.test/shaver", "BigCheese");
  assert.equal(out.length, 1);
  assertMatches(out[0]!, forbidden("e1", ROOM));
});

test("a second primary claiming the room: control stanzas from another room JID are forbidden", () => {
  const d = linked();
  const impostor = "wallops@channel.mallory.test";
  const [state] = sendState(d, impostor);
  assertMatches(state!, forbidden("s1", impostor));
  const [entered] = d.send(`<iq type='set' id='e7' from='${impostor}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${RUBENRO}' nick='BigCheese'/></iq>`);
  assertMatches(entered!, forbidden("e7", impostor));
  // From an occupant JID of the real room: not the bare room JID either.
  const [fromNick] = d.send(`<iq type='set' id='e8' from='${ROOM}/Wumpus' to='${REPLICA}'><leave xmlns='${DMUC}' jid='${RUBENRO}'/></iq>`);
  assertMatches(fromNick!, forbidden("e8", `${ROOM}/Wumpus`));
  // A broadcast from a room that never registered.
  const [broadcast] = d.send(`<message type='groupchat' from='${impostor}/Troll' to='${REPLICA}'><body>hi</body></message>`);
  assertMatches(broadcast!, parseXml(`<message type='error'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
  assert.equal(refusals(d).length, 1);
  assert.deepEqual([...d.state.dmuc.replicated.keys()], [ROOM]);
});

test("a groupchat broadcast is stored and fanned out to every local session, without the dmuc element, ids unchanged", () => {
  const d = linked([
    { jid: RUBENRO, nick: "BigCheese", role: "participant" },
    { jid: MSA, nick: "Efchen", role: "moderator" },
  ]);
  const out = d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'>
    <body>Phaedrus, we're all having a truly rotten time.</body>
    <stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='7Hk'/>
    <occupant-id xmlns='urn:xmpp:occupant-id:0' id='mMx'/>
    <x xmlns='${DMUC}'><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='1990-10-13T23:58:37Z'/></x>
  </message>`);
  assert.deepEqual(out.map((s) => s.attrs.to).sort(), [MSA, RUBENRO]);
  for (const copy of out) {
    assert.equal(copy.attrs.from, `${ROOM}/Wumpus`);
    assert.equal(copy.getChild("x", DMUC), undefined);
    assert.equal(copy.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.id, "7Hk");
    assert.equal(copy.getChild("occupant-id", "urn:xmpp:occupant-id:0")!.attrs.id, "mMx");
  }
  const [write] = stores(d, "history.append");
  assert.ok(write && write.op === "history.append");
  assert.equal(write.entry.stanzaId, "7Hk");
  assert.equal(write.entry.at.toISOString(), "1990-10-13T23:58:37.000Z");
  assert.equal(write.entry.stanza.getChild("x", DMUC), undefined);
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.history.length, 2);
});

test("a subject change updates the replica's subject", () => {
  const d = linked([{ jid: RUBENRO, nick: "BigCheese", role: "participant" }]);
  const out = d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><subject>Peace</subject><x xmlns='${DMUC}'><delay xmlns='urn:xmpp:delay' stamp='1991-01-01T00:00:00Z'/></x></message>`);
  assert.equal(to(out, RUBENRO).length, 1);
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.subject?.text, "Peace");
  assert.equal(stores(d, "history.append").length, 0);
  assert.equal(stores(d, "replica.save").length, 1);
});

test("a presence broadcast: real JID stripped for a participant, kept for a moderator, 110 for the occupant's own session", () => {
  const d = linked([
    { jid: RUBENRO, nick: "BigCheese", role: "participant" },
    { jid: MSA, nick: "Efchen", role: "moderator" },
  ]);
  const out = presenceBroadcast(d, "Phaedrus", "participant");
  const [participant] = to(out, RUBENRO);
  const [moderator] = to(out, MSA);
  assert.equal(items(participant!)[0]!.attrs.jid, undefined);
  assert.equal(items(moderator!)[0]!.attrs.jid, "x@elsewhere.test/Phaedrus");
  assert.deepEqual(codes(participant!), []);
  assert.ok(d.state.dmuc.replicated.get(ROOM)!.roster.has("Phaedrus"));

  const own = presenceBroadcast(d, "BigCheese", "participant", "", "");
  assert.deepEqual(codes(to(own, RUBENRO)[0]!), ["110"]);
  assert.deepEqual(codes(to(own, MSA)[0]!), []);

  // Unavailable removes the nick from the roster after the fan-out.
  const gone = presenceBroadcast(d, "Phaedrus", "none", "type='unavailable'");
  assert.equal(gone.length, 2);
  assert.ok(!d.state.dmuc.replicated.get(ROOM)!.roster.has("Phaedrus"));
});

test("a nick change (303) moves the local session to the new nick", () => {
  const d = linked([{ jid: RUBENRO, nick: "BigCheese", role: "participant" }]);
  const out = d.send(
    `<presence type='unavailable' from='${ROOM}/BigCheese' to='${REPLICA}'><x xmlns='${MUC_USER}'><item affiliation='none' role='participant' nick='Cheese'/><status code='303'/></x></presence>`,
  );
  assert.deepEqual(codes(to(out, RUBENRO)[0]!).sort(), ["110", "303"]);
  const room = d.state.dmuc.replicated.get(ROOM)!;
  assert.equal(room.local.get(RUBENRO), "Cheese");
  assert.ok(!room.roster.has("BigCheese"));
});

test("leave: the embedded presence goes to the session, which is dropped; the last one ends the diversion", () => {
  const d = linked([{ jid: RUBENRO, nick: "BigCheese", role: "participant" }]);
  const out = d.send(`<iq type='set' id='l1' from='${ROOM}' to='${REPLICA}'>
    <leave xmlns='${DMUC}' jid='${RUBENRO}'>
      <presence type='unavailable' from='${ROOM}/BigCheese'>
        <x xmlns='${MUC_USER}'><item affiliation='none' role='none'/><status code='110'/></x>
      </presence>
    </leave>
  </iq>`);
  assertMatches(to(out, RUBENRO)[0]!, parseXml(`<presence type='unavailable' from='${ROOM}/BigCheese'><x xmlns='${MUC_USER}'><status code='110'/></x></presence>`));
  assertMatches(to(out, ROOM)[0]!, parseXml(`<iq type='result' id='l1'/>`));
  assertMatches(to(out, LOCAL)[0]!, parseXml(`<iq type='set'><undivert xmlns='${DMUC}' room='${ROOM}'/></iq>`));
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.local.size, 0);
  // Later broadcasts no longer reach the session.
  assert.equal(presenceBroadcast(d, "Phaedrus", "participant").length, 0);
});

test("a diverted stanza from a local user is submitted in the replica's own name, numbered, kept until the primary acknowledges it", () => {
  const d = linked([{ jid: RUBENRO, nick: "BigCheese", role: "participant" }]);
  const out = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='m1'><body>Phaedrus, we're all having a truly rotten time.</body></message>`);
  assert.equal(out.length, 1);
  assertMatches(
    out[0]!,
    parseXml(`<message from='${REPLICA}' to='${ROOM}'><submit xmlns='${DMUC}'><message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='m1'><body>Phaedrus, we're all having a truly rotten time.</body></message></submit></message>`),
  );
  const header = out[0]!.getChild("link", DMUC)!;
  assert.equal(header.attrs.seq, "1");
  assert.ok(out[0]!.getChild("submit", DMUC)!.getChild("message")!.getChild("origin-id", "urn:xmpp:sid:0"), "an origin-id, to know it when it comes back");
  // An IQ to an occupant too, next in the stream.
  const [iq] = d.send(`<iq from='${RUBENRO}' to='${ROOM}/Wumpus' type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>`);
  assert.equal(iq!.getChild("link", DMUC)!.attrs.seq, "2");
  assert.equal(iq!.getChild("submit", DMUC)!.getChild("iq")!.attrs.to, `${ROOM}/Wumpus`);
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.link.end.channel.outbox.unacked.length, 2);
  d.send(`<message from='${ROOM}' to='${REPLICA}'><link xmlns='${DMUC}' ack='2' acked='${header.attrs.stream}'/></message>`);
  assert.equal(d.state.dmuc.replicated.get(ROOM)!.link.end.channel.outbox.unacked.length, 0);
  // Rooms we do not replicate: relayed through the module in the user's name.
  const [relay] = d.send(`<message from='${RUBENRO}' to='other@channel.avalon.test' type='groupchat' id='m3'><body>x</body></message>`);
  assertMatches(relay!, parseXml(`<iq type='set' from='${REPLICA}' to='${LOCAL}'><relay xmlns='${DMUC}'><message from='${RUBENRO}' to='other@channel.avalon.test' type='groupchat' id='m3'/></relay></iq>`));
  const answer = d.send(`<iq type='error' id='${relay!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  assert.equal(answer.length, 0, "the module's error for a relay is only logged");
  assert.ok(d.effects.some((e) => e.kind === "log" && e.event === "dmuc.relay_failed"));
});

test("what the server module hands over numbered is acknowledged to it (<taken/>) once submitted, and the number does not travel on", () => {
  const d = linked([{ jid: RUBENRO, nick: "BigCheese", role: "participant" }]);
  const out = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='m1'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/><diverted xmlns='${DMUC}' stream='c1' seq='7'/></message>`);
  const [submitted] = to(out, ROOM);
  const inner = submitted!.getChild("submit", DMUC)!.getChild("message")!;
  assert.equal(inner.getChild("diverted", DMUC), undefined);
  assert.equal(inner.getChild("origin-id", "urn:xmpp:sid:0")!.attrs.id, "o1", "the module's origin-id is kept");
  assertMatches(to(out, LOCAL)[0]!, parseXml(`<message from='${REPLICA}' to='${LOCAL}'><taken xmlns='${DMUC}' stream='c1' seq='7'/></message>`));
  assert.ok(out.indexOf(submitted!) < out.indexOf(to(out, LOCAL)[0]!), "after the submission, in the same batch");
  // Served locally during a split, or relayed for a room we do not replicate: taken all the same.
  const relayed = d.send(`<message from='${RUBENRO}' to='other@channel.avalon.test' type='groupchat'><body>x</body><diverted xmlns='${DMUC}' stream='c1' seq='8'/></message>`);
  assert.equal(to(relayed, LOCAL).filter((s) => s.getChild("taken", DMUC)?.attrs.seq === "8").length, 1);
  assert.equal(to(relayed, LOCAL).find((s) => s.getChild("relay", DMUC))!.getChild("relay", DMUC)!.getChild("message")!.getChild("diverted", DMUC), undefined);
});

test("a diverted stanza with a forged from (another domain) is refused, not relayed", () => {
  const d = linked([{ jid: RUBENRO, nick: "BigCheese", role: "participant" }]);
  const out = d.send(`<message from='mallory@evil.test/x' to='${ROOM}' type='groupchat' id='m2'><body>spoof</body></message>`);
  assert.equal(out.length, 1);
  assertMatches(out[0]!, parseXml(`<message type='error' id='m2' from='${REPLICA}' to='mallory@evil.test/x'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
  assert.equal(refusals(d).length, 1);
});

test("keepalive: pings from the primary are answered; after keepalive seconds of silence the replica probes; unanswered, the link splits", () => {
  const d = linked();
  const [pong] = d.send(`<iq type='get' id='p1' from='${ROOM}' to='${REPLICA}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  assertMatches(pong!, parseXml(`<iq type='result' id='p1' from='${REPLICA}' to='${ROOM}'/>`));
  d.now = new Date(d.now.getTime() + 5_000);
  assert.equal(d.tick().length, 0);
  d.now = new Date(d.now.getTime() + 5_000);
  const [probe] = d.tick();
  assertMatches(probe!, parseXml(`<message from='${REPLICA}' to='${ROOM}'><link xmlns='${DMUC}' probe='true'/></message>`));
  d.now = new Date(d.now.getTime() + 4_000);
  assert.equal(d.tick().length, 0);
  d.now = new Date(d.now.getTime() + 1_000);
  d.tick();
  assert.ok(d.effects.some((e) => e.kind === "log" && e.event === "dmuc.link_split"), "no answer within 5 s: split");
  const other = linked();
  other.now = new Date(other.now.getTime() + 10_000);
  other.tick();
  other.send(`<message from='${ROOM}' to='${REPLICA}'><link xmlns='${DMUC}'/></message>`);
  assert.equal(other.state.dmuc.replicated.get(ROOM)!.lastHeard, other.now.getTime());
  other.now = new Date(other.now.getTime() + 5_000);
  other.tick();
  assert.equal(other.state.dmuc.replicated.get(ROOM)!.splitSince, null, "answered: no split");
});

test("without DMUC_LOCAL_DOMAIN the replica role is off", () => {
  const d = new RoomDriver(REPLICA);
  const out = d.send(`<iq type='set' id='r1' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='60' history='20'/></iq>`);
  assertMatches(out[0]!, parseXml(`<iq type='error' id='r1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  assert.equal(d.state.dmuc.replicated.size, 0);
});
