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

/** A room with its owner on the primary's own server and Wumpus from oulubox, whose replica is linked. */
function linkedRoom(): { p: Primary; enterAnswers: Element[] } {
  const p = new Primary();
  p.send(`<presence from='${OWNER}' to='${ROOM}/Owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  p.send(`<iq from='${OWNER}' to='${ROOM}' id='c' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>before the link</body></message>`);

  // Wumpus enters: served directly, and his domain is probed (XEP-0030 items, then info).
  const join = p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assert.ok(sentTo(join, WUMPUS).some((s) => s.name === "presence"), "served directly before any link exists");
  const [items] = sentTo(join, "oulubox.test");
  assertMatches(items!, parseXml(`<iq type='get' from='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`));
  const [info] = p.send(`<iq type='result' id='${items!.attrs.id}' from='oulubox.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='${REPLICA}'/></query></iq>`);
  assertMatches(info!, parseXml(`<iq type='get' to='${REPLICA}' from='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`));
  const [replicate] = p.send(
    `<iq type='result' id='${info!.attrs.id}' from='${REPLICA}' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='dmuc-replica'/><feature var='${DMUC}'/></query></iq>`,
  );
  assertMatches(replicate!, parseXml(`<iq type='set' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='30' history='20'/></iq>`));
  assert.equal(p.link()?.state, "negotiating");

  // Accepted: the room's state, then Wumpus moves to the replica without noticing (silent ENTER).
  const sync = p.send(`<iq type='result' id='${replicate!.attrs.id}' from='${REPLICA}' to='${ROOM}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='30' history='10'/></iq>`);
  const [state, enter] = sync;
  assert.equal(state!.getChild("state", DMUC)?.attrs.last, "true");
  const presences = state!.getChild("state", DMUC)!.getChildren("presence").map((pr) => pr.attrs.from);
  assert.deepEqual(presences.sort(), [`${ROOM}/Owner`, `${ROOM}/Wumpus`]);
  assert.equal(state!.getChild("state", DMUC)!.getChildren("message").length, 1, "the history goes along");
  assertMatches(enter!, parseXml(`<iq type='set' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${WUMPUS}' nick='Wumpus' silent='true'/></iq>`));
  const link = p.link()!;
  assert.equal(link.state, "active");
  assert.equal(link.keepaliveSeconds, 30);
  assert.equal(link.historyLimit, 10);
  assert.deepEqual([...link.members], [WUMPUS]);
  // The replica answers the state and the ENTER (an IQ left unanswered for 30 s would split the link).
  for (const iq of sync) p.send(`<iq type='result' id='${iq.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  assert.equal(p.state.dmuc.pending.size, 0);
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

test("a replicate the replica refuses (none of its users in the room any more) is asked again at the next entry", () => {
  const p = new Primary();
  p.send(`<presence from='${OWNER}' to='${ROOM}/Owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  p.send(`<iq from='${OWNER}' to='${ROOM}' id='c' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  const [items] = sentTo(p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus'><x xmlns='http://jabber.org/protocol/muc'/></presence>`), "oulubox.test");
  const [info] = p.send(`<iq type='result' id='${items!.attrs.id}' from='oulubox.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='${REPLICA}'/></query></iq>`);
  const [replicate] = p.send(
    `<iq type='result' id='${info!.attrs.id}' from='${REPLICA}' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='dmuc-replica'/><feature var='${DMUC}'/></query></iq>`,
  );
  // Wumpus left before the replicate arrived: the replica's server says none of its users is in the room.
  p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus' type='unavailable'/>`);
  p.send(`<iq type='error' id='${replicate!.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  assert.equal(p.link(), undefined);
  p.now += 5_000;
  // He comes back: the room asks the replica again instead of serving his domain as plain MUC for good.
  const again = sentTo(p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus'><x xmlns='http://jabber.org/protocol/muc'/></presence>`), REPLICA);
  assert.ok(again.some((s) => s.getChild("replicate", DMUC)), again.map(String).join("\n"));
  assert.equal(p.link()?.state, "negotiating");
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

test("a refused ENTER falls back to direct delivery of what the user would have got", () => {
  const { p } = linkedRoom();
  const sent = p.send(`<presence from='${VALDIS}' to='${ROOM}/Valdis'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const enter = sentTo(sent, REPLICA).find((s) => s.name === "iq")!;
  const fallback = p.send(`<iq type='error' id='${enter.attrs.id}' from='${REPLICA}' to='${ROOM}'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  const direct = sentTo(fallback, VALDIS);
  assert.ok(direct.some((s) => s.name === "presence" && s.attrs.from === `${ROOM}/Valdis`), "own presence");
  assert.ok(direct.some((s) => s.getChild("subject")), "subject");
  assert.ok(!p.link()!.members.has(VALDIS));
  assert.ok(p.effects.some((e) => e.kind === "audit" && e.record.kind === "dmuc.refused"));
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
  assert.deepEqual([a.attrs.seq, b.attrs.seq], ["1", "2"]);
  p.now += 1_000;
  p.send(`<message from='${REPLICA}' to='${ROOM}'><link xmlns='${DMUC}' ack='2' acked='${a.attrs.stream}'/></message>`);
  p.now += 10_000;
  p.tick();
  assert.equal(p.link()!.state, "active", "acknowledged: nothing outstanding");
  const third = sentTo(p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>three</body></message>`), REPLICA)[0]!;
  assert.equal(LINK(third)!.attrs.seq, "3");
  p.now += 2_000;
  const resent = sentTo(p.tick(), REPLICA).filter((s) => LINK(s)?.attrs.seq === "3");
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

const MSA = "msa@oulubox.test/bicycle";
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
