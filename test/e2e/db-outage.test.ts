// Issue 15 point 4: the database taken away from a running gateway, unannounced, during traffic.
// Answers that need no write (disco, ping, occupant lists) keep coming while it is away; messages and
// entries wait in the bounded queue, at most DMUC_WRITE_WAIT (10 s by default): what the database takes
// in time is delivered and stored, what it does not is undone and answered wait/resource-constraint,
// delivered to nobody and never stored; past the queue's bound the room answers the same at once. Real
// Prosody, real PostgreSQL (stopped and started again), real clients. Waits are bounded safety limits,
// never assertions on timing.
//
//   npx tsc -p . && node --test dist/test/e2e/db-outage.test.js
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import pg from "pg";
import type { TestClient } from "../support/client.js";
import { startStack, type Stack } from "../support/gateway.js";
import { startStoppablePostgres, type StoppablePostgres } from "../support/stoppable-postgres.js";

const DOMAIN = "conference.localhost";
const ROOM = `outage@${DOMAIN}`;
const NS_MUC = "http://jabber.org/protocol/muc";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const OUTAGE_MS = Number(process.env.OUTAGE_MS ?? 60_000);
const WAIT_MS = 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const condition = (el: Element) => el.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === NS_STANZAS)?.name;
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

async function enter(client: TestClient, nick: string, create = false): Promise<void> {
  await client.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: NS_MUC })));
  await client.waitFor((el) => el.name === "message" && el.getChild("subject") !== undefined && el.attrs.from?.startsWith(ROOM) === true, WAIT_MS, `${nick}'s entry`);
  if (create) {
    await client.request(xml("iq", { type: "set", to: ROOM }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))));
  }
}

/** Enters, trying again (a bounded number of times) when told wait/resource-constraint. */
async function enterRetryingOnWait(client: TestClient, nick: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await client.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: NS_MUC })));
    const answer = await client.waitFor(
      (el) => (el.name === "message" && el.getChild("subject") !== undefined && el.attrs.from?.startsWith(ROOM) === true) || (el.name === "presence" && el.attrs.type === "error" && el.attrs.from === `${ROOM}/${nick}`),
      WAIT_MS,
      `${nick}'s entry`,
    );
    if (answer.name === "message") return;
    assert.equal(condition(answer), "resource-constraint", answer.toString());
    assert.ok(attempt < 20, "still refused long after the database came back");
    await sleep(500);
  }
}

const groupchat = (body: string) => xml("message", { to: ROOM, type: "groupchat", id: body }, xml("body", {}, body));
const bodiesFrom = (inbox: readonly Element[]) => inbox.filter((el) => el.name === "message" && el.attrs.type === "groupchat").map((el) => el.getChildText("body")).filter((b): b is string => b !== null);

/** The groupchat bodies in the inbox once there are `count` of them (or at the bounded wait's end). */
async function bodiesArrived(client: TestClient, count: number): Promise<string[]> {
  const deadline = Date.now() + WAIT_MS;
  let got = bodiesFrom(client.inbox());
  while (got.length < count && Date.now() < deadline) {
    await sleep(200);
    got = bodiesFrom(client.inbox());
  }
  return got;
}

async function storedBodies(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ body: string }>("SELECT h.body FROM history_messages h JOIN rooms r ON r.id = h.room_id WHERE r.jid = $1", [ROOM]);
    return rows.map((r) => r.body);
  } finally {
    await client.end();
  }
}

