// Integrity end to end (issue 16): what is stored is what was sent. Real @xmpp/client users on a real
// Prosody, the built gateway as a child process, a real PostgreSQL.
//
//   npm run build && node --test dist/test/e2e/integrity.test.js
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import parse from "@xmpp/xml/lib/parse.js";
import pg from "pg";
import type { TestClient } from "../support/client.js";
import { startStack, type Stack } from "../support/gateway.js";
import { startRechunkProxy, type RechunkProxy } from "../support/rechunk-proxy.js";

const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const MUC_OWNER = "http://jabber.org/protocol/muc#owner";
const DOMAIN = "conference.localhost";
const WAIT_MS = 20_000;

const bare = (jid: string | undefined): string => (jid ?? "").split("/")[0]!;
const newRoomJid = (prefix: string): string => `${prefix}-${randomBytes(6).toString("hex")}@${DOMAIN}`;

const isSelfPresence = (room: string) => (el: Element): boolean =>
  el.name === "presence" &&
  bare(el.attrs.from) === room &&
  (el.attrs.type === "error" || (el.getChild("x", MUC_USER)?.getChildren("status") ?? []).some((s) => s.attrs.code === "110"));

const isSubject = (room: string) => (el: Element): boolean =>
  el.name === "message" && bare(el.attrs.from) === room && el.getChild("subject") !== undefined && el.getChild("body") === undefined;

const isLiveGroupchat = (room: string) => (el: Element): boolean =>
  el.name === "message" && bare(el.attrs.from) === room && el.attrs.type !== "error" && el.getChild("body") !== undefined && el.getChild("delay", "urn:xmpp:delay") === undefined;

/** Enters and reads up to the subject; returns the history messages (those with a body) in order. */
async function enter(client: TestClient, room: string, nick: string): Promise<Element[]> {
  await client.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
  const self = await client.waitFor(isSelfPresence(room), WAIT_MS, `${nick}'s self-presence`);
  assert.notEqual(self.attrs.type, "error", self.toString());
  assert.equal(self.attrs.from, `${room}/${nick}`);
  const history: Element[] = [];
  for (;;) {
    const el = await client.waitFor((e) => e.name === "message" && bare(e.attrs.from) === room, WAIT_MS, `the history and subject of ${room}`);
    if (isSubject(room)(el)) return history;
    history.push(el);
  }
}

async function createRoom(owner: TestClient, room: string, nick: string, fields: Record<string, string> = {}): Promise<void> {
  await enter(owner, room, nick);
  const form = xml(
    "x",
    { xmlns: "jabber:x:data", type: "submit" },
    xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
    ...Object.entries(fields).map(([name, value]) => xml("field", { var: name }, xml("value", {}, value))),
  );
  await owner.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: MUC_OWNER }, form)), WAIT_MS);
}

async function storedBodies(url: string, room: string): Promise<{ body: string | null; stanzaBody: string | null }[]> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const { rows } = await db.query<{ body: string | null; stanza: string }>(
      `SELECT h.body, h.stanza FROM history_messages h JOIN rooms r ON r.id = h.room_id WHERE r.jid = $1 ORDER BY h.seq`,
      [room],
    );
    return rows.map((r) => ({ body: r.body, stanzaBody: parse(r.stanza).getChildText("body") }));
  } finally {
    await db.end();
  }
}

describe("UTF-8 split across TCP reads on the component connection (issue 16 point 1)", () => {
  let stack: Stack;
  let proxy: RechunkProxy | undefined;
  before(async () => {
    stack = await startStack({
      componentVia: async (prosody) => {
        proxy = await startRechunkProxy({ host: prosody.interface, port: prosody.componentPort });
        return proxy.service;
      },
    });
  });
  after(async () => {
    await stack?.stop();
    await proxy?.stop();
  });

  it("bodies with 2-, 3- and 4-byte characters cut at every byte position arrive and are stored exactly", async () => {
    const room = newRoomJid("utf8");
    const alice = await stack.connect("alice", "utf8");
    const bob = await stack.connect("bob", "utf8");
    // Each character occurs at least three times per body: the proxy moves the cut through each of
    // its inner byte positions (1 for 2-byte, 2 for 3-byte, 3 for 4-byte characters).
    const bodies = [
      "ééé",
      "€€€ ह ह ह",
      "😀😀😀 𝄞𝄞𝄞",
      "a€b😀cé".repeat(6),
      "Grüße aus Zürich, 世界! 🎉🎉🎉 ∑∂√ ñandú Ελληνικά русский 한국어 ".repeat(40),
      "🏳️‍🌈👩‍👩‍👧‍👦".repeat(50),
    ];
    await createRoom(alice, room, "Zoë€");
    await enter(bob, room, "Bjørn€");
    for (const body of bodies) await alice.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, body)));

    const received: string[] = [];
    for (let i = 0; i < bodies.length; i++) {
      const el = await bob.waitFor(isLiveGroupchat(room), WAIT_MS, `message ${i}`);
      assert.equal(el.attrs.from, `${room}/Zoë€`);
      received.push(el.getChildText("body")!);
    }
    assert.deepEqual(received, bodies);
    assert.ok(proxy!.cuts >= 100, `the proxy cut inside ${proxy!.cuts} characters`);

    const stored = await storedBodies(stack.db.url, room);
    assert.deepEqual(stored.map((r) => r.body), bodies);
    assert.deepEqual(stored.map((r) => r.stanzaBody), bodies);
  });
});

