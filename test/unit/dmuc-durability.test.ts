// DMUC2 link durability on the replica (docs/PROTOCOL.md "Durability"): what the pure core asks to be
// committed (its place in both streams, its queue of unacknowledged submissions and split-time
// messages), and a replica restarted from exactly that going on where it was: the same stream and
// numbers, nothing lost, nothing the primary could take twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { parseXml } from "../helpers/xml.js";
import type { StoreWrite, StoredLinkPosition } from "../../src/core/store-writes.js";
import { restoredReplicaLink, type QueuedStanza } from "../../src/core/dmuc/replica-records.js";
import { restoredStream, resumedStream, newStream } from "../../src/core/dmuc/link/stream.js";
import { stepEstablished, DEFAULT_LINK_TIMERS } from "../../src/core/dmuc/link/channel.js";

const ROOM = "wallops@channel.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const LOCAL = "oulubox.test";
const RUBENRO = "rubenro@oulubox.test/shaver";
const MSA = "msa@oulubox.test/bicycle";
const DMUC = "urn:xmpp:tmp:dmuc:0";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

const room = (d: RoomDriver) => d.state.dmuc.replicated.get(ROOM)!;
const header = (s: Element) => s.getChild("link", DMUC);
const submissions = (out: Element[]) => to(out, ROOM).filter((s) => s.getChild("submit", DMUC));
const bodyOf = (submission: Element) => submission.getChild("submit", DMUC)!.getChildElements()[0]!.getChildText("body");

function rosterPresence(nick: string, role: string): string {
  return `<presence from='${ROOM}/${nick}'><x xmlns='${MUC_USER}'><item affiliation='none' role='${role}'/></x></presence>`;
}

/** A linked room with rubenro (BigCheese) and msa (Efchen) in it. */
function linked(): RoomDriver {
  const d = new RoomDriver(REPLICA, [], { localDomain: LOCAL });
  const [check] = d.send(`<iq type='set' id='r1' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='60' history='50'/></iq>`);
  d.send(`<iq type='result' id='${check!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  d.send(`<iq type='set' id='s1' from='${ROOM}' to='${REPLICA}'><state xmlns='${DMUC}' last='true'>${rosterPresence("Wumpus", "moderator")}</state></iq>`);
  for (const [i, [jid, nick]] of [[RUBENRO, "BigCheese"], [MSA, "Efchen"]].entries()) {
    d.send(rosterPresence(nick!, "participant").replace("<presence ", `<presence to='${REPLICA}' `));
    const [query] = d.send(`<iq type='set' id='e${i}' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${jid}' nick='${nick}'/></iq>`);
    d.send(`<iq type='result' id='${query!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  }
  return d;
}

/**
 * What the database holds after the writes the driver's effects asked for, folded in order: the last
 * position written, and the queue rows added and not yet acknowledged or taken.
 */
class Committed {
  position: StoredLinkPosition | null = null;
  queue: QueuedStanza[] = [];

  take(d: RoomDriver): StoreWrite[] {
    const writes = d.effects.flatMap((e) => (e.kind === "store" ? [e.write] : []));
    for (const w of writes) {
      if (w.op === "link.position") this.position = w.position;
      else if (w.op === "queue.add") this.queue.push({ stream: w.stream, seq: w.seq, stanza: w.stanza, at: w.at });
      else if (w.op === "queue.acknowledged") this.queue = this.queue.filter((q) => !(q.stream === w.stream && q.seq !== null && q.seq <= w.upTo));
      else if (w.op === "queue.split-taken") this.queue = this.queue.filter((q) => q.seq !== null);
    }
    return writes;
  }

  /** The replica killed and started again from what was committed (src/shell/room-loader.ts). */
  restart(d: RoomDriver): void {
    const restored = restoredReplicaLink(this.position, this.queue, "new-stream", d.now.getTime());
    const copy = { ...room(d), ...restored, splitSince: d.now.getTime() };
    d.state = { ...d.state, dmuc: { ...d.state.dmuc, replicated: new Map([[ROOM, copy]]) } };
  }
}

test("a submission is queued in the same commit as the stream's next number; the acknowledgement deletes it", () => {
  const d = linked();
  const db = new Committed();
  db.take(d);
  const [sent] = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>one</body></message>`);
  const writes = db.take(d);
  const stream = room(d).link.id;
  assert.deepEqual(header(sent!)?.attrs.seq, "1");
  assert.deepEqual(writes.map((w) => w.op), ["link.position", "queue.add"]);
  assert.deepEqual(db.position, { outStream: stream, outNextSeq: 2, inStream: null, inApplied: 0, earlyOriginIds: [], catchUp: null });
  assert.deepEqual(db.queue.map((q) => [q.stream, q.seq, q.stanza.getChildText("body")]), [[stream, 1, "one"]]);
  d.send(`<message from='${ROOM}' to='${REPLICA}'><link xmlns='${DMUC}' ack='1' acked='${stream}'/></message>`);
  assert.deepEqual(db.take(d).map((w) => w.op), ["queue.acknowledged"]);
  assert.equal(db.queue.length, 0);
});