describe("a 60 s database outage during traffic, at default settings", () => {
  let db: StoppablePostgres;
  let stack: Stack;
  before(async () => {
    db = await startStoppablePostgres();
    // A public room, so that a non-occupant may read its occupant list (hidden is the default, as Prosody's).
    stack = await startStack({ env: { DATABASE_URL: db.url, DMUC_LOG_LEVEL: "info", DMUC_ROOM_DEFAULT_PUBLIC: "true" } });
  });
  after(async () => {
    await stack?.stop();
    await db?.stop();
  });

  it("answers disco, ping and occupant lists throughout, delivers and stores each message once or tells its sender wait, keeps memory bounded", async (t) => {
    const alice = await stack.connect("alice");
    const bob = await stack.connect("bob");
    const carol = await stack.connect("carol");
    await enter(alice, "alice", true);
    await enter(bob, "bob");
    await enter(carol, "carol");
    await Promise.all([alice, bob, carol].map((c) => c.drain(DOMAIN)));

    const sent: string[] = [];
    const reads: { what: string; ms: number; duringOutage: boolean }[] = [];
    let outage = false;
    let running = true;
    const rss: number[] = [];
    const baseline = rssMb(stack.gateway.pid);

    const talk = (async () => {
      for (let i = 0; running; i++) {
        for (const [who, client] of [["a", alice], ["b", bob]] as const) {
          const body = `${who}${i}`;
          sent.push(body);
          await client.send(groupchat(body));
        }
        await sleep(500);
      }
    })();
    const read = (async () => {
      const queries: [string, () => Element][] = [
        ["disco#info on the service", () => xml("iq", { type: "get", to: DOMAIN }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }))],
        ["ping the service", () => xml("iq", { type: "get", to: DOMAIN }, xml("ping", { xmlns: "urn:xmpp:ping" }))],
        ["occupant list (disco#items on the room)", () => xml("iq", { type: "get", to: ROOM }, xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }))],
        ["disco#info on the room", () => xml("iq", { type: "get", to: ROOM }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }))],
      ];
      while (running) {
        for (const [what, build] of queries) {
          const wasDown = outage;
          const t0 = performance.now();
          const answer = await carol.request(build(), WAIT_MS);
          reads.push({ what, ms: performance.now() - t0, duringOutage: wasDown && outage });
          if (what.startsWith("occupant")) assert.equal(answer.getChild("query")!.getChildren("item").length, 3, "the occupant list");
        }
        rss.push(rssMb(stack.gateway.pid));
        await sleep(250);
      }
    })();

    await sleep(3_000);
    await db.pause(); // unannounced: the traffic goes on
    outage = true;
    await sleep(OUTAGE_MS);
    outage = false;
    await db.resume();
    await sleep(3_000);
    running = false;
    await Promise.all([talk, read]);

    // No message is lost silently: each one is refused to its sender (wait), or else reaches every
    // occupant once and is stored once; a refused one reaches nobody and is not stored.
    const refusals = [...alice.inbox(), ...bob.inbox()].filter((el) => el.name === "message" && el.attrs.type === "error");
    for (const r of refusals) assert.deepEqual([r.getChild("error")!.attrs.type, condition(r)], ["wait", "resource-constraint"], r.toString());
    const refused = new Set(refusals.map((r) => r.attrs.id!));
    assert.equal(refused.size, refusals.length, "one answer per refused message");
    assert.ok(refused.size > 0, "the outage outlasted DMUC_WRITE_WAIT: what waited longer was refused");
    const accepted = sent.filter((b) => !refused.has(b));
    assert.ok(accepted.includes("a0") && accepted.includes(sent.at(-1)!), "messages before and after the outage are delivered");
    for (const client of [alice, bob, carol]) {
      const got = await bodiesArrived(client, accepted.length);
      assert.deepEqual([...got].sort(), [...accepted].sort(), `${client.jid} got every accepted message exactly once and no refused one`);
      const errors = client.inbox().filter((el) => el.attrs.type === "error" && !refused.has(el.attrs.id!));
      assert.deepEqual(errors.map((e) => e.toString()), [], "no other error");
    }
    assert.deepEqual((await storedBodies(db.url)).sort(), [...accepted].sort(), "every accepted message stored once, no refused one");

    const during = reads.filter((r) => r.duringOutage);
    assert.ok(during.length >= 20, `reads were answered while the database was away (${during.length})`);
    const worst = Math.max(...during.map((r) => r.ms));
    const peak = Math.max(...rss);
    t.diagnostic(`${sent.length} messages, ${refused.size} refused with wait; ${during.length} reads answered during the outage, slowest ${worst.toFixed(0)} ms`);
    t.diagnostic(`gateway RSS: ${baseline.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB, ${rssMb(stack.gateway.pid).toFixed(0)} MB after`);
  });
});

describe("past the write queue's bound while the database is away", () => {
  let db: StoppablePostgres;
  let stack: Stack;
  before(async () => {
    db = await startStoppablePostgres();
    // The time bound out of the way: this case is about the queue's size.
    stack = await startStack({ env: { DATABASE_URL: db.url, DMUC_LOG_LEVEL: "info", DMUC_WRITE_QUEUE_LIMIT: "100", DMUC_WRITE_WAIT: "3600" } });
  });
  after(async () => {
    await stack?.stop();
    await db?.stop();
  });

  it("refuses with wait/resource-constraint only past the bound, stores and delivers everything it accepted", async () => {
    const alice = await stack.connect("alice");
    const bob = await stack.connect("bob");
    await enter(alice, "alice", true);
    await enter(bob, "bob");
    await Promise.all([alice, bob].map((c) => c.drain(DOMAIN)));

    await db.pause();
    const sent: string[] = [];
    for (let i = 0; i < 60; i++) {
      sent.push(`m${i}`);
      await alice.send(groupchat(`m${i}`));
      await sleep(150); // below the message rate limit
    }
    // The service still answers while the queue is full.
    await alice.request(xml("iq", { type: "get", to: DOMAIN }, xml("ping", { xmlns: "urn:xmpp:ping" })), WAIT_MS);
    const refusals = alice.inbox().filter((el) => el.name === "message" && el.attrs.type === "error");
    assert.ok(refusals.length > 0, "some messages were refused");
    for (const r of refusals) {
      assert.equal(condition(r), "resource-constraint");
      assert.equal(r.getChild("error")!.attrs.type, "wait");
    }
    const refused = new Set(refusals.map((r) => r.attrs.id!));
    // Each accepted message is 2 copies, its history row and its audit row: the first quarter of a hundred fit.
    const firstRefused = sent.findIndex((b) => refused.has(b));
    assert.ok(firstRefused >= 25, `the first refusal came at message ${firstRefused}, before the bound`);

    await db.resume();
    const accepted = sent.filter((b) => !refused.has(b));
    await bodiesArrived(bob, accepted.length);
    assert.deepEqual(bodiesFrom(await bob.drain(DOMAIN)), accepted, "bob gets what was accepted, in order, and nothing refused");
    assert.deepEqual((await storedBodies(db.url)).sort(), [...accepted].sort(), "only accepted messages are stored");
  });
});

