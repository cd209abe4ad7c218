// DMUC2 primary role: discovery of a domain's replica, the link, and delivery through it.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { emptyServiceState, MucService, type ServiceState } from "../../src/core/service.js";
import type { Effect } from "../../src/core/effects.js";
import { createPlugins } from "../../plugins/index.js";
import { assertMatches, parseXml } from "../helpers/xml.js";

const SERVICE = "dmuc.avalon.test";
const ROOM = `wallops@${SERVICE}`;
const REPLICA = "dmuc.oulubox.test";
const WUMPUS = "argl@oulubox.test/laptop";
const VALDIS = "valdis@oulubox.test/desktop";
const OWNER = "owner@avalon.test/home";
const DMUC = "urn:xmpp:tmp:dmuc:0";

class Primary {
  readonly service = new MucService(
    { domain: SERVICE, admins: new Set(), name: "t", localDomain: "avalon.test" },
    createPlugins({ maxHistoryMessages: 20, maxBodyChars: 1000, ratePerSecond: 100, burst: 1000 }),
  );
  state: ServiceState = emptyServiceState();
  effects: Effect[] = [];
  now = 1_000_000;
  private ids = 0;

  private context() {
    return { now: new Date(this.now), newId: () => `id${++this.ids}` };
  }

  send(text: string): Element[] {
    const outcome = this.service.handle(this.state, parseXml(text), this.context());
    this.state = outcome.state;
    this.effects = outcome.effects;
    return outcome.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  }

  tick(): Element[] {
    const outcome = this.service.tick(this.state, this.context());
    this.state = outcome.state;
    this.effects = outcome.effects;
    return outcome.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  }

  link() {
    return this.state.dmuc.links.get(ROOM)?.get(REPLICA);
  }
}

const sentTo = (stanzas: Element[], to: string) => stanzas.filter((s) => s.attrs.to === to);
const entry = (jid: string, nick: string) => `<presence from='${jid}' to='${ROOM}/${nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`;

/** Answers the disco#items probe with the replica, and its disco#info: returns the <replicate/> that follows. */
function discoverReplica(p: Primary, items: Element): Element {
  const [info] = p.send(`<iq type='result' id='${items.attrs.id}' from='oulubox.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='${REPLICA}'/></query></iq>`);
  assertMatches(info!, parseXml(`<iq type='get' to='${REPLICA}' from='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`));
  const out = p.send(
    `<iq type='result' id='${info!.attrs.id}' from='${REPLICA}' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='dmuc-replica'/><feature var='${DMUC}'/></query></iq>`,
  );
  const replicate = out.find((s) => s.getChild("replicate", DMUC));
  assert.ok(replicate, out.map(String).join("\n"));
  return replicate;
}

