// XEP-0313 for rooms in the pure core: queries from the XEP's examples parsed into the archive
// query the shell runs, access rules, and the rows it reads turned into XEP-shaped answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";
import type { Effect } from "../../src/core/effects.js";
import type { ArchivedMessage, ArchiveQuery, ArchiveReadResult } from "../../src/core/archive/query.js";
import { buildMamQuery, parseMamQuery } from "../../src/xmpp/mam.js";

const ROOM = "coven@chat.shakespeare.lit";
const CRONE = "crone1@shakespeare.lit/desktop";
const HAG = "hag66@shakespeare.lit/pda";
const OUTSIDER = "wiccarocks@shakespeare.lit/laptop";

type ArchiveRead = Extract<Effect, { kind: "archive-read" }>;

/** The stanzas that follow an archive read with this result. */
const answer = (read: ArchiveRead, result: ArchiveReadResult): Element[] => read.then(result).flatMap((e) => (e.kind === "send" ? [e.stanza] : []));

function coven(): RoomDriver {
  const driver = new RoomDriver();
  driver.join("coven", "firstwitch", CRONE);
  driver.join("coven", "thirdwitch", HAG);
  return driver;
}

/** Sends an XEP example's query IQ from `from` to the room; returns the archive read it asks for. */
function query(driver: RoomDriver, iq: Element, from: string): { sent: Element[]; read: ArchiveRead | undefined } {
  iq.attrs.from = from;
  iq.attrs.to = ROOM;
  const sent = driver.send(iq);
  return { sent, read: driver.effects.find((e): e is ArchiveRead => e.kind === "archive-read") };
}

const row = (archiveId: string, nick: string, senderJid: string, at: string, body: string, id = `${archiveId}-c`): ArchivedMessage => ({
  archiveId,
  at: new Date(at),
  nick,
  senderJid,
  stanza: parseXml(`<message type='groupchat' from='${ROOM}/${nick}' id='${id}'><body>${body}</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='${archiveId}'/></message>`),
});

test("XEP-0313 examples parse into typed queries and build back to the same query", () => {
  const cases: [string, Partial<ReturnType<typeof parseMamQuery>>][] = [
    ["Querying the archive for all messages in a certain timespan", { start: new Date("2010-06-07T00:00:00Z"), end: new Date("2010-07-07T13:23:54Z") }],
    ["Querying the archive for all messages after a certain message", { afterId: "09af3-cc343-b409f" }],
    ["Querying the archive for all messages between two known messages", { afterId: "28482-98726-73623", beforeId: "09af3-cc343-b409f" }],
    ["Fetching a specific message from the archive", { ids: ["28482-98726-73623"] }],
    ["A query using Result Set Management", { start: new Date("2010-08-07T00:00:00Z"), rsm: { max: 10 } }],
    ["A page query using Result Set Management", { rsm: { max: 10, after: "09af3-cc343-b409f" } }],
    ["A request for the last page in an archive", { rsm: { max: 10, before: "" } }],
    ["Requesting a page that is flipped", { flipPage: true, rsm: { max: 10, after: "09af3-cc343-b409f" } }],
  ];
  for (const [caption, expected] of cases) {
    const parsed = parseMamQuery(example("0313", caption).getChild("query")!);
    for (const [key, value] of Object.entries(expected)) assert.deepEqual(parsed[key as keyof typeof parsed], value, `${caption}: ${key}`);
    assert.deepEqual(parseMamQuery(buildMamQuery(parsed)), parsed, `${caption}: round trip`);
  }
});

test("a room query becomes one archive read of the room's messages, answered after the read", () => {
  const driver = coven();
  const iq = example("0313", "A query using Result Set Management");
  const { sent, read } = query(driver, iq, HAG);
  assert.deepEqual(sent, [], "nothing is answered before the archive is read");
  assert.ok(read);
  const expected: ArchiveQuery = { roomJid: ROOM, sender: { kind: "anyone" }, start: new Date("2010-08-07T00:00:00Z"), from: "oldest", max: 10 };
  assert.deepEqual(read.query, expected);

  const last = query(driver, example("0313", "A request for the last page in an archive"), HAG).read!;
  assert.equal(last.query.from, "newest");
  assert.equal(last.query.beforeId, undefined);
  const page = query(driver, example("0313", "A page query using Result Set Management"), HAG).read!;
  assert.equal(page.query.afterId, "09af3-cc343-b409f");
  assert.equal(page.query.from, "oldest");
});