test("a replica killed with unacknowledged submissions resends them, with their numbers, when the room answers", () => {
  const d = linked();
  const db = new Committed();
  db.take(d);
  d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>one</body></message>`);
  d.send(`<message from='${MSA}' to='${ROOM}' type='groupchat' id='c2'><body>two</body></message>`);
  db.take(d);
  const stream = room(d).link.id;
  // The primary acknowledged "one" only; the replica dies before "two" is acknowledged.
  d.send(`<message from='${ROOM}' to='${REPLICA}'><link xmlns='${DMUC}' ack='1' acked='${stream}'/></message>`);
  db.take(d);

  db.restart(d);
  assert.equal(room(d).link.id, stream, "the same stream");
  assert.equal(room(d).link.end.kind, "split", "split until the room answers");
  // Local continuation: the other local user gets "two" at once (it was not delivered early before).
  const early = d.tick();
  assert.deepEqual(to(early, RUBENRO).map((m) => m.getChildText("body")), ["two"]);
  assert.ok(to(early, ROOM).some((s) => header(s)?.attrs.probe === "true"), "the room is probed");
  db.take(d);
  assert.deepEqual(db.position?.earlyOriginIds.length, 1, "what local users saw early is committed too");

  // The room answers: "two" goes again as number 2 of the same stream, and nothing else.
  const healed = d.send(`<message from='${ROOM}' to='${REPLICA}'><link xmlns='${DMUC}' ack='1' acked='${stream}'/></message>`);
  const resent = submissions(healed);
  assert.deepEqual(resent.map((s) => [header(s)?.attrs.stream, header(s)?.attrs.seq, bodyOf(s)]), [[stream, "2", "two"]]);

  // Killed again before the acknowledgement: "two" is not delivered early a second time.
  db.take(d);
  db.restart(d);
  assert.equal(to(d.tick(), RUBENRO).length, 0);
  // The next submission follows on: number 3.
  d.send(`<message from='${ROOM}' to='${REPLICA}'><link xmlns='${DMUC}' ack='2' acked='${stream}'/></message>`);
  d.send(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
  const [three] = submissions(d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c3'><body>three</body></message>`));
  assert.deepEqual([header(three!)?.attrs.stream, header(three!)?.attrs.seq], [stream, "3"]);
});