describe("history order across a restart (issue 16 point 2)", () => {
  let stack: Stack;
  before(async () => {
    // A burst of 100 from one occupant: above the default flood limit, which is not under test here.
    stack = await startStack({ env: { DMUC_RATE_BURST: "200" } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("100 messages sent in one write come back after a restart in the order occupants saw them", async () => {
    const room = newRoomJid("order");
    const alice = await stack.connect("alice", "order");
    const bob = await stack.connect("bob", "order");
    await createRoom(alice, room, "Alice", { "muc#roomconfig_persistentroom": "1", "muc#roomconfig_historylength": "100" });
    await enter(bob, room, "Bob");

    // One write on Alice's stream: the gateway takes them together and commits them in one batch.
    const sent = Array.from({ length: 100 }, (_, i) => `message ${String(i).padStart(3, "0")}`);
    await alice.raw.sendMany(sent.map((body) => xml("message", { to: room, type: "groupchat" }, xml("body", {}, body))));
    const seen: string[] = [];
    for (let i = 0; i < sent.length; i++) seen.push((await bob.waitFor(isLiveGroupchat(room), WAIT_MS, `message ${i}`)).getChildText("body")!);
    assert.deepEqual(seen, sent);

    await stack.restartGateway();
    const carol = await stack.connect("carol", "order");
    await carol.send(xml("presence", { to: `${room}/Carol` }, xml("x", { xmlns: MUC }, xml("history", { maxstanzas: "100" }))));
    const self = await carol.waitFor(isSelfPresence(room), WAIT_MS, "Carol's self-presence");
    assert.notEqual(self.attrs.type, "error", self.toString());
    const replayed: string[] = [];
    for (;;) {
      const el = await carol.waitFor((e) => e.name === "message" && bare(e.attrs.from) === room, WAIT_MS, "the history and subject");
      if (isSubject(room)(el)) break;
      replayed.push(el.getChildText("body")!);
    }
    assert.deepEqual(replayed, seen);
    assert.deepEqual((await storedBodies(stack.db.url, room)).map((r) => r.body), seen);
  });
});

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const errorOf = (el: Element): { type?: string; condition?: string } => {
  const error = el.getChild("error");
  return { type: error?.attrs.type, condition: error?.getChildElements().find((c) => c.attrs.xmlns === STANZAS)?.name };
};

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[]): Promise<T[]> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    return (await db.query<T>(sql, params)).rows;
  } finally {
    await db.end();
  }
}

describe("input limits at the edge through Prosody (issue 15 points 2-3, issue 16 points 3 and 6)", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ env: { DMUC_RATE_LIMIT: "1", DMUC_RATE_BURST: "5" } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("an entry presence nested 9,000 levels deep is refused with policy-violation: nobody sees or stores a ghost", async () => {
    const room = newRoomJid("deep");
    const alice = await stack.connect("alice", "deep");
    const mallory = await stack.connect("mallory", "deep");
    await createRoom(alice, room, "Alice");

    // Written as text: serialising 9,000 levels would overflow the client library's own stack.
    const levels = 9000;
    await mallory.raw.write(`<presence to='${room}/Ghost'><x xmlns='${MUC}'/><x xmlns='urn:example:deep'>${"<x>".repeat(levels - 1)}${"</x>".repeat(levels)}</presence>`);
    const refusal = await mallory.waitFor((el) => el.name === "presence" && bare(el.attrs.from) === room, WAIT_MS, "the answer to the deep entry");
    assert.equal(refusal.attrs.type, "error", refusal.toString());
    assert.deepEqual(errorOf(refusal), { type: "modify", condition: "policy-violation" });

    // Alice hears of nobody, and a message reaches no ghost; the ghost has no row.
    await alice.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, "anyone there?")));
    await alice.waitFor(isLiveGroupchat(room), WAIT_MS, "Alice's echo");
    assert.deepEqual((await alice.drain(DOMAIN)).map(String), []);
    assert.deepEqual((await mallory.drain(DOMAIN)).map(String), []);
    assert.deepEqual(await query(stack.db.url, `SELECT o.nick FROM occupants o JOIN rooms r ON r.id = o.room_id WHERE r.jid = $1 ORDER BY o.nick`, [room]), [{ nick: "Alice" }]);

    // The same user enters normally afterwards.
    await enter(mallory, room, "Mallory");
  });

  it("bodies count together and subjects have a limit: refused with policy-violation, nothing stored", async () => {
    const room = newRoomJid("bodies");
    const alice = await stack.connect("alice", "bodies");
    await createRoom(alice, room, "Alice");
    const refused = async (message: Element): Promise<void> => {
      await alice.send(message);
      const answer = await alice.waitFor((el) => el.name === "message" && bare(el.attrs.from) === room, WAIT_MS, "the answer");
      assert.equal(answer.attrs.type, "error", answer.toString());
      assert.deepEqual(errorOf(answer), { type: "modify", condition: "policy-violation" });
    };
    await refused(xml("message", { to: room, type: "groupchat" }, xml("body", {}, "hi"), xml("body", { "xml:lang": "de" }, "😀".repeat(10_000))));
    await refused(xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "s".repeat(1001))));
    await alice.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, "😀".repeat(10_000))));
    const accepted = await alice.waitFor((el) => el.name === "message" && bare(el.attrs.from) === room, WAIT_MS, "the echo");
    assert.equal(accepted.getChildText("body"), "😀".repeat(10_000), "10,000 emoji are 10,000 characters");
    assert.deepEqual((await storedBodies(stack.db.url, room)).map((r) => r.body), ["😀".repeat(10_000)]);
  });

  it("a stanza-id by the room in other case and delays from the room are neither relayed nor stored", async () => {
    const room = newRoomJid("spoof");
    const alice = await stack.connect("alice", "spoof");
    const bob = await stack.connect("bob", "spoof");
    await createRoom(alice, room, "Alice");
    await enter(bob, room, "Bob");
    await alice.send(
      xml(
        "message",
        { to: room, type: "groupchat" },
        xml("body", {}, "trust me"),
        xml("stanza-id", { xmlns: "urn:xmpp:sid:0", id: "forged", by: room.toUpperCase() }),
        xml("delay", { xmlns: "urn:xmpp:delay", from: room, stamp: "2001-01-01T00:00:00Z" }),
        xml("x", { xmlns: "jabber:x:delay", from: room.toUpperCase(), stamp: "20010101T00:00:00" }),
      ),
    );
    const seen = await bob.waitFor(isLiveGroupchat(room), WAIT_MS, "the broadcast");
    const stored = await query<{ stanza: string }>(stack.db.url, `SELECT h.stanza FROM history_messages h JOIN rooms r ON r.id = h.room_id WHERE r.jid = $1`, [room]);
    for (const el of [seen, parse(stored[0]!.stanza)]) {
      assert.deepEqual(el.getChildren("stanza-id", "urn:xmpp:sid:0").map((c) => c.attrs.by), [room], el.toString());
      assert.equal(el.getChildren("stanza-id", "urn:xmpp:sid:0").some((c) => c.attrs.id === "forged"), false);
      assert.equal(el.getChild("delay", "urn:xmpp:delay"), undefined, el.toString());
      assert.equal(el.getChild("x", "jabber:x:delay"), undefined, el.toString());
    }
  });

  it("a multi-valued boolean in the owner form gets not-acceptable", async () => {
    const room = newRoomJid("form");
    const alice = await stack.connect("alice", "form");
    await createRoom(alice, room, "Alice");
    const form = xml(
      "x",
      { xmlns: "jabber:x:data", type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
      xml("field", { var: "muc#roomconfig_persistentroom" }, xml("value", {}, "1"), xml("value", {}, "0")),
    );
    await assert.rejects(
      alice.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: MUC_OWNER }, form)), WAIT_MS),
      (err: Error & { condition?: string }) => err.condition === "not-acceptable",
    );
  });

  it("DMUC_RATE_LIMIT is one bucket per user: five sessions together get the burst once", async () => {
    const room = newRoomJid("rate");
    const alice = await stack.connect("alice", "rate");
    await createRoom(alice, room, "Alice");
    const sessions = await Promise.all([1, 2, 3, 4, 5].map((i) => stack.connect("hydra", `s${i}`)));
    for (const [i, s] of sessions.entries()) await enter(s, room, `Hydra${i}`);
    // Four messages from each session, 20 in all, against a burst of 5 refilled at 1 per second.
    const sent: [TestClient, string][] = [];
    for (let round = 0; round < 4; round++) {
      for (const [i, s] of sessions.entries()) {
        const id = `r${round}s${i}`;
        await s.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, id)));
        sent.push([s, id]);
      }
    }
    const answers: Element[] = [];
    for (const [s, id] of sent) answers.push(await s.waitFor((el) => el.name === "message" && bare(el.attrs.from) === room && el.attrs.id === id, WAIT_MS, `the answer to ${id}`));
    const refused = answers.filter((a) => a.attrs.type === "error");
    for (const r of refused) assert.deepEqual(errorOf(r), { type: "wait", condition: "policy-violation" });
    // Per session, each would have had a burst of 5 of its own and all 20 would have passed.
    assert.ok(refused.length >= 10, `${refused.length} of 20 refused`);
    const stored = await query<{ n: string }>(stack.db.url, `SELECT count(*) AS n FROM history_messages h JOIN rooms r ON r.id = h.room_id WHERE r.jid = $1`, [room]);
    assert.equal(Number(stored[0]!.n), 20 - refused.length);
  });
});