test("XEP-0313 §5.1.2: results are forwarded from the occupant JID without 'to', real JIDs only for those who may see them", () => {
  const driver = coven();
  driver.configure("coven", CRONE, { "muc#roomconfig_whois": "anyone" });
  const iq = parseXml(`<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2' queryid='g27'/></iq>`);
  const { read } = query(driver, iq, HAG);
  const rows = [
    row("78527-06716-51603", "firstwitch", CRONE, "2002-10-13T23:58:37Z", "Thrice the brinded cat hath mew'd.", "162BEBB1-F6DB-4D9A-9BD8-CFDCC801A0B2"),
    row("34482-21985-73620", "thirdwitch", HAG, "2002-10-13T23:58:43Z", "Thrice and once the hedge-pig whined."),
  ];
  const replies = answer(read!, { ok: true, items: rows, complete: true, count: 2 });
  const [first, second, fin] = replies;
  const expected = example("0313", "Server returns MUC messages");
  // The example holds two result messages; the parser nests the second in the first. The outer id
  // and the item's affiliation and role are those of the example's own room.
  expected.children = expected.children.filter((c) => typeof c === "string" || c.name !== "message");
  delete expected.attrs.id;
  const item = expected.getChild("result")!.getChild("forwarded")!.getChild("message")!.getChild("x")!.getChild("item")!;
  Object.assign(item.attrs, { affiliation: "owner", jid: CRONE, role: "moderator" });
  expected.attrs.to = HAG;
  assertMatches(first!, expected);
  const forwarded = first!.getChild("result")!.getChild("forwarded")!.getChild("message")!;
  assert.equal(forwarded.attrs.to, undefined);
  assert.equal(second!.getChild("result")!.attrs.id, "34482-21985-73620");
  assertMatches(fin!, parseXml(`<iq type='result' id='juliet1' to='${HAG}' from='${ROOM}'><fin xmlns='urn:xmpp:mam:2' complete='true'>
    <set xmlns='http://jabber.org/protocol/rsm'><first>78527-06716-51603</first><last>34482-21985-73620</last><count>2</count></set></fin></iq>`));

  // Semi-anonymous: a participant gets no real JID, a moderator does.
  driver.configure("coven", CRONE, { "muc#roomconfig_whois": "moderators" });
  const hidden = answer(query(driver, parseXml(`<iq type='set' id='q2'><query xmlns='urn:xmpp:mam:2'/></iq>`), HAG).read!, { ok: true, items: rows, complete: true, count: 2 });
  assert.equal(hidden[0]!.getChild("result")!.getChild("forwarded")!.getChild("message")!.getChild("x"), undefined);
  const shown = answer(query(driver, parseXml(`<iq type='set' id='q3'><query xmlns='urn:xmpp:mam:2'/></iq>`), CRONE).read!, { ok: true, items: rows, complete: true, count: 2 });
  assert.equal(shown[0]!.getChild("result")!.getChild("forwarded")!.getChild("message")!.getChild("x")!.getChild("item")!.attrs.jid, CRONE);
});

test("<flip-page/> reverses the page; an unknown id is item-not-found (XEP-0313 example)", () => {
  const driver = coven();
  const flipped = query(driver, example("0313", "Requesting a page that is flipped"), HAG).read!;
  const rows = [row("a", "firstwitch", CRONE, "2010-08-08T00:00:00Z", "one"), row("b", "firstwitch", CRONE, "2010-08-08T00:00:01Z", "two")];
  const replies = answer(flipped, { ok: true, items: rows, complete: false, count: 5 });
  assert.deepEqual(replies.slice(0, 2).map((m) => m.getChild("result")!.attrs.id), ["b", "a"]);
  const fin = replies[2]!.getChild("fin")!;
  assert.equal(fin.attrs.complete, undefined, "not the last page");
  assert.equal(fin.getChild("set")!.getChildText("first"), "a");

  const [error] = answer(query(driver, example("0313", "A page query using Result Set Management"), HAG).read!, { ok: false, reason: "unknown-id" });
  const expected = example("0313", "Message id not found in archive");
  assertMatches(error!, expected);
});

test("'with': an occupant JID selects a nick, the room everyone, a real JID only for those who may see real JIDs", () => {
  const driver = coven();
  const withQuery = (value: string, from: string) =>
    query(
      driver,
      parseXml(`<iq type='set' id='w'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>
        <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>${value}</value></field></x></query></iq>`),
      from,
    );
  assert.deepEqual(withQuery(`${ROOM}/firstwitch`, HAG).read!.query.sender, { kind: "nick", nick: "firstwitch" });
  assert.deepEqual(withQuery(ROOM, HAG).read!.query.sender, { kind: "anyone" });
  const refused = withQuery("crone1@shakespeare.lit", HAG);
  assert.equal(refused.read, undefined);
  assertMatches(refused.sent[0]!, parseXml(`<iq type='error' id='w'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  assert.deepEqual(withQuery("crone1@shakespeare.lit", CRONE).read!.query.sender, { kind: "real-jid", jid: "crone1@shakespeare.lit", bare: true });
});

test("XEP-0313 §5.1.2: outcasts and non-members of a members-only room may not query; others may without entering", () => {
  const driver = coven();
  const ask = (from: string) => query(driver, parseXml(`<iq type='set' id='a'><query xmlns='urn:xmpp:mam:2'/></iq>`), from);
  assert.ok(ask(OUTSIDER).read, "an open room's archive is readable without entering");
  driver.affiliate("coven", "wiccarocks@shakespeare.lit", { affiliation: "outcast" });
  const banned = ask(OUTSIDER);
  assert.equal(banned.read, undefined);
  assertMatches(banned.sent[0]!, parseXml(`<iq type='error'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));

  driver.configure("coven", CRONE, { "muc#roomconfig_membersonly": "1" });
  driver.affiliate("coven", "wiccarocks@shakespeare.lit", { affiliation: "member" });
  assert.ok(ask(OUTSIDER).read, "a member reads a members-only room's archive");
  assert.equal(ask("stranger@shakespeare.lit/x").read, undefined);
});

