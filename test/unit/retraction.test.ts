// XEP-0425 moderation and XEP-0424 retraction in the pure core, from the XEPs' examples; XEP-0308
// corrections pass through the room unchanged.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";
import type { Effect } from "../../src/core/effects.js";
import type { ArchiveReadResult } from "../../src/core/archive/query.js";
import type { StoreWrite } from "../../src/core/store-writes.js";
import { buildModerationRequest, parseModerationNotice, parseModerationRequest } from "../../src/xmpp/retraction.js";

const ROOM = "room@muc.example.com";
const MACBETH = "macbeth@scotland.example/castle";
const OLDHAG = "hag@witches.example/cave";
const ROMEO = "romeo@montague.example/orchard";

type ArchiveRead = Extract<Effect, { kind: "archive-read" }>;
const readOf = (driver: RoomDriver) => driver.effects.find((e): e is ArchiveRead => e.kind === "archive-read");
const sends = (effects: Effect[]) => effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
const writes = (effects: Effect[]) => effects.flatMap((e) => (e.kind === "store" ? [e.write] : []));

/** Macbeth owns the room (a moderator), oldhag and romeo are participants; oldhag posted the example's message. */
function room(): { driver: RoomDriver; posted: Element } {
  const driver = new RoomDriver("muc.example.com");
  driver.join("room", "macbeth", MACBETH);
  driver.join("room", "oldhag", OLDHAG);
  driver.join("room", "romeo", ROMEO);
  const [posted] = to(driver.send(`<message type='groupchat' from='${OLDHAG}' to='${ROOM}' id='inappropriate-1'><body>DM me for free magic potions!</body></message>`), MACBETH);
  return { driver, posted: posted! };
}

const found = (posted: Element, archiveId: string): ArchiveReadResult => ({
  ok: true,
  items: [{ archiveId, at: new Date("2019-09-20T23:18:41Z"), nick: "oldhag", senderJid: OLDHAG, stanza: posted }],
  complete: true,
  count: 1,
});