/** A room whose owner is on the primary's own server, configured, with one message in its history. */
function ownedRoom(): Primary {
  const p = new Primary();
  p.send(`<presence from='${OWNER}' to='${ROOM}/Owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  p.send(`<iq from='${OWNER}' to='${ROOM}' id='c' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>before the link</body></message>`);
  return p;
}

/** A room with its owner on the primary's own server and Wumpus from oulubox, whose replica is linked. */
function linkedRoom(): { p: Primary; enterAnswers: Element[] } {
  const p = ownedRoom();

  // Wumpus enters: his domain's DMUC2 status is unknown, so his entry waits while it is probed
  // (XEP-0030 items, then info on the DMUC2 node) and linked.
  const join = p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assert.deepEqual(sentTo(join, WUMPUS), [], "the entry waits for the link");
  assert.deepEqual(sentTo(join, OWNER), [], "nobody hears of it yet");
  const [items] = sentTo(join, "oulubox.test");
  assertMatches(items!, parseXml(`<iq type='get' from='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`));
  const replicate = discoverReplica(p, items!);
  assertMatches(replicate, parseXml(`<iq type='set' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='30' history='20'/></iq>`));
  assert.equal(p.link()?.state, "negotiating");

  // Accepted: the room's state, then Wumpus's entry goes to the room, served by the replica (ENTER).
  const sync = p.send(`<iq type='result' id='${replicate.attrs.id}' from='${REPLICA}' to='${ROOM}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='30' history='10'/></iq>`);
  const state = sync.find((s) => s.getChild("state", DMUC))!;
  assert.equal(state.getChild("state", DMUC)?.attrs.last, "true");
  const presences = state.getChild("state", DMUC)!.getChildren("presence").map((pr) => pr.attrs.from);
  assert.deepEqual(presences, [`${ROOM}/Owner`]);
  assert.equal(state.getChild("state", DMUC)!.getChildren("message").length, 1, "the history goes along");
  const enter = sync.find((s) => s.getChild("enter", DMUC))!;
  assertMatches(enter, parseXml(`<iq type='set' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${WUMPUS}' nick='Wumpus'/></iq>`));
  assert.notEqual(enter.getChild("enter", DMUC)!.attrs.silent, "true");
  assert.deepEqual(sentTo(sync, WUMPUS), [], "the replica serves his roster, history and subject");
  assert.ok(sentTo(sync, OWNER).some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/Wumpus`), "the others hear of him now");
  const link = p.link()!;
  assert.equal(link.state, "active");
  assert.equal(link.keepaliveSeconds, 30);
  assert.equal(link.historyLimit, 10);
  assert.deepEqual([...link.members], [WUMPUS]);
  // The replica answers the state and the ENTER (an IQ left unanswered would split the link).
  for (const iq of sync.filter((s) => s.name === "iq")) p.send(`<iq type='result' id='${iq.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  assert.equal(p.state.dmuc.pending.size, 0);
  // ... and acknowledges the broadcast of his presence, the link's first stanza.
  const header = sync.find((s) => s.name === "presence" && s.attrs.to === REPLICA)!.getChild("link", DMUC)!;
  assert.equal(header.attrs.seq, "1");
  p.send(`<message from='${REPLICA}' to='${ROOM}'><link xmlns='${DMUC}' ack='1' acked='${header.attrs.stream}'/></message>`);
  p.now += 1_000;
  return { p, enterAnswers: sync };
}

test("a remote domain with a replica is discovered and the room linked to it", () => {
  linkedRoom();
});

test("a groupchat message goes once to the replica, with the room's time, and directly to the rest", () => {
  const { p } = linkedRoom();
  const sent = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat' id='m1'><body>Phaedrus, we're all having a truly rotten time.</body></message>`);
  assert.equal(sentTo(sent, WUMPUS).length, 0, "nothing directly to the replica's user");
  const [copy] = sentTo(sent, REPLICA);
  assertMatches(copy!, parseXml(`<message type='groupchat' from='${ROOM}/Owner' to='${REPLICA}'><body>Phaedrus, we're all having a truly rotten time.</body><x xmlns='${DMUC}' id='m1'><delay xmlns='urn:xmpp:delay' from='${ROOM}'/></x></message>`));
  const direct = sentTo(sent, OWNER)[0]!;
  const stanzaId = direct.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.id;
  assert.equal(copy!.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.id, stanzaId, "one stanza-id everywhere");
  assert.equal(copy!.attrs.id, stanzaId, "the replica's copy is addressed by stanza-id, so a bounce names it");
  assert.equal(direct.attrs.id, "m1", "users get the sender's id");
});

const MSA = "msa@oulubox.test/bicycle";
const presenceFrom = (stanzas: Element[], nick: string) => stanzas.filter((s) => s.name === "presence" && s.attrs.from === `${ROOM}/${nick}`);
const bodies = (stanzas: Element[]) => stanzas.map((s) => s.getChildText("body")).filter((b) => b !== null);

test("users of a new domain entering at once wait for its link, enter through the replica, and the first broadcast goes once to it", () => {
  const p = ownedRoom();
  const first = p.send(entry(WUMPUS, "Wumpus"));
  const [items] = sentTo(first, "oulubox.test");
  assert.ok(items, "the domain is probed");
  const second = p.send(entry(VALDIS, "Valdis"));
  // Wumpus's other traffic during the wait is kept, in order, after his entry.
  p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus'><show>dnd</show></presence>`);
  p.now += 300;
  const third = p.send(entry(MSA, "Efchen"));
  for (const out of [first, second, third]) {
    assert.deepEqual(out.filter((s) => s.attrs.to !== "oulubox.test"), [], "nothing to anybody while the entries wait");
  }
  assert.deepEqual([...p.state.rooms.get(ROOM)!.sessionNicks.values()], ["Owner"], "not in the room yet");
  assert.equal(sentTo([...second, ...third], "oulubox.test").length, 0, "one probe for the domain");

  const replicate = discoverReplica(p, items!);
  const sync = p.send(`<iq type='result' id='${replicate.attrs.id}' from='${REPLICA}' to='${ROOM}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='30' history='20'/></iq>`);
  // The replica gets the room, then each entry: the new presence (the replica keeps it), then ENTER.
  const toReplica = sentTo(sync, REPLICA);
  const kinds = toReplica.map((s) => s.getChild("state", DMUC) ? "state" : s.getChild("enter", DMUC) ? `enter ${s.getChild("enter", DMUC)!.attrs.nick}` : `${s.name} ${s.attrs.from?.split("/")[1]}`);
  // Each session's stanzas in the order it sent them, the sessions in the order they entered.
  assert.deepEqual(kinds, ["state", "presence Wumpus", "enter Wumpus", "presence Wumpus", "presence Valdis", "enter Valdis", "presence Efchen", "enter Efchen"]);
  assert.equal(toReplica[3]!.getChildText("show"), "dnd", "his presence change during the wait, after his entry");
  for (const enter of toReplica.filter((s) => s.getChild("enter", DMUC))) {
    assert.notEqual(enter.getChild("enter", DMUC)!.attrs.silent, "true", "the replica hands each the roster, history and subject");
    assertMatches(enter.getChild("enter", DMUC)!, parseXml(`<enter xmlns='${DMUC}'><history xmlns='http://jabber.org/protocol/muc' maxstanzas='0'/></enter>`));
  }
  for (const user of [WUMPUS, VALDIS, MSA]) assert.deepEqual(sentTo(sync, user), [], "nothing directly to the replica's users");
  assert.deepEqual([...p.link()!.members].sort(), [MSA, WUMPUS, VALDIS].sort());
  // Rosters complete: the owner heard of each entry once; the replica has every occupant once.
  assert.deepEqual(["Wumpus", "Valdis", "Efchen"].map((nick) => presenceFrom(sentTo(sync, OWNER), nick).filter((s) => s.attrs.type === undefined && !s.getChild("show")).length), [1, 1, 1]);
  const replicaRoster = new Set([...toReplica[0]!.getChild("state", DMUC)!.getChildren("presence"), ...toReplica.filter((s) => s.name === "presence")].map((s) => s.attrs.from));
  assert.deepEqual([...replicaRoster].sort(), ["Efchen", "Owner", "Valdis", "Wumpus"].map((n) => `${ROOM}/${n}`));
  for (const iq of sync.filter((s) => s.name === "iq")) p.send(`<iq type='result' id='${iq.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);

  // The first broadcast after the entries: one copy to the replica, none to its users.
  const said = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>first</body></message>`);
  assert.deepEqual(said.map((s) => s.attrs.to).sort(), [OWNER, REPLICA].sort());
});

test("what a waiting session may pile up is bounded: past 50 stanzas, wait/resource-constraint", () => {
  const p = ownedRoom();
  const [items] = sentTo(p.send(entry(WUMPUS, "Wumpus")), "oulubox.test");
  for (let i = 1; i < 50; i++) assert.deepEqual(p.send(`<message from='${WUMPUS}' to='${ROOM}' type='groupchat' id='m${i}'><body>${i}</body></message>`), []);
  const [refused] = p.send(`<message from='${WUMPUS}' to='${ROOM}' type='groupchat' id='m50'><body>50</body></message>`);
  assertMatches(refused!, parseXml(`<message type='error' to='${WUMPUS}' id='m50'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
  // The domain has no replica: his entry, then the 49 messages held after it, in order.
  const released = p.send(`<iq type='result' id='${items!.attrs.id}' from='oulubox.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`);
  assert.equal(presenceFrom(sentTo(released, OWNER), "Wumpus").length, 1);
  assert.deepEqual(bodies(sentTo(released, OWNER)), Array.from({ length: 49 }, (_, i) => String(i + 1)));
});

test("an entry waits at most three link timeouts (15 s): then it is served directly, and moved onto the link once it is up", () => {
  const p = ownedRoom();
  const [items] = sentTo(p.send(entry(WUMPUS, "Wumpus")), "oulubox.test");
  p.now += 14_000;
  assert.deepEqual(sentTo(p.tick(), WUMPUS), [], "still waiting");
  p.now += 1_000;
  const released = p.tick();
  assert.equal(presenceFrom(sentTo(released, WUMPUS), "Wumpus").length, 1, "his own presence, directly");
  assert.ok(sentTo(released, WUMPUS).some((s) => s.getChild("subject")), "and the subject");
  assert.equal(presenceFrom(sentTo(released, OWNER), "Wumpus").length, 1);
  // While the set-up goes on, the domain's next entries are not held again.
  const valdis = p.send(entry(VALDIS, "Valdis"));
  assert.equal(presenceFrom(sentTo(valdis, VALDIS), "Valdis").length, 1, "served directly at once");
  const direct = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>direct</body></message>`);
  assert.deepEqual(bodies(sentTo(direct, WUMPUS)), ["direct"]);

  const replicate = discoverReplica(p, items!);
  const sync = p.send(`<iq type='result' id='${replicate.attrs.id}' from='${REPLICA}' to='${ROOM}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='30' history='20'/></iq>`);
  const enters = sentTo(sync, REPLICA).flatMap((s) => s.getChildren("enter", DMUC));
  assert.deepEqual(enters.map((e) => `${e.attrs.nick} ${e.attrs.silent}`), ["Wumpus true", "Valdis true"], "both move onto the replica without noticing");
  assert.deepEqual(presenceFrom(sync, "Wumpus").filter((s) => s.attrs.to === OWNER), [], "no second presence for anybody");
  const after = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>after</body></message>`);
  assert.deepEqual(after.map((s) => s.attrs.to).sort(), [OWNER, REPLICA].sort(), "one copy to the replica");
});

test("a domain without a replica: the waiting entry is admitted directly when discovery says so", () => {
  const p = ownedRoom();
  const [items] = sentTo(p.send(entry(WUMPUS, "Wumpus")), "oulubox.test");
  const answered = p.send(`<iq type='result' id='${items!.attrs.id}' from='oulubox.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='upload.oulubox.test'/></query></iq>`);
  assert.deepEqual(sentTo(answered, WUMPUS), [], "still waiting while an item is asked");
  const [info] = sentTo(answered, "upload.oulubox.test");
  const plain = p.send(`<iq type='result' id='${info!.attrs.id}' from='upload.oulubox.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='store' type='file'/></query></iq>`);
  assert.equal(p.state.dmuc.domains.get("oulubox.test")?.status, "plain");
  assert.equal(presenceFrom(sentTo(plain, WUMPUS), "Wumpus").length, 1, "his own presence");
  assert.ok(sentTo(plain, WUMPUS).some((s) => s.getChild("subject")));
  // Known plain: the next user of the domain enters at once.
  const valdis = p.send(entry(VALDIS, "Valdis"));
  assert.equal(presenceFrom(sentTo(valdis, VALDIS), "Valdis").length, 1);
  assert.deepEqual(sentTo(valdis, "oulubox.test"), []);
  // Ten minutes on, the answer is old: the next entry is admitted at once while the domain is asked again.
  p.now += 10 * 60_000;
  const msa = p.send(entry(MSA, "Efchen"));
  assert.equal(presenceFrom(sentTo(msa, MSA), "Efchen").length, 1);
  assert.equal(sentTo(msa, "oulubox.test").length, 1, "asked again");
});

test("a replicate refused before an entry came is asked again at once, the entries still waiting; one refused for the entries themselves admits them directly", () => {
  const p = ownedRoom();
  const [items] = sentTo(p.send(entry(WUMPUS, "Wumpus")), "oulubox.test");
  const replicate = discoverReplica(p, items!);
  p.now += 200;
  p.send(entry(VALDIS, "Valdis"));
  // The replica's server saw nobody of its own in the room when it checked: Valdis's entry is newer.
  const again = p.send(`<iq type='error' id='${replicate.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  const second = sentTo(again, REPLICA).find((s) => s.getChild("replicate", DMUC));
  assert.ok(second, "asked again");
  assert.deepEqual([...sentTo(again, WUMPUS), ...sentTo(again, VALDIS)], [], "still waiting");
  // Refused again, with no entry since: they are admitted directly, not held for good...
  const refused = p.send(`<iq type='error' id='${second!.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  assert.equal(presenceFrom(sentTo(refused, WUMPUS), "Wumpus").length, 1);
  assert.equal(presenceFrom(sentTo(refused, VALDIS), "Valdis").length, 1);
  assert.equal(p.state.dmuc.domains.get("oulubox.test")?.status, "dmuc", "...and the domain is not taken for plain");
  // ... and their entries make the room ask again, so that they move onto the replica when it accepts.
  const third = sentTo(refused, REPLICA).find((s) => s.getChild("replicate", DMUC));
  assert.ok(third);
  const sync = p.send(`<iq type='result' id='${third!.attrs.id}' from='${REPLICA}' to='${ROOM}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='30' history='20'/></iq>`);
  assert.deepEqual(sentTo(sync, REPLICA).flatMap((s) => s.getChildren("enter", DMUC)).map((e) => `${e.attrs.nick} ${e.attrs.silent}`), ["Wumpus true", "Valdis true"]);
});

test("a second user of the replica's domain enters through the replica: one presence copy, then ENTER", () => {
  const { p } = linkedRoom();
  const sent = p.send(`<presence from='${VALDIS}' to='${ROOM}/Valdis'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='5'/></x></presence>`);
  assert.equal(sentTo(sent, VALDIS).length, 0, "the replica serves roster, self-presence, history and subject");
  const toReplica = sentTo(sent, REPLICA);
  assert.deepEqual(toReplica.map((s) => s.name), ["presence", "iq"]);
  assert.equal(toReplica[0]!.attrs.from, `${ROOM}/Valdis`);
  assertMatches(toReplica[1]!, parseXml(`<iq type='set' from='${ROOM}'><enter xmlns='${DMUC}' jid='${VALDIS}' nick='Valdis'><history xmlns='http://jabber.org/protocol/muc' maxstanzas='5'/></enter></iq>`));
  assert.ok(p.link()!.members.has(VALDIS));
  assert.equal(sentTo(sent, OWNER).length, 1, "the owner gets Valdis's presence directly");
});

test("the audit trail names the replica that serves an entry, and direct entries as direct", () => {
  const { p } = linkedRoom();
  p.send(`<presence from='${VALDIS}' to='${ROOM}/Valdis'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const viaReplica = p.effects.flatMap((e) => (e.kind === "audit" && e.record.kind === "occupant.entered" ? [e.record.details] : []));
  assert.deepEqual(viaReplica, [{ jid: VALDIS, nick: "Valdis", role: "participant", affiliation: "none", via: REPLICA }]);
  p.send(`<presence from='owner@avalon.test/phone' to='${ROOM}/Owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const direct = p.effects.flatMap((e) => (e.kind === "audit" && e.record.kind === "occupant.entered" ? [e.record.details.via] : []));
  assert.deepEqual(direct, ["direct"]);
});

test("a refused ENTER falls back to direct delivery of what the user would have got, and of what went to the replica meanwhile", () => {
  const { p } = linkedRoom();
  const sent = p.send(`<presence from='${VALDIS}' to='${ROOM}/Valdis'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const enter = sentTo(sent, REPLICA).find((s) => s.name === "iq")!;
  // While the replica checks, the room goes on: counted the replica's, Valdis gets this through it.
  const meanwhile = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>while checking</body></message>`);
  assert.deepEqual(sentTo(meanwhile, VALDIS), []);
  const fallback = p.send(`<iq type='error' id='${enter.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  const direct = sentTo(fallback, VALDIS);
  assert.ok(direct.some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/Valdis`), "own presence");
  assert.ok(direct.some((s) => s.getChild("subject")), "subject");
  assert.deepEqual(bodies(direct), ["before the link", "while checking"], "the history, then what the replica did not deliver");
  assert.ok(!p.link()!.members.has(VALDIS));
  assert.ok(p.effects.some((e) => e.kind === "audit" && e.record.kind === "dmuc.refused"));
  assert.deepEqual(bodies(sentTo(p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>direct</body></message>`), VALDIS)), ["direct"]);
});

test("a session whose ENTER was refused is moved onto the replica later (silent ENTER, with backoff), not served directly for good", () => {
  const { p } = linkedRoom();
  const entered = sentTo(p.send(entry(VALDIS, "Valdis")), REPLICA);
  const enter = entered.find((s) => s.name === "iq")!;
  const stream = entered.find((s) => s.name === "presence")!.getChild("link", DMUC)!.attrs.stream;
  p.send(`<message from='${REPLICA}' to='${ROOM}'><link xmlns='${DMUC}' ack='2' acked='${stream}'/></message>`);
  p.send(`<iq type='error' id='${enter.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  const enters = (out: Element[]) => sentTo(out, REPLICA).flatMap((s) => s.getChildren("enter", DMUC));
  p.now += 4_000;
  assert.deepEqual(enters(p.tick()), []);
  p.now += 1_000;
  const [again] = enters(p.tick());
  assertMatches(again!, parseXml(`<enter xmlns='${DMUC}' jid='${VALDIS}' nick='Valdis' silent='true'/>`));
  const retry = sentTo(p.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : [])), REPLICA).find((s) => s.getChild("enter", DMUC))!;
  // Refused again: asked again after twice as long; the refusal is audited once.
  p.send(`<iq type='error' id='${retry.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  assert.ok(!p.effects.some((e) => e.kind === "audit"));
  p.now += 9_000;
  assert.deepEqual(enters(p.tick()), []);
  p.now += 1_000;
  const third = sentTo(p.tick(), REPLICA).find((s) => s.getChild("enter", DMUC))!;
  assert.ok(third);
  p.send(`<iq type='result' id='${third.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  assert.ok(p.link()!.members.has(VALDIS));
  const said = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>through the replica</body></message>`);
  assert.deepEqual(sentTo(said, VALDIS), [], "served by the replica now");
  p.send(`<message from='${REPLICA}' to='${ROOM}'><link xmlns='${DMUC}' ack='3' acked='${stream}'/></message>`);
  p.now += 20_000;
  assert.deepEqual(enters(p.tick()), [], "taken: no more retries");
});

test("a replica user leaving: LEAVE with its own unavailable presence, before the broadcast copy", () => {
  const { p } = linkedRoom();
  const sent = p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus' type='unavailable'/>`);
  const toReplica = sentTo(sent, REPLICA);
  assert.deepEqual(toReplica.map((s) => s.name), ["iq", "presence"]);
  const leave = toReplica[0]!.getChild("leave", DMUC)!;
  assert.equal(leave.attrs.jid, WUMPUS);
  const own = leave.getChild("presence")!;
  assert.equal(own.attrs.type, "unavailable");
  assert.ok(own.getChild("x", "http://jabber.org/protocol/muc#user")!.getChildren("status").some((s) => s.attrs.code === "110"));
  assert.equal(sentTo(sent, WUMPUS).length, 0);
  assert.ok(!p.link()!.members.has(WUMPUS));
});

test("answers from anyone but the entity asked are not taken", () => {
  const p = new Primary();
  p.send(`<presence from='${OWNER}' to='${ROOM}/Owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  p.send(`<iq from='${OWNER}' to='${ROOM}' id='c' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  const [items] = sentTo(p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus'><x xmlns='http://jabber.org/protocol/muc'/></presence>`), "oulubox.test");
  p.send(`<iq type='result' id='${items!.attrs.id}' from='evil.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='dmuc.evil.test'/></query></iq>`);
  assert.ok(p.state.dmuc.pending.has(items!.attrs.id!), "still waiting for oulubox.test");
});

test("a domain without a replica is served directly, as plain XEP-0045", () => {
  const p = new Primary();
  p.send(`<presence from='${OWNER}' to='${ROOM}/Owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  p.send(`<iq from='${OWNER}' to='${ROOM}' id='c' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  const [items] = sentTo(p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus'><x xmlns='http://jabber.org/protocol/muc'/></presence>`), "oulubox.test");
  p.send(`<iq type='result' id='${items!.attrs.id}' from='oulubox.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`);
  assert.equal(p.state.dmuc.domains.get("oulubox.test")?.status, "plain");
  const sent = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>hi</body></message>`);
  assert.equal(sentTo(sent, WUMPUS).length, 1);
  assert.equal(sentTo(sent, REPLICA).length, 0);
});

const LINK = (s: Element) => s.getChild("link", DMUC);

test("an idle link is probed after its keepalive; a probe unanswered for the link timeout (5 s) splits it", () => {
  const { p } = linkedRoom();
  // linkedRoom() last heard from the replica one second ago.
  p.now += 28_000;
  assert.deepEqual(sentTo(p.tick(), REPLICA), []);
  p.now += 1_000;
  const probes = sentTo(p.tick(), REPLICA).filter((s) => LINK(s)?.attrs.probe === "true");
  assert.equal(probes.length, 1);
  assert.equal(probes[0]!.attrs.from, ROOM);
  p.now += 5_000;
  p.tick();
  assert.equal(p.link()!.state, "split");
  assert.ok(p.effects.some((e) => e.kind === "audit" && e.record.kind === "link.split"));
});

test("broadcasts to a replica are numbered; its acks release them; unacknowledged for 5 s the link is split", () => {
  const { p } = linkedRoom();
  const first = sentTo(p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>one</body></message>`), REPLICA)[0]!;
  const second = sentTo(p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>two</body></message>`), REPLICA)[0]!;
  const [a, b] = [LINK(first)!, LINK(second)!];
  assert.equal(a.attrs.stream, b.attrs.stream);
  assert.deepEqual([a.attrs.seq, b.attrs.seq], ["2", "3"], "after Wumpus's presence");
  p.now += 1_000;
  p.send(`<message from='${REPLICA}' to='${ROOM}'><link xmlns='${DMUC}' ack='3' acked='${a.attrs.stream}'/></message>`);
  p.now += 10_000;
  p.tick();
  assert.equal(p.link()!.state, "active", "acknowledged: nothing outstanding");
  const third = sentTo(p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>three</body></message>`), REPLICA)[0]!;
  assert.equal(LINK(third)!.attrs.seq, "4");
  p.now += 2_000;
  const resent = sentTo(p.tick(), REPLICA).filter((s) => LINK(s)?.attrs.seq === "4");
  assert.equal(resent.length, 1, "resent after 2 s without an ack");
  p.now += 3_000;
  p.tick();
  assert.equal(p.link()!.state, "split", "split 5 s after it was first sent");
});

test("a replica's submission is taken as its user's stanza, once, and acknowledged on the next broadcast", () => {
  const { p } = linkedRoom();
  const submit = (seq: number, body: string) =>
    `<message from='${REPLICA}' to='${ROOM}' id='s${seq}'><link xmlns='${DMUC}' stream='rs' seq='${seq}'/><submit xmlns='${DMUC}' stamp='${new Date(p.now).toISOString()}'><message from='${WUMPUS}' to='${ROOM}' type='groupchat'><body>${body}</body></message></submit></message>`;
  const out = p.send(submit(1, "via the replica"));
  const copy = sentTo(out, REPLICA).find((s) => s.getChildText("body") === "via the replica")!;
  assert.ok(copy, "broadcast like any message of Wumpus");
  assert.deepEqual([LINK(copy)!.attrs.ack, LINK(copy)!.attrs.acked], ["1", "rs"], "the broadcast carries the ack");
  assert.equal(sentTo(out, OWNER).filter((s) => s.getChildText("body") === "via the replica").length, 1);
  const again = p.send(submit(1, "via the replica"));
  assert.equal(again.filter((s) => s.getChildText("body") === "via the replica").length, 0, "a resent submission is not taken twice");
  assert.deepEqual(sentTo(again, REPLICA).map((s) => LINK(s)?.attrs.ack), ["1"], "it is acknowledged again at once");
  const forged = p.send(submit(2, "forged").replace(WUMPUS, "someone@elsewhere.test/x"));
  assert.equal(forged.filter((s) => s.getChildText("body") === "forged").length, 0, "only users of the replica's own domain");
  assert.ok(p.effects.some((e) => e.kind === "audit" && e.record.kind === "dmuc.refused"));
  const stranger = p.send(submit(3, "no link").replace(`from='${REPLICA}'`, "from='dmuc.elsewhere.test'"));
  assert.equal(stranger.length, 1);
  assert.ok(stranger[0]!.getChild("error")?.getChild("item-not-found"), "a replica without a link is told so");
});

/** linkedRoom() with Valdis also served by the replica. */
function twoOnReplica(): Primary {
  const { p } = linkedRoom();
  const sent = p.send(`<presence from='${VALDIS}' to='${ROOM}/Valdis'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const enter = sentTo(sent, REPLICA).find((s) => s.name === "iq")!;
  p.send(`<iq type='result' id='${enter.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  return p;
}

const bounce = (to: string) =>
  `<message type='error' from='${REPLICA}' to='${to}'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`;

test("netsplit: a bounce from the replica splits the link; its users' copies are held, never sent to them directly", () => {
  const p = twoOnReplica();
  const sent = p.send(bounce(`${ROOM}/Owner`));
  assert.equal(p.link()!.state, "split");
  assert.ok(p.effects.some((e) => e.kind === "audit" && e.record.kind === "link.split"));
  assert.deepEqual(sentTo(sent, "oulubox.test"), [], "the users' server is not asked: its users are not served directly");
  const away = sentTo(sent, OWNER).filter((s) => s.name === "presence");
  assert.deepEqual(away.map((s) => `${s.attrs.from} ${s.getChildText("show")}`).sort(), [`${ROOM}/Valdis away`, `${ROOM}/Wumpus away`], "those behind the split are shown away");
  const during = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>during</body></message>`);
  assert.deepEqual(during.map((s) => s.attrs.to), [OWNER], "nothing to the replica, nothing directly to its users");
  // A user's server bouncing with remote-server-not-found does not make the user leave.
  p.send(`<presence type='error' from='${WUMPUS}' to='${ROOM}/Wumpus'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`);
  assert.ok(p.state.rooms.get(ROOM)!.occupants.has("Wumpus"));
});

test("netsplit: a message during the split reaches the replica's users only through the netjoin's catch-up, read from the history table", () => {
  const p = twoOnReplica();
  p.send(bounce(ROOM));
  const during = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>held</body></message>`);
  assert.deepEqual(during.map((s) => s.attrs.to), [OWNER], "nothing directly to the replica's users, even if their server could be reached");
  p.now += 6_000;
  const pings = sentTo(p.tick(), REPLICA).filter((s) => s.name === "iq");
  assert.ok(pings.length > 0, "the split replica is pinged");
  const netjoin = sentTo(p.send(`<iq type='result' id='${pings[0]!.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`), REPLICA).find((s) => s.getChild("netjoin", DMUC))!;
  const element = netjoin.getChild("netjoin", DMUC)!;
  assert.notEqual(element.attrs.catchup, "false", "the replica delivers what its users missed");
  assert.equal(element.getChildren("message").length, 0, "the messages are not in the netjoin: the replica reads them in pages");
  // The replica asks for what came after the last message it has: one page, read from the history table.
  const held = p.state.rooms.get(ROOM)!.history.at(-1)!;
  const before = p.state.rooms.get(ROOM)!.history.at(-2)!;
  p.send(`<iq type='get' id='c1' from='${REPLICA}' to='${ROOM}'><catchup xmlns='${DMUC}' since='${new Date(p.now).toISOString()}' after='${before.stanzaId}'/></iq>`);
  const read = p.effects.find((e) => e.kind === "archive-read");
  assert.ok(read && read.kind === "archive-read");
  assert.deepEqual({ ...read.query }, { roomJid: ROOM, sender: { kind: "anyone" }, includeUnarchived: true, afterId: before.stanzaId, from: "oldest", max: 50 });
  const page = read.then({ ok: true, complete: true, count: 1, items: [{ archiveId: held.stanzaId, at: held.at, nick: held.nick, senderJid: held.senderJid, stanza: held.stanza }] });
  const [answer] = page.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  assertMatches(
    answer!,
    parseXml(`<iq type='result' id='c1' from='${ROOM}' to='${REPLICA}'><catchup xmlns='${DMUC}' complete='true'>
      <message type='groupchat' from='${ROOM}/Owner'><body>held</body><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='${held.at.toISOString()}'/></message>
    </catchup></iq>`),
  );
  // A position the history does not know (purged): everything since the split instead.
  const retry = read.then({ ok: false, reason: "unknown-id" }).find((e) => e.kind === "archive-read");
  assert.ok(retry && retry.kind === "archive-read" && retry.query.afterId === undefined && retry.query.start !== undefined);
  // Only a linked replica may read.
  const [refused] = p.send(`<iq type='get' id='c2' from='dmuc.elsewhere.test' to='${ROOM}'><catchup xmlns='${DMUC}' since='${new Date(p.now).toISOString()}'/></iq>`);
  assert.equal(refused?.attrs.type, "error");
});

test("netjoin: the replica answers again, gets what it missed, and hands over its users' messages with their times", () => {
  const p = twoOnReplica();
  p.send(bounce(ROOM));
  const splitAt = p.now;
  p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>missed</body></message>`);
  p.now += 6_000;
  const [ping] = sentTo(p.tick(), REPLICA);
  assert.ok(ping!.getChild("ping", "urn:xmpp:ping"), "a split replica is pinged every 5 s");
  const [netjoin] = p.send(`<iq type='result' id='${ping!.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  const body = netjoin!.getChild("netjoin", DMUC)!;
  assert.equal(new Date(body.attrs.since!).getTime(), splitAt);
  assert.deepEqual(body.getChildren("message").length, 0, "what it missed it reads in pages afterwards");
  assert.equal(p.link()!.state, "syncing");

  const stamp = new Date(splitAt + 2_000).toISOString();
  const healed = p.send(`<iq type='result' id='${netjoin!.attrs.id}' from='${REPLICA}' to='${ROOM}'><netjoin xmlns='${DMUC}'>
    <occupant jid='${WUMPUS}' nick='Wumpus'/>
    <message from='${WUMPUS}' to='${ROOM}' type='groupchat'><body>still here?</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/><delay xmlns='urn:xmpp:delay' from='${REPLICA}' stamp='${stamp}'/></message>
  </netjoin></iq>`);
  const [toOwner] = sentTo(healed, OWNER).filter((s) => s.name === "message");
  assert.equal(toOwner!.getChildText("body"), "still here?");
  assert.equal(toOwner!.getChild("delay", "urn:xmpp:delay")!.attrs.stamp, stamp, "taken with its original time");
  const stored = p.state.rooms.get(ROOM)!.history.at(-1)!;
  assert.equal(stored.at.toISOString(), stamp);
  // Valdis was not listed: he left during the split, and the others see him go.
  assert.ok(!p.state.rooms.get(ROOM)!.sessionNicks.has(VALDIS));
  assert.ok(sentTo(healed, OWNER).some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/Valdis` && s.attrs.type === "unavailable"));
  assert.equal(p.link()!.state, "active");
  assert.deepEqual([...p.link()!.members], [WUMPUS]);
  assert.ok(sentTo(healed, OWNER).some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/Wumpus` && !s.getChild("show")), "and back at netjoin");
  assert.ok(p.effects.some((e) => e.kind === "audit" && e.record.kind === "link.healed"));
});

test("netjoin: a session whose ENTER the replica never took is not taken for gone, but moved onto it again", () => {
  const { p } = linkedRoom();
  // Valdis enters; the link splits before the replica answers his ENTER (it may never have arrived).
  p.send(entry(VALDIS, "Valdis"));
  p.send(bounce(ROOM));
  p.now += 6_000;
  const [ping] = sentTo(p.tick(), REPLICA);
  const [netjoin] = p.send(`<iq type='result' id='${ping!.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  const healed = p.send(`<iq type='result' id='${netjoin!.attrs.id}' from='${REPLICA}' to='${ROOM}'><netjoin xmlns='${DMUC}'><occupant jid='${WUMPUS}' nick='Wumpus'/></netjoin></iq>`);
  assert.ok(p.state.rooms.get(ROOM)!.sessionNicks.has(VALDIS), "still in the room");
  assert.ok(!sentTo(healed, OWNER).some((s) => s.attrs.from === `${ROOM}/Valdis` && s.attrs.type === "unavailable"), "nobody sees him leave");
  const enter = sentTo(healed, REPLICA).flatMap((s) => s.getChildren("enter", DMUC));
  assert.deepEqual(enter.map((e) => `${e.attrs.jid} ${e.attrs.silent}`), [`${VALDIS} true`]);
  assert.ok(p.link()!.members.has(VALDIS));
});

test("netjoin: a replica that lost the room is linked again from the start", () => {
  const p = twoOnReplica();
  p.send(bounce(ROOM));
  p.now += 6_000;
  const [ping] = sentTo(p.tick(), REPLICA);
  const [netjoin] = p.send(`<iq type='result' id='${ping!.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  const [replicate] = p.send(`<iq type='error' id='${netjoin!.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  assert.ok(replicate!.getChild("replicate", DMUC));
  assert.equal(p.link()!.state, "negotiating");
});

test("link state changes are written for operators (replicas rows), traffic counters are not", () => {
  const p = twoOnReplica();
  p.send(bounce(ROOM));
  const saved = p.effects.flatMap((e) => (e.kind === "store" && e.write.op === "link.save" ? [e.write] : []));
  assert.equal(saved.length, 1);
  assert.equal(saved[0]!.state, "split");
  assert.equal(saved[0]!.replicaJid, REPLICA);
  p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>x</body></message>`);
  assert.ok(!p.effects.some((e) => e.kind === "store" && e.write.op === "link.save"), "no write for ordinary traffic");
});

/** twoOnReplica(), split, then healed by a netjoin whose answer is `body`; returns what the answer caused. */
function healWith(p: Primary, body: string): Element[] {
  p.send(bounce(ROOM));
  p.now += 6_000;
  const [ping] = sentTo(p.tick(), REPLICA);
  const [netjoin] = p.send(`<iq type='result' id='${ping!.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  return p.send(`<iq type='result' id='${netjoin!.attrs.id}' from='${REPLICA}' to='${ROOM}'><netjoin xmlns='${DMUC}'>${body}</netjoin></iq>`);
}

const occupantsNow = `<occupant jid='${WUMPUS}' nick='Wumpus'/><occupant jid='${VALDIS}' nick='Valdis'/>`;

test("netjoin: a user who entered at the split replica is admitted by the room, and only the others hear of it", () => {
  const p = twoOnReplica();
  const healed = healWith(p, `${occupantsNow}<occupant jid='${MSA}' nick='Efchen'/>`);
  assert.equal(p.state.rooms.get(ROOM)!.sessionNicks.get(MSA), "Efchen");
  assert.ok(p.link()!.members.has(MSA));
  assert.ok(sentTo(healed, OWNER).some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/Efchen`));
  assert.equal(sentTo(healed, MSA).length, 0, "the replica already gave it the roster");
  assert.ok(!sentTo(healed, REPLICA).some((s) => s.getChild("enter", DMUC)), "no ENTER for it");
});

test("netjoin: a user the room would not have let in (banned) is let go by the replica with the room's error", () => {
  const p = twoOnReplica();
  p.send(`<iq from='${OWNER}' to='${ROOM}' id='ban' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='msa@oulubox.test'/></query></iq>`);
  const healed = healWith(p, `${occupantsNow}<occupant jid='${MSA}' nick='Efchen'/>`);
  assert.ok(!p.state.rooms.get(ROOM)!.sessionNicks.has(MSA));
  const leave = sentTo(healed, REPLICA).map((s) => s.getChild("leave", DMUC)).find((l) => l?.attrs.jid === MSA);
  assert.ok(leave, "LEAVE for it");
  assert.equal(leave!.getChild("presence")!.attrs.type, "error");
  assert.ok(!p.link()!.members.has(MSA));
});

test("netjoin: a kick by the replica's moderator during the split is applied by the room as that moderator's", () => {
  const p = twoOnReplica();
  // Wumpus becomes a moderator (the room's owner says so); Valdis is a participant.
  p.send(`<iq from='${OWNER}' to='${ROOM}' id='mod' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Wumpus' role='moderator'/></query></iq>`);
  const healed = healWith(p, `<occupant jid='${WUMPUS}' nick='Wumpus'/><kick jid='${VALDIS}' nick='Valdis' actor='${WUMPUS}'>spam</kick>`);
  assert.ok(!p.state.rooms.get(ROOM)!.sessionNicks.has(VALDIS));
  const toOwner = sentTo(healed, OWNER).find((s) => s.name === "presence" && s.attrs.from === `${ROOM}/Valdis`)!;
  assert.ok(toOwner.getChild("x", "http://jabber.org/protocol/muc#user")!.getChildren("status").some((s) => s.attrs.code === "307"), "a kick (307), not a plain departure");
  assert.equal(sentTo(healed, VALDIS).length, 0, "the replica told Valdis already");
  assert.ok(!sentTo(healed, REPLICA).some((s) => s.getChild("leave", DMUC)?.attrs.jid === VALDIS));
  assert.ok(!sentTo(healed, WUMPUS).length, "the moderator gets no answer to a request it did not send");
  assert.ok(p.effects.some((e) => e.kind === "audit" && e.record.kind === "occupant.kicked"));
});

test("a submission held through a split is taken with its own time, and the link's clock is not that time", () => {
  const { p } = linkedRoom();
  const sentAt = new Date(p.now - 60_000).toISOString();
  const out = p.send(
    `<message from='${REPLICA}' to='${ROOM}' id='s1'><link xmlns='${DMUC}' stream='rs' seq='1'/><submit xmlns='${DMUC}' stamp='${sentAt}'><message from='${WUMPUS}' to='${ROOM}' type='groupchat'><body>late</body></message></submit></message>`,
  );
  const toOwner = sentTo(out, OWNER).find((s) => s.getChildText("body") === "late")!;
  assert.equal(toOwner.getChild("delay", "urn:xmpp:delay")?.attrs.stamp, sentAt, "the others see when it was said");
  assert.ok(sentTo(out, REPLICA).some((s) => s.getChildText("body") === "late"));
  p.now += 1_000;
  p.tick();
  assert.equal(p.link()!.state, "active", "just sent: not taken for a stanza unacknowledged for a minute");
});

test("durability: the replica's stream position is written with the submission it applied; a restarted primary does not take it twice", async () => {
  const { resumedStream, newStream } = await import("../../src/core/dmuc/link/stream.js");
  const { p } = linkedRoom();
  const submit = (seq: number, body: string) =>
    `<message from='${REPLICA}' to='${ROOM}' id='s${seq}'><link xmlns='${DMUC}' stream='rs' seq='${seq}'/><submit xmlns='${DMUC}' stamp='${new Date(p.now).toISOString()}'><message from='${WUMPUS}' to='${ROOM}' type='groupchat'><body>${body}</body></message></submit></message>`;
  p.send(submit(1, "taken once"));
  const writes = p.effects.flatMap((e) => (e.kind === "store" ? [e.write] : []));
  assert.ok(writes.some((w) => w.op === "history.append"));
  const position = writes.find((w) => w.op === "link.position");
  assert.deepEqual(position, { op: "link.position", roomJid: ROOM, peerJid: REPLICA, position: { outStream: null, outNextSeq: null, inStream: "rs", inApplied: 1, earlyOriginIds: [], catchUp: null } });

  // Killed before the replica had the acknowledgement; restarted with what was committed: a new stream
  // of its own, the replica's followed from where it was applied.
  const link = p.link()!;
  const committed = position!.op === "link.position" ? position.position : null;
  const restarted = { ...link, stream: resumedStream(newStream<Element>("after-restart", p.now), committed!.inStream, committed!.inApplied) };
  p.state = { ...p.state, dmuc: { ...p.state.dmuc, links: new Map([[ROOM, new Map([[REPLICA, restarted]])]]) } };
  const resent = p.send(submit(1, "taken once"));
  assert.equal(resent.filter((s) => s.getChildText("body") === "taken once").length, 0, "the resent submission is not taken again");
  assert.deepEqual(sentTo(resent, REPLICA).map((s) => [LINK(s)?.attrs.ack, LINK(s)?.attrs.acked]), [["1", "rs"]], "it is acknowledged at once");
  const next = p.send(submit(2, "the next one"));
  assert.equal(sentTo(next, OWNER).filter((s) => s.getChildText("body") === "the next one").length, 1);
});

test("a bounce the replica submits on the link (its check found the session gone) removes the session with 333; the link stays up", () => {
  const p = twoOnReplica();
  const gone = `<presence type='error' from='${VALDIS}' to='${ROOM}'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`;
  const out = p.send(`<message from='${REPLICA}' to='${ROOM}' id='g1'><link xmlns='${DMUC}' stream='rs' seq='1'/><submit xmlns='${DMUC}' stamp='${new Date(p.now).toISOString()}'>${gone}</submit></message>`);
  assert.equal(p.link()!.state, "active", "not a netsplit: it came over the link");
  assert.ok(!p.state.rooms.get(ROOM)!.occupants.has("Valdis"));
  const [left] = sentTo(out, OWNER).filter((s) => s.name === "presence" && s.attrs.from === `${ROOM}/Valdis`);
  assert.equal(left!.attrs.type, "unavailable");
  assert.deepEqual(left!.getChild("x", "http://jabber.org/protocol/muc#user")!.getChildren("status").map((s) => s.attrs.code), ["333"]);
  const leave = sentTo(out, REPLICA).find((s) => s.getChild("leave", DMUC));
  assert.equal(leave?.getChild("leave", DMUC)!.attrs.jid, VALDIS, "the replica is told to stop serving the session");
  assert.ok(!p.link()!.members.has(VALDIS));
});

/** What Prosody sends back for a stanza to an external component that is not connected (mod_component). */
const notConnected = (name: string, id: string, to: string) =>
  `<${name} type='error' id='${id}' from='${REPLICA}' to='${to}'><error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Component unavailable</text><not-connected xmlns='xmpp:prosody.im/protocol/component'/></error></${name}>`;

test("a replica that is down (its own server says so): its users are served directly, and the catch-up pages say who got what", () => {
  const p = twoOnReplica();
  // A broadcast to the replica (addressed by its stanza-id) bounces from the replica's own server.
  const first = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat' id='o-1'><body>first</body></message>`);
  const copy = sentTo(first, REPLICA).find((s) => s.getChildText("body") === "first")!;
  const delivered = p.send(notConnected("message", copy.attrs.id!, ROOM));
  assert.equal(p.link()!.state, "split");
  assert.deepEqual(sentTo(delivered, WUMPUS).concat(sentTo(delivered, VALDIS)).filter((s) => s.name === "message").map((s) => s.getChildText("body")), ["first", "first"], "the bounced message goes to the users directly");
  // What the room says while the replica is down goes to them directly too; the user's own messages come over s2s.
  const second = p.send(`<message from='${WUMPUS}' to='${ROOM}' type='groupchat' id='w-1'><body>second</body></message>`);
  assert.deepEqual(sentTo(second, VALDIS).map((s) => s.getChildText("body")), ["second"]);
  assert.deepEqual(sentTo(second, WUMPUS).map((s) => s.getChildText("body")), ["second"], "the sender gets its echo");
  assert.deepEqual(sentTo(second, REPLICA), [], "nothing to the replica meanwhile");
  // The direct copy to Valdis bounces after all (his server cut off): the replica must deliver it.
  p.send(`<message type='error' id='w-1' from='${VALDIS}' to='${ROOM}'><error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`);
  assert.ok(p.state.rooms.get(ROOM)!.occupants.has("Valdis"), "a bounce during the split is not a departure");
  // The replica is back: the netjoin lists, per message, the sessions served directly. A replica
  // that is down is asked every second whether it is back.
  p.now += 1_000;
  assert.ok(sentTo(p.tick(), REPLICA).some((s) => s.getChild("ping", "urn:xmpp:ping")), "pinged after a second");
  p.now += 1_000;
  const ping = sentTo(p.tick(), REPLICA).find((s) => s.getChild("ping", "urn:xmpp:ping"))!;
  const [netjoin] = p.send(`<iq type='result' id='${ping.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  const element = netjoin!.getChild("netjoin", DMUC)!;
  assert.deepEqual(element.getChildren("served"), [], "the netjoin carries no messages, so no <served/>: the pages do");
  // Its catch-up starts after the split point: the message before the first one it never got.
  const history = p.state.rooms.get(ROOM)!.history;
  const firstAt = history.findIndex((h) => h.stanza.getChildText("body") === "first");
  if (firstAt > 0) assert.equal(element.attrs.after, history[firstAt - 1]!.stanzaId);
  else assert.equal(element.attrs["has-none"], "true", "the replica had none of the history when it split: its catch-up reads from the split's time");
  // The replica reads what it missed; the page, read from the history rows, says who has which message.
  p.send(`<iq type='get' id='c1' from='${REPLICA}' to='${ROOM}'><catchup xmlns='${DMUC}' since='${element.attrs.since}'/></iq>`);
  const read = p.effects.find((e) => e.kind === "archive-read");
  assert.ok(read && read.kind === "archive-read");
  const rows = p.state.rooms.get(ROOM)!.history.map((h) => ({ archiveId: h.stanzaId, at: h.at, nick: h.nick, senderJid: h.senderJid, stanza: h.stanza }));
  const [answer] = read.then({ ok: true, complete: true, count: rows.length, items: rows }).flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  const page = answer!.getChild("catchup", DMUC)!;
  const served = (body: string) => {
    const id = page.getChildren("message").find((m) => m.getChildText("body") === body)?.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.id;
    return (page.getChildren("served").find((s) => s.attrs.id === id)?.getChildren("session") ?? []).map((s) => s.attrs.jid).sort();
  };
  assert.deepEqual(served("first"), [VALDIS, WUMPUS].sort());
  assert.deepEqual(served("second"), [WUMPUS], "not Valdis: his copy bounced");
  // A late bounce from before the replica came back (another s2s connection) does not split it again.
  p.send(notConnected("message", "an-old-copy", ROOM));
  assert.equal(p.link()!.state, "syncing");
  // Healed: copies go through the replica again, not directly.
  p.send(`<iq type='result' id='${netjoin!.attrs.id}' from='${REPLICA}' to='${ROOM}'><netjoin xmlns='${DMUC}'><occupant jid='${WUMPUS}' nick='Wumpus'/><occupant jid='${VALDIS}' nick='Valdis'/></netjoin></iq>`);
  const after = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>after</body></message>`);
  assert.deepEqual(sentTo(after, WUMPUS).concat(sentTo(after, VALDIS)), []);
  assert.equal(sentTo(after, REPLICA).filter((s) => s.getChildText("body") === "after").length, 1);
});

test("a bounce without the component's own word (a cut s2s link) still holds the users' copies", () => {
  const p = twoOnReplica();
  const first = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>first</body></message>`);
  const copy = sentTo(first, REPLICA).find((s) => s.getChildText("body") === "first")!;
  const bounced = p.send(`<message type='error' id='${copy.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`);
  assert.deepEqual(sentTo(bounced, WUMPUS).concat(sentTo(bounced, VALDIS)), []);
  const during = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>during</body></message>`);
  assert.deepEqual(during.map((s) => s.attrs.to), [OWNER]);
  // The split ping then bounces from the replica's own server saying it is not connected: direct from now on.
  p.now += 6_000;
  const ping = sentTo(p.tick(), REPLICA).find((s) => s.getChild("ping", "urn:xmpp:ping"))!;
  p.send(notConnected("iq", ping.attrs.id!, ROOM));
  const later = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>later</body></message>`);
  assert.deepEqual(later.map((s) => s.attrs.to).sort(), [OWNER, VALDIS, WUMPUS].sort());
});

test("a replica user's message that reaches the room twice (through the replica, then over s2s from the users' server) is taken once", () => {
  const p = twoOnReplica();
  const first = p.send(`<message from='${WUMPUS}' to='${ROOM}' type='groupchat' id='w1'><body>once</body><origin-id xmlns='urn:xmpp:sid:0' id='o-9'/></message>`);
  assert.equal(sentTo(first, OWNER).filter((s) => s.getChildText("body") === "once").length, 1);
  const again = p.send(`<message from='${WUMPUS}' to='${ROOM}' type='groupchat' id='w1'><body>once</body><origin-id xmlns='urn:xmpp:sid:0' id='o-9'/></message>`);
  assert.deepEqual(again, [], "not broadcast, not stored again");
  assert.equal(p.state.rooms.get(ROOM)!.history.filter((e) => e.stanza.getChildText("body") === "once").length, 1);
  // Another user's message with the same origin-id is a different message.
  const other = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>mine</body><origin-id xmlns='urn:xmpp:sid:0' id='o-9'/></message>`);
  assert.equal(sentTo(other, OWNER).length, 1);
});

test("a replica that is down: the bounce of a copy sent again is left to the netjoin (the first copy may have reached the replica)", () => {
  const p = twoOnReplica();
  const first = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>sent twice</body></message>`);
  const copy = sentTo(first, REPLICA).find((s) => s.getChildText("body") === "sent twice")!;
  p.now += 2_500;
  const resent = sentTo(p.tick(), REPLICA).filter((s) => s.getChildText("body") === "sent twice");
  assert.equal(resent.length, 1, "unacknowledged for 2 s: sent again");
  const bounced = p.send(notConnected("message", copy.attrs.id!, ROOM));
  assert.equal(p.link()!.state, "split");
  assert.deepEqual(sentTo(bounced, WUMPUS).concat(sentTo(bounced, VALDIS)).filter((s) => s.name === "message"), [], "not delivered directly");
  const later = p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>later</body></message>`);
  assert.equal(sentTo(later, WUMPUS).length + sentTo(later, VALDIS).length, 2, "what comes after goes directly");
});
