// XEP-0313 room archives end to end: @xmpp/client users on a real Prosody query the gateway's
// archive (history_messages in a real PostgreSQL), paging through a few hundred messages.
//
//   npx tsc -p . && node --test dist/test/e2e/mam.test.js
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import { IqError } from "../support/client.js";
import { startStack, type Stack } from "../support/gateway.js";
import { configureRoom, createRoom, enterRoom, newId, queryArchive, readWholeArchive, say, stanzaIdOf } from "../support/room-client.js";

const DOMAIN = "conference.localhost";
const WAIT_MS = 15_000;
const MESSAGES = 260;

const roomJid = (prefix: string) => `${prefix}-${newId()}@${DOMAIN}`;

describe("XEP-0313 room archives (real Prosody, real PostgreSQL, @xmpp/client)", () => {
  let stack: Stack;
  before(async () => {
    // Several hundred messages in a few seconds from two users: the flood limit is not under test here.
    stack = await startStack({ env: { DMUC_RATE_LIMIT: "1000", DMUC_RATE_BURST: "1000" } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("pages through a few hundred messages forward and backward, in order, with the live stanza-ids", async () => {
    const room = roomJid("mam");
    const alice = await stack.connect("alice", "mam");
    const bob = await stack.connect("bob", "mam");
    const carol = await stack.connect("carol", "mam");
    await createRoom(alice, room, "Alice");
    await enterRoom(bob, room, "Bob");

    // Sent without waiting for each echo, from two users: several land in the same millisecond.
    const sent: { body: string; id: string; from: string }[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      const client = i % 3 === 0 ? bob : alice;
      const body = i % 7 === 0 ? `Nachricht ${i}: grüße, 你好 🐈` : `message ${i}`;
      const id = `m${i}-${newId()}`;
      sent.push({ body, id, from: client === bob ? "Bob" : "Alice" });
      await client.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, body)));
      // One user's messages reach the room in the order they were sent; waiting on the echo every
      // few messages keeps the two users' order the one written down here.
      if (i % 3 === 0 || i % 3 === 2) await client.waitFor((el) => el.attrs.id === id && el.attrs.from === `${room}/${sent[i]!.from}`, WAIT_MS);
    }
    const live = new Map<string, string>();
    for (const client of [alice, bob]) {
      for (const el of await client.drain(DOMAIN)) {
        const stanzaId = stanzaIdOf(el, room);
        if (el.name === "message" && el.attrs.id && stanzaId) live.set(el.attrs.id, stanzaId);
      }
    }

    // Carol never entered: an open room's archive is readable (XEP-0313 §5.1.2).
    const forward = await readWholeArchive(carol, room, 50);
    assert.equal(forward.results.length, MESSAGES);
    assert.equal(forward.count, MESSAGES);
    assert.equal(forward.pages, Math.ceil(MESSAGES / 50) + (MESSAGES % 50 === 0 ? 1 : 0));
    assert.deepEqual(
      forward.results.map((r) => r.message.getChildText("body")),
      sent.map((s) => s.body),
    );
    assert.deepEqual(
      forward.results.map((r) => r.message.attrs.from),
      sent.map((s) => `${room}/${s.from}`),
    );
    for (const result of forward.results) {
      assert.equal(result.message.attrs.to, undefined, "forwarded without 'to'");
      const known = live.get(result.message.attrs.id!);
      if (known) assert.equal(result.id, known, "the archive id is the stanza-id the room stamped");
    }
    assert.ok(live.size > 0);

    // Backward from the last page (RSM <before/>), each page in archive order.
    const backward: string[] = [];
    let before = "";
    for (;;) {
      const page = await queryArchive(carol, room, { rsm: { max: 40, before } });
      backward.unshift(...page.results.map((r) => r.id));
      if (page.fin.complete) break;
      before = page.fin.rsm.first!;
    }
    assert.deepEqual(backward, forward.results.map((r) => r.id));

    // <flip-page/>: the same page, newest first.
    const plain = await queryArchive(carol, room, { rsm: { max: 10, after: forward.results[99]!.id } });
    const flipped = await queryArchive(carol, room, { rsm: { max: 10, after: forward.results[99]!.id }, flipPage: true });
    assert.deepEqual(flipped.results.map((r) => r.id), plain.results.map((r) => r.id).reverse());
    assert.deepEqual(plain.results.map((r) => r.id), forward.results.slice(100, 110).map((r) => r.id));

    // 'with' an occupant JID: that nick's messages only.
    const bobs = await readWholeArchive(carol, room, 50, { with: `${room}/Bob` });
    assert.deepEqual(bobs.results.map((r) => r.message.getChildText("body")), sent.filter((s) => s.from === "Bob").map((s) => s.body));

    // start/end: a time window by the archive's own stamps (inclusive).
    const from = forward.results[120]!.stamp;
    const to = forward.results[130]!.stamp;
    const window = await readWholeArchive(carol, room, 50, { start: from, end: to });
    const expected = forward.results.filter((r) => r.stamp >= from && r.stamp <= to).map((r) => r.id);
    assert.deepEqual(window.results.map((r) => r.id), expected);
    assert.ok(expected.length >= 11);

    // An id that is not in this archive: item-not-found.
    await assert.rejects(queryArchive(carol, room, { rsm: { max: 5, after: "no-such-id" } }), (err: unknown) => err instanceof IqError && err.condition === "item-not-found");
    for (const client of [alice, bob, carol]) await client.stop();
  });

  it("disco advertises MAM; archiving off keeps messages out of the archive; members-only rooms refuse non-members", async () => {
    const room = roomJid("mamcfg");
    const alice = await stack.connect("alice", "cfg");
    const dave = await stack.connect("dave", "cfg");
    await createRoom(alice, room, "Alice");
    const features = async () =>
      (await dave.request(xml("iq", { type: "get", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })), WAIT_MS))
        .getChild("query")!
        .getChildren("feature")
        .map((f) => f.attrs.var);
    assert.ok((await features()).includes("urn:xmpp:mam:2"));
    assert.ok((await features()).includes("urn:xmpp:mam:2#extended"));

    await say(alice, room, "archived one");
    await configureRoom(alice, room, { "muc#roomconfig_enablearchiving": "0" });
    const notice = await alice.waitFor((el: Element) => el.name === "message" && el.attrs.from === room && el.getChild("x") !== undefined, WAIT_MS);
    assert.ok(notice.getChild("x")!.getChildren("status").some((s) => s.attrs.code === "171"));
    assert.ok(!(await features()).includes("urn:xmpp:mam:2"));
    await say(alice, room, "off the record");
    await configureRoom(alice, room, { "muc#roomconfig_enablearchiving": "1" });
    await say(alice, room, "archived two");
    const all = await readWholeArchive(dave, room, 50);
    assert.deepEqual(all.results.map((r) => r.message.getChildText("body")), ["archived one", "archived two"]);

    // The join history still has the unarchived message (it is the room's history, not its archive).
    const erin = await stack.connect("erin", "cfg");
    await erin.send(xml("presence", { to: `${room}/Erin` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    const bodies: string[] = [];
    for (;;) {
      const el = await erin.waitFor((s) => (s.attrs.from ?? "").startsWith(room), WAIT_MS);
      if (el.name === "message" && el.getChild("subject") && !el.getChild("body")) break;
      if (el.name === "message") bodies.push(el.getChildText("body")!);
    }
    assert.deepEqual(bodies, ["archived one", "off the record", "archived two"]);

    await configureRoom(alice, room, { "muc#roomconfig_membersonly": "1" });
    await assert.rejects(queryArchive(dave, room, { rsm: { max: 5 } }), (err: unknown) => err instanceof IqError && err.condition === "forbidden");
    for (const client of [alice, dave, erin]) await client.stop();
  });

  it("moderation (XEP-0425), author retraction (XEP-0424) and corrections (XEP-0308) as clients see them, tombstones in the archive", async () => {
    const room = roomJid("moderate");
    const alice = await stack.connect("alice", "mod");
    const bob = await stack.connect("bob", "mod");
    const carol = await stack.connect("carol", "mod");
    await createRoom(alice, room, "Alice");
    await enterRoom(bob, room, "Bob");
    await enterRoom(carol, room, "Carol");

    const spam = stanzaIdOf(await say(bob, room, "DM me for free magic potions!"), room)!;
    const typo = await say(bob, room, "helo");
    const ownMistake = stanzaIdOf(await say(bob, room, "wrong room, sorry"), room)!;
    for (const client of [alice, carol]) await client.drain(DOMAIN);

    // A participant may not moderate.
    const moderate = (client: typeof alice, id: string) =>
      client.request(
        xml("iq", { type: "set", to: room }, xml("moderate", { xmlns: "urn:xmpp:message-moderate:1", id }, xml("retract", { xmlns: "urn:xmpp:message-retract:1" }), xml("reason", {}, "spam"))),
        WAIT_MS,
      );
    await assert.rejects(moderate(carol, spam), (err: unknown) => err instanceof IqError && err.condition === "forbidden");
    await assert.rejects(moderate(alice, "no-such-message"), (err: unknown) => err instanceof IqError && err.condition === "item-not-found");
    await moderate(alice, spam);
    for (const client of [bob, carol]) {
      const notice = await client.waitFor((el) => el.name === "message" && el.attrs.from === room && el.getChild("retract", "urn:xmpp:message-retract:1") !== undefined, WAIT_MS, "the moderation notice");
      const retract = notice.getChild("retract", "urn:xmpp:message-retract:1")!;
      assert.equal(retract.attrs.id, spam);
      assert.equal(retract.getChild("moderated", "urn:xmpp:message-moderate:1")!.attrs.by, `${room}/Alice`);
      assert.equal(retract.getChildText("reason"), "spam");
      assert.equal(notice.getChild("apply-to", "urn:xmpp:fasten:0")!.attrs.id, spam, "the earlier form too");
    }

    // XEP-0308: a correction reaches the others as sent.
    await bob.send(
      xml("message", { to: room, type: "groupchat", id: newId() }, xml("body", {}, "hello"), xml("replace", { xmlns: "urn:xmpp:message-correct:0", id: typo.attrs.id! })),
    );
    const corrected = await carol.waitFor((el) => el.getChild("replace", "urn:xmpp:message-correct:0") !== undefined, WAIT_MS, "the correction");
    assert.equal(corrected.getChild("replace", "urn:xmpp:message-correct:0")!.attrs.id, typo.attrs.id);
    assert.equal(corrected.getChildText("body"), "hello");

    // XEP-0424: Bob retracts his own message; everyone is told.
    await bob.send(
      xml(
        "message",
        { to: room, type: "groupchat", id: newId() },
        xml("retract", { xmlns: "urn:xmpp:message-retract:1", id: ownMistake }),
        xml("fallback", { xmlns: "urn:xmpp:fallback:0", for: "urn:xmpp:message-retract:1" }),
        xml("body", {}, "/me retracted a message"),
      ),
    );
    const relayed = await carol.waitFor((el) => el.getChild("retract", "urn:xmpp:message-retract:1")?.attrs.id === ownMistake, WAIT_MS, "the author's retraction");
    assert.equal(relayed.attrs.from, `${room}/Bob`);

    // The archive: tombstones where the messages were, the notices and corrections after them.
    const archive = await readWholeArchive(carol, room, 50);
    const byId = new Map(archive.results.map((r) => [r.id, r.message]));
    for (const id of [spam, ownMistake]) {
      const tombstone = byId.get(id)!;
      assert.equal(tombstone.getChild("body"), undefined, "the body is gone");
      assert.ok(tombstone.getChild("retracted", "urn:xmpp:message-retract:1"), tombstone.toString());
    }
    assert.equal(byId.get(spam)!.getChild("retracted", "urn:xmpp:message-retract:1")!.getChild("moderated", "urn:xmpp:message-moderate:1")!.attrs.by, `${room}/Alice`);
    assert.deepEqual(
      archive.results.map((r) => r.message.getChildText("body") ?? (r.message.getChild("retracted") ? "(tombstone)" : r.message.getChild("retract") ? "(moderation)" : "?")),
      ["(tombstone)", "helo", "(tombstone)", "(moderation)", "hello", "/me retracted a message"],
    );

    // Someone entering now gets no retracted message in the join history.
    const dave = await stack.connect("dave", "mod");
    await dave.send(xml("presence", { to: `${room}/Dave` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    const bodies: string[] = [];
    for (;;) {
      const el = await dave.waitFor((s) => (s.attrs.from ?? "").startsWith(room), WAIT_MS);
      if (el.name === "message" && el.getChild("subject") && !el.getChild("body")) break;
      if (el.name === "message" && el.getChild("body")) bodies.push(el.getChildText("body")!);
    }
    assert.ok(!bodies.includes("DM me for free magic potions!") && !bodies.includes("wrong room, sorry"), bodies.join(" | "));
    for (const client of [alice, bob, carol, dave]) await client.stop();
  });
});