test("XEP-0425 example: the moderation request parses, builds back, and the room advertises moderation", () => {
  const request = example("0425", "The moderator's client sends an IQ stanza to the MUC service").getChild("moderate")!;
  const parsed = parseModerationRequest(request);
  assert.deepEqual(parsed, { stanzaId: "stanza-id-1", version: 1, reason: "This message contains inappropriate content for this forum" });
  assert.deepEqual(parseModerationRequest(buildModerationRequest(parsed!)), parsed);
  assert.deepEqual(parseModerationRequest(buildModerationRequest({ ...parsed!, version: 0 })), { ...parsed, version: 0 });

  const { driver } = room();
  const [info] = driver.send(`<iq type='get' from='${ROMEO}' to='${ROOM}' id='info1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
  const features = info!.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
  assert.ok(features.includes("urn:xmpp:message-moderate:1"));
  assert.ok(features.includes("urn:xmpp:message-moderate:0"));
});

test("XEP-0425 §3: a moderator retracts a message: tombstone stored, both forms announced to all, IQ result", () => {
  const { driver, posted } = room();
  const stanzaId = posted.getChild("stanza-id")!.attrs.id!;
  const iq = example("0425", "The moderator's client sends an IQ stanza to the MUC service");
  iq.attrs.from = MACBETH;
  iq.getChild("moderate")!.attrs.id = stanzaId;
  assert.deepEqual(driver.send(iq), [], "answered once the message is found");
  assert.equal(driver.room("room")!.history.length, 0, "out of the join history at once");
  const read = readOf(driver)!;
  assert.deepEqual(read.query.ids, [stanzaId]);

  const after = read.then(found(posted, stanzaId));
  const announcements = sends(after).filter((s) => s.name === "message");
  assert.deepEqual(announcements.map((s) => s.attrs.to).sort(), [MACBETH, OLDHAG, ROMEO].sort());
  const expected = example("0425", "The MUC sends a moderation message to all participants");
  delete expected.attrs.id; // the room's own id
  expected.attrs.to = ROMEO;
  const occupantId = driver.room("room")!.occupants.get("macbeth")!.occupantId;
  const moderated = expected.getChild("retract")!.getChild("moderated")!;
  moderated.attrs.by = `${ROOM}/macbeth`;
  moderated.getChild("occupant-id")!.attrs.id = occupantId;
  expected.getChild("retract")!.attrs.id = stanzaId;
  const forRomeo = announcements.find((s) => s.attrs.to === ROMEO)!;
  assertMatches(forRomeo, expected);
  // The earlier form, for clients that only read fastenings.
  assert.deepEqual(parseModerationNotice(forRomeo), { stanzaId, by: `${ROOM}/macbeth`, moderatorOccupantId: occupantId, reason: "This message contains inappropriate content for this forum" });
  assert.ok(forRomeo.getChild("apply-to", "urn:xmpp:fasten:0")!.getChild("moderated", "urn:xmpp:message-moderate:0")!.getChild("retract", "urn:xmpp:message-retract:0"));

  const result = sends(after).find((s) => s.name === "iq")!;
  assertMatches(result, parseXml(`<iq type='result' to='${MACBETH}' id='retract-request-1'/>`));
  assert.equal(sends(after).indexOf(result), sends(after).length - 1, "the IQ result comes after the announcement");

  // The archive keeps a tombstone (XEP-0425 §4 example), and the announcement itself.
  const stored = writes(after);
  const retract = stored.find((w): w is Extract<StoreWrite, { op: "history.retract" }> => w.op === "history.retract")!;
  assert.equal(retract.stanzaId, stanzaId);
  const tombstone = example("0425", "Retracted groupchat message tombstone in a MAM result").getChild("result")!.getChild("forwarded")!.getChild("message")!;
  delete tombstone.attrs.to;
  tombstone.attrs.from = `${ROOM}/oldhag`;
  tombstone.attrs.id = "inappropriate-1";
  tombstone.getChild("occupant-id")!.attrs.id = driver.room("room")!.occupants.get("oldhag")!.occupantId;
  const retracted = tombstone.getChild("retracted")!;
  retracted.attrs.stamp = driver.now.toISOString().replace(".000Z", "Z");
  retracted.getChild("moderated")!.attrs.by = `${ROOM}/macbeth`;
  retracted.getChild("moderated")!.getChild("occupant-id")!.attrs.id = occupantId;
  assertMatches(retract.tombstone, tombstone);
  assert.equal(retract.tombstone.getChild("body"), undefined);
  const appended = stored.find((w) => w.op === "history.append");
  assert.ok(appended?.op === "history.append" && parseModerationNotice(appended.entry.stanza)?.stanzaId === stanzaId);
  assert.ok(after.some((e) => e.kind === "audit" && e.record.kind === "message.moderated"));
});

test("XEP-0425: a participant may not moderate (the XEP's error); an unknown id is item-not-found; the fastening form works", () => {
  const { driver, posted } = room();
  const stanzaId = posted.getChild("stanza-id")!.attrs.id!;
  const [refused] = driver.send(`<iq type='set' from='${ROMEO}' to='${ROOM}' id='retract-request-1'><moderate id='${stanzaId}' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>`);
  const expected = example("0425", "The MUC responds with an error stanza");
  delete expected.attrs.to;
  expected.getChild("error")!.children = expected.getChild("error")!.children.filter((c) => typeof c !== "string" && c.name === "forbidden");
  assertMatches(refused!, expected);
  assert.equal(readOf(driver), undefined);

  driver.send(`<iq type='set' from='${MACBETH}' to='${ROOM}' id='m2'><moderate id='nope' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>`);
  const [missing] = sends(readOf(driver)!.then({ ok: true, items: [], complete: true, count: 0 }));
  assertMatches(missing!, parseXml(`<iq type='error' id='m2'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));

  driver.send(`<iq type='set' from='${MACBETH}' to='${ROOM}' id='m0'><apply-to xmlns='urn:xmpp:fasten:0' id='${stanzaId}'><moderate xmlns='urn:xmpp:message-moderate:0'><retract xmlns='urn:xmpp:message-retract:0'/><reason>spam</reason></moderate></apply-to></iq>`);
  const after = readOf(driver)!.then(found(posted, stanzaId));
  assert.ok(writes(after).some((w) => w.op === "history.retract"));
  assert.ok(sends(after).some((s) => s.name === "iq" && s.attrs.type === "result" && s.attrs.id === "m0"));

  const [bad] = driver.send(`<iq type='set' from='${MACBETH}' to='${ROOM}' id='m3'><moderate xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>`);
  assertMatches(bad!, parseXml(`<iq type='error' id='m3'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
});

test("XEP-0424: an author's retraction is relayed to everyone and stored; their message becomes a tombstone", () => {
  const { driver, posted } = room();
  const stanzaId = posted.getChild("stanza-id")!.attrs.id!;
  const sent = driver.send(
    `<message type='groupchat' from='${OLDHAG}' to='${ROOM}' id='retract-message-1'><retract id='${stanzaId}' xmlns='urn:xmpp:message-retract:1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>/me retracted a previous message, but it's unsupported by your client.</body><store xmlns='urn:xmpp:hints'/></message>`,
  );
  assert.equal(sent.length, 3, "relayed to every occupant");
  for (const copy of sent) assert.equal(copy.getChild("retract", "urn:xmpp:message-retract:1")!.attrs.id, stanzaId);
  const stored = writes(driver.effects);
  const retract = stored.find((w) => w.op === "history.retract");
  assert.ok(retract?.op === "history.retract" && retract.stanzaId === stanzaId && retract.tombstone.getChild("body") === undefined);
  assert.ok(retract.tombstone.getChild("retracted", "urn:xmpp:message-retract:1")!.attrs.stamp);
  assert.ok(stored.some((w) => w.op === "history.append" && w.entry.stanza.getChild("retract") !== undefined), "the retraction is archived");
  const audited = driver.effects.flatMap((e) => (e.kind === "audit" && e.record.kind === "message.retracted" ? [e.record] : []));
  assert.deepEqual(
    audited.map((r) => [r.actorJid, r.details]),
    [["hag@witches.example", { stanzaId }]],
    "auditors see who took back which message",
  );
  assert.deepEqual(driver.room("room")!.history.map((e) => e.stanza.attrs.id), ["retract-message-1"], "the retracted message left the join history");

  // Someone else's message: relayed (clients check the occupant-id), but only the author's rows are looked up.
  const { driver: other, posted: hers } = room();
  const [, , ] = other.send(`<message type='groupchat' from='${ROMEO}' to='${ROOM}' id='r2'><retract id='${hers.getChild("stanza-id")!.attrs.id}' xmlns='urn:xmpp:message-retract:1'/></message>`);
  assert.ok(!writes(other.effects).some((w) => w.op === "history.retract"));
  assert.equal(other.room("room")!.history.length, 2);
  const lookup = readOf(other)!;
  assert.deepEqual(lookup.query.sender, { kind: "real-jid", jid: "romeo@montague.example", bare: true });
  assert.deepEqual(lookup.then({ ok: true, items: [], complete: true, count: 0 }), []);
});

test("XEP-0424: a retraction of an older message (not in the join history) tombstones it once the author's row is found", () => {
  const { driver, posted } = room();
  driver.send(`<message type='groupchat' from='${OLDHAG}' to='${ROOM}' id='old-form'><apply-to xmlns='urn:xmpp:fasten:0' id='origin-77'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to><body>retracted</body></message>`);
  const lookup = readOf(driver)!;
  assert.equal(lookup.query.idOrOriginId, "origin-77");
  const after = lookup.then(found(posted, "old-archive-id"));
  const [retract] = writes(after);
  assert.ok(retract?.op === "history.retract" && retract.stanzaId === "old-archive-id");
});

test("XEP-0308: a correction is relayed and stored with its <replace/> unchanged", () => {
  const { driver, posted } = room();
  const sent = driver.send(`<message type='groupchat' from='${OLDHAG}' to='${ROOM}' id='good1'><body>But soft, what light through yonder window breaks?</body><replace id='inappropriate-1' xmlns='urn:xmpp:message-correct:0'/></message>`);
  assert.equal(sent.length, 3);
  for (const copy of sent) {
    assert.equal(copy.getChild("replace", "urn:xmpp:message-correct:0")!.attrs.id, "inappropriate-1");
    assert.equal(copy.getChildText("body"), "But soft, what light through yonder window breaks?");
    assert.equal(copy.attrs.from, posted.attrs.from);
  }
  const [append] = writes(driver.effects);
  assert.ok(append?.op === "history.append" && append.entry.stanza.getChild("replace", "urn:xmpp:message-correct:0")?.attrs.id === "inappropriate-1");
  assert.ok(!writes(driver.effects).some((w) => w.op === "history.retract"));
});
