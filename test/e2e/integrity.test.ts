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