describe("an outage longer than DMUC_WRITE_WAIT, at default settings", () => {
  let db: StoppablePostgres;
  let stack: Stack;
  before(async () => {
    db = await startStoppablePostgres();
    // A public room, so that its occupant list can be read (hidden is the default, as Prosody's).
    stack = await startStack({ env: { DATABASE_URL: db.url, DMUC_LOG_LEVEL: "info", DMUC_ROOM_DEFAULT_PUBLIC: "true" } });
  });
  after(async () => {
    await stack?.stop();
    await db?.stop();
  });

  it("answers a message and an entry that cannot be stored with wait, delivers and stores neither, and the room works afterwards", async () => {
    const alice = await stack.connect("alice");
    const bob = await stack.connect("bob");
    const carol = await stack.connect("carol");
    await enter(alice, "alice", true);
    await enter(bob, "bob");
    await alice.send(groupchat("before"));
    await bob.waitFor((el) => el.getChildText("body") === "before", WAIT_MS, "the message before the outage");
    await Promise.all([alice, bob].map((c) => c.drain(DOMAIN)));

    await db.pause(); // unannounced
    await alice.send(groupchat("lost?"));
    await carol.send(xml("presence", { to: `${ROOM}/carol` }, xml("x", { xmlns: NS_MUC })));
    const refusal = await alice.waitFor((el) => el.name === "message" && el.attrs.id === "lost?", WAIT_MS, "the answer to the message sent during the outage");
    assert.equal(refusal.attrs.type, "error");
    assert.deepEqual([refusal.getChild("error")!.attrs.type, condition(refusal)], ["wait", "resource-constraint"]);
    const entry = await carol.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/carol`, WAIT_MS, "the answer to the entry during the outage");
    assert.equal(entry.attrs.type, "error");
    assert.deepEqual([entry.getChild("error")!.attrs.type, condition(entry)], ["wait", "resource-constraint"]);
    // Reads are answered, and the room is as it was: carol is not in it.
    const items = await bob.request(xml("iq", { type: "get", to: ROOM }, xml("query", { xmlns: "http://jabber.org/protocol/disco#items" })), WAIT_MS);
    assert.deepEqual(items.getChild("query")!.getChildren("item").map((i) => String(i.attrs.jid).split("/")[1]).sort(), ["alice", "bob"]);
    // Now the outage has lasted longer than the bound: a message is refused at once.
    await bob.send(groupchat("too late"));
    const late = await bob.waitFor((el) => el.name === "message" && el.attrs.id === "too late", WAIT_MS, "the answer to a message late in the outage");
    assert.deepEqual([late.attrs.type, condition(late)], ["error", "resource-constraint"]);

    await db.resume();
    // The room works afterwards: carol enters, without the refused message in her history; a new message
    // goes through. Until the gateway sees the database back (it asks 4 times a second), an entry may
    // still be told wait: carol tries again after a moment, as `wait` asks (RFC 6120 §8.3.2).
    await enterRetryingOnWait(carol, "carol");
    await alice.send(groupchat("after"));
    for (const client of [alice, bob, carol]) await client.waitFor((el) => el.getChildText("body") === "after", WAIT_MS, "the message after the outage");
    // What else each one got (the awaited message is taken out of the inbox).
    const seen = [alice, bob, carol].map((c) => bodiesFrom(c.inbox()));
    for (const bodies of seen) assert.ok(!bodies.includes("lost?") && !bodies.includes("too late"), `a refused message was delivered: ${bodies.join(", ")}`);
    assert.deepEqual(seen[2], ["before"], "carol's history: the message before the outage, not the refused one");
    assert.deepEqual((await storedBodies(db.url)).sort(), ["after", "before"], "stored: only what was delivered");
  });
});