test("messages sent during a split are committed, survive a restart, and go on the link at netjoin", () => {
  const d = linked();
  const db = new Committed();
  db.take(d);
  d.send(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
  const local = d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>during the split</body></message>`);
  assert.equal(to(local, MSA).length, 1, "delivered locally at once");
  assert.deepEqual(db.take(d).filter((w) => w.op === "queue.add").map((w) => w.op === "queue.add" && [w.seq, w.stanza.getChildText("body")]), [[null, "during the split"]]);

  db.restart(d);
  assert.deepEqual(room(d).splitQueue.map((q) => q.stanza.getChildText("body")), ["during the split"]);
  const out = d.send(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
  assert.equal(to(out, MSA).filter((m) => m.getChildText("body") === "during the split").length, 0, "not delivered again");
  const [queued] = submissions(out);
  assert.deepEqual([header(queued!)?.attrs.seq, bodyOf(queued!)], ["1", "during the split"]);
  const writes = db.take(d);
  assert.ok(writes.findIndex((w) => w.op === "queue.split-taken") < writes.findIndex((w) => w.op === "queue.add"));
  assert.deepEqual(db.queue.map((q) => q.seq), [1], "kept, numbered, until acknowledged");
});

test("pure: a restored stream resends what was unacknowledged with its old numbers; a resumed one drops what it applied", () => {
  const item = (n: number) => parseXml(`<m n='${n}'/>`);
  const saved = { id: "S", outbox: { nextSeq: 5, unacked: [3, 4].map((seq) => ({ seq, item: item(seq), transmitted: null })) }, peer: "P", inbox: { applied: 7 } };
  const restored = restoredStream(saved, 1_000);
  assert.equal(restored.end.kind, "split");
  const healed = stepEstablished(restored.end, { type: "heard", ack: 3, carried: null, probe: false }, 2_000, DEFAULT_LINK_TIMERS);
  assert.deepEqual(
    healed.actions.filter((a) => a.type === "transmit").map((a) => a.type === "transmit" && [a.seq, a.ack]),
    [[4, 7]],
  );
  const sent = stepEstablished(healed.link as typeof restored.end, { type: "send", item: item(5) }, 2_000, DEFAULT_LINK_TIMERS);
  assert.deepEqual(sent.actions.map((a) => a.type === "transmit" && a.seq), [5]);

  const resumed = resumedStream(newStream<Element>("mine", 0), "R", 4);
  assert.equal(resumed.peer, "R");
  if (resumed.end.kind === "abandoned") return;
  const dup = stepEstablished(resumed.end, { type: "heard", ack: 0, carried: { seq: 4, item: item(4) }, probe: false }, 1, DEFAULT_LINK_TIMERS);
  assert.deepEqual(dup.actions.map((a) => a.type), ["ack"]);
  const next = stepEstablished(resumed.end, { type: "heard", ack: 0, carried: { seq: 5, item: item(5) }, probe: false }, 1, DEFAULT_LINK_TIMERS);
  assert.deepEqual(next.actions.map((a) => a.type), ["deliver"]);
});

const chat = (sid: string, body: string, nick = "Wumpus") =>
  `<message type='groupchat' from='${ROOM}/${nick}'><body>${body}</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='${sid}'/><delay xmlns='urn:xmpp:delay' from='${ROOM}' stamp='2026-01-01T00:00:00Z'/></message>`;

test("netjoin catch-up: pages asked from the last message the replica has, stored and delivered once; the place survives a restart", () => {
  const d = linked();
  const db = new Committed();
  // The replica has h1 (from a live broadcast).
  d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>before</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='h1'/></message>`);
  db.take(d);
  d.send(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
  const out = d.send(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>${rosterPresence("Wumpus", "moderator")}${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
  const [ask] = to(out, ROOM).filter((s) => s.getChild("catchup", DMUC));
  assert.equal(ask?.attrs.type, "get");
  assert.deepEqual(ask!.getChild("catchup", DMUC)!.attrs, { xmlns: DMUC, since: "2025-12-31T23:59:00.000Z", after: "h1" });
  db.take(d);
  assert.deepEqual(db.position?.catchUp, { since: new Date("2025-12-31T23:59:00Z"), after: "h1" });

  // First page: m1, m2, more to come. Delivered, stored, and the next page is asked after m2.
  const page1 = d.send(`<iq type='result' id='${ask!.attrs.id}' from='${ROOM}' to='${REPLICA}'><catchup xmlns='${DMUC}' complete='false'>${chat("m1", "one")}${chat("m2", "two")}</catchup></iq>`);
  assert.deepEqual(to(page1, RUBENRO).map((m) => m.getChildText("body")), ["one", "two"]);
  assert.ok(to(page1, RUBENRO).every((m) => m.getChild("delay", "urn:xmpp:delay")));
  const [ask2] = to(page1, ROOM).filter((s) => s.getChild("catchup", DMUC));
  assert.equal(ask2!.getChild("catchup", DMUC)!.attrs.after, "m2");
  const writes = db.take(d);
  assert.deepEqual(writes.filter((w) => w.op === "history.append").map((w) => w.op === "history.append" && w.entry.stanzaId), ["m1", "m2"]);
  assert.deepEqual(db.position?.catchUp?.after, "m2");

  // Killed before the answer; restarted: the next netjoin goes on after m2, not from the newest message.
  db.restart(d);
  d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>live</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='m9'/><link xmlns='${DMUC}' stream='P2' seq='1'/></message>`);
  const again = d.send(`<iq type='set' id='n2' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2026-01-01T00:00:00Z'>${rosterPresence("Wumpus", "moderator")}${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
  const [ask3] = to(again, ROOM).filter((s) => s.getChild("catchup", DMUC));
  assert.deepEqual(ask3!.getChild("catchup", DMUC)!.attrs, { xmlns: DMUC, since: "2025-12-31T23:59:00.000Z", after: "m2" });
  // The last page repeats m2 (had) and brings m3: only m3 is new; the catch-up ends.
  const last = d.send(`<iq type='result' id='${ask3!.attrs.id}' from='${ROOM}' to='${REPLICA}'><catchup xmlns='${DMUC}' complete='true'>${chat("m2", "two")}${chat("m3", "three")}</catchup></iq>`);
  assert.deepEqual(to(last, RUBENRO).map((m) => m.getChildText("body")), ["three"]);
  assert.equal(to(last, ROOM).filter((s) => s.getChild("catchup", DMUC)).length, 0);
  assert.equal(room(d).catchUp, null);
  db.take(d);
  assert.equal(db.position?.catchUp, null);
});

test("netjoin catch-up: starts at the primary's split point (after='...'), not at the replica's newest message; has-none reads from since", () => {
  const d = linked();
  d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>before</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='h1'/></message>`);
  // h3 reached us past a gap (h2 never came): our newest message is not where we are.
  d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>early</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='h3'/></message>`);
  d.send(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
  const out = d.send(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z' after='h1'>${rosterPresence("Wumpus", "moderator")}${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
  const [ask] = to(out, ROOM).filter((s) => s.getChild("catchup", DMUC));
  assert.deepEqual(ask!.getChild("catchup", DMUC)!.attrs, { xmlns: DMUC, since: "2025-12-31T23:59:00.000Z", after: "h1" });
  const page = d.send(`<iq type='result' id='${ask!.attrs.id}' from='${ROOM}' to='${REPLICA}'><catchup xmlns='${DMUC}' complete='true'>${chat("h2", "gap")}${chat("h3", "early")}</catchup></iq>`);
  assert.deepEqual(to(page, RUBENRO).map((m) => m.getChildText("body")), ["gap"], "the gap is filled, the early one not delivered again");

  const e = linked();
  e.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>early</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='h3'/></message>`);
  e.send(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
  const none = e.send(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z' has-none='true'>${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
  const [fromSince] = to(none, ROOM).filter((s) => s.getChild("catchup", DMUC));
  assert.deepEqual(fromSince!.getChild("catchup", DMUC)!.attrs, { xmlns: DMUC, since: "2025-12-31T23:59:00.000Z" });
});

test("netjoin catch-up: a page not answered within the link timeout is asked again from the same place", () => {
  const d = linked();
  d.send(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
  const out = d.send(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
  const [ask] = to(out, ROOM).filter((s) => s.getChild("catchup", DMUC));
  d.now = new Date(d.now.getTime() + 6_000);
  const [again] = to(d.tick(), ROOM).filter((s) => s.getChild("catchup", DMUC));
  assert.ok(again && again.attrs.id !== ask!.attrs.id);
  assert.equal(again.getChild("catchup", DMUC)!.attrs.after, ask!.getChild("catchup", DMUC)!.attrs.after);
});

test("netjoin catch-up: a message that came live during the catch-up is not delivered again by a page; pages go on to the end (the link also brings older messages late)", () => {
  const d = linked();
  d.send(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
  const out = d.send(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
  const [ask] = to(out, ROOM).filter((s) => s.getChild("catchup", DMUC));
  // m5 is broadcast live while the first page is on its way.
  const live = d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>five</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='m5'/><link xmlns='${DMUC}' stream='P2' seq='1'/></message>`);
  assert.deepEqual(to(live, RUBENRO).map((m) => m.getChildText("body")), ["five"]);
  // m5 may be a late copy of a message from before the netjoin: m6 after it still comes from the pages.
  const page = d.send(`<iq type='result' id='${ask!.attrs.id}' from='${ROOM}' to='${REPLICA}'><catchup xmlns='${DMUC}' complete='false'>${chat("m4", "four")}${chat("m5", "five")}${chat("m6", "six")}</catchup></iq>`);
  assert.deepEqual(to(page, RUBENRO).map((m) => m.getChildText("body")), ["four", "six"], "five not again");
  const [next] = to(page, ROOM).filter((s) => s.getChild("catchup", DMUC));
  assert.equal(next!.getChild("catchup", DMUC)!.attrs.after, "m6", "the next page after the last message read");
  // m6 then comes live too: held already, not delivered again.
  const late = d.send(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>six</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='m6'/><link xmlns='${DMUC}' stream='P2' seq='2'/></message>`);
  assert.equal(to(late, RUBENRO).length, 0);
  // An answer to a request that was replaced is not taken.
  const stale = d.send(`<iq type='result' id='${ask!.attrs.id}' from='${ROOM}' to='${REPLICA}'><catchup xmlns='${DMUC}' complete='true'>${chat("m7", "seven")}</catchup></iq>`);
  assert.equal(to(stale, RUBENRO).length, 0);
  const end = d.send(`<iq type='result' id='${next!.attrs.id}' from='${ROOM}' to='${REPLICA}'><catchup xmlns='${DMUC}' complete='true'>${chat("m7", "seven")}</catchup></iq>`);
  assert.deepEqual(to(end, RUBENRO).map((m) => m.getChildText("body")), ["seven"]);
  assert.equal(room(d).catchUp, null);
});

test("local continuation of more than 500 unacknowledged messages delivers each early once", () => {
  const d = linked();
  for (let i = 0; i < 600; i++) d.send(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c${i}'><body>m${i}</body></message>`);
  d.now = new Date(d.now.getTime() + 2_500);
  const first = to(d.tick(), MSA);
  assert.equal(first.length, 600, "suspect: all of them reach the other local user at once");
  d.now = new Date(d.now.getTime() + 1_000);
  assert.equal(to(d.tick(), MSA).length, 0, "and not again");
});