test("bad queries are bad-request: a wrong FORM_TYPE, an unknown field, a bad date, an RSM index", () => {
  const driver = coven();
  const bad = [
    `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x>`,
    `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='colour'><value>red</value></field></x>`,
    `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='start'><value>yesterday</value></field></x>`,
    `<set xmlns='http://jabber.org/protocol/rsm'><index>3</index></set>`,
    `<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>`,
  ];
  for (const body of bad) {
    const { sent, read } = query(driver, parseXml(`<iq type='set' id='b'><query xmlns='urn:xmpp:mam:2'>${body}</query></iq>`), HAG);
    assert.equal(read, undefined, body);
    assertMatches(sent[0]!, parseXml(`<iq type='error' id='b'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  }
});

test("the page size is the client's <max/> up to 50, 20 when not given; the query form lists the fields", () => {
  const driver = coven();
  const size = (max: string) =>
    query(driver, parseXml(`<iq type='set' id='m'><query xmlns='urn:xmpp:mam:2'>${max}</query></iq>`), HAG).read!.query.max;
  assert.equal(size(""), 20);
  assert.equal(size(`<set xmlns='http://jabber.org/protocol/rsm'><max>500</max></set>`), 50);
  assert.equal(size(`<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>`), 0);
  const [form] = driver.send(`<iq type='get' id='f' from='${HAG}' to='${ROOM}'><query xmlns='urn:xmpp:mam:2'/></iq>`);
  const vars = form!.getChild("query")!.getChild("x")!.getChildren("field").map((f) => f.attrs.var);
  assert.deepEqual(vars, ["FORM_TYPE", "with", "start", "end", "after-id", "before-id", "ids"]);
});

test("disco advertises urn:xmpp:mam:2 and #extended; turning archiving off says 171, stops advertising and archiving", () => {
  const driver = coven();
  const features = () =>
    driver
      .send(`<iq type='get' id='d' from='${HAG}' to='${ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)[0]!
      .getChild("query")!
      .getChildren("feature")
      .map((f) => f.attrs.var);
  assert.ok(features().includes("urn:xmpp:mam:2") && features().includes("urn:xmpp:mam:2#extended"));
  driver.send(`<message from='${HAG}' to='${ROOM}' type='groupchat' id='1'><body>kept</body></message>`);
  const archived = driver.effects.find((e) => e.kind === "store");
  assert.ok(archived?.kind === "store" && archived.write.op === "history.append" && archived.write.archived);

  const notice = to(driver.configure("coven", CRONE, { "muc#roomconfig_enablearchiving": "0" }), HAG).find((s) => s.name === "message");
  assert.ok(notice?.getChild("x")!.getChildren("status").some((s) => s.attrs.code === "171"));
  assert.ok(!features().includes("urn:xmpp:mam:2"));
  driver.send(`<message from='${HAG}' to='${ROOM}' type='groupchat' id='2'><body>not archived</body></message>`);
  const unarchived = driver.effects.find((e) => e.kind === "store");
  assert.ok(unarchived?.kind === "store" && unarchived.write.op === "history.append" && !unarchived.write.archived, "kept for the join history only");

  const historyBefore = driver.room("coven")!.history.length;
  driver.configure("coven", CRONE, { "muc#roomconfig_enablearchiving": "1", "muc#roomconfig_historylength": "0" });
  driver.send(`<message from='${HAG}' to='${ROOM}' type='groupchat' id='3'><body>archived, no history</body></message>`);
  const archivedOnly = driver.effects.find((e) => e.kind === "store");
  assert.ok(archivedOnly?.kind === "store" && archivedOnly.write.op === "history.append" && archivedOnly.write.archived);
  assert.equal(driver.room("coven")!.history.length, historyBefore, "no join history kept");
});

test("an archive read that failed answers internal-server-error", () => {
  const driver = coven();
  const read = query(driver, parseXml(`<iq type='set' id='x'><query xmlns='urn:xmpp:mam:2'/></iq>`), HAG).read!;
  const failure: ArchiveReadResult = { ok: false, reason: "failed" };
  assertMatches(answer(read, failure)[0]!, parseXml(`<iq type='error' id='x'><error><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
});
