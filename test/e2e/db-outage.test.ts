// Issue 15 point 4: the database taken away from a running gateway, unannounced, during traffic.
// Answers that need no write (disco, ping, occupant lists) keep coming while it is away; messages wait
// in the bounded queue and are all delivered and stored when it is back; past the queue's bound the
// room answers wait/resource-constraint and changes nothing. Real Prosody, real PostgreSQL (stopped and
// started again), real clients. Waits are bounded safety limits, never assertions on timing.
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

  it("answers disco, ping and occupant lists throughout, loses no message, keeps memory bounded, sends no wait error", async (t) => {
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

    // Every message reaches every occupant once, in the end.
    for (const client of [alice, bob, carol]) {
      const got = await bodiesArrived(client, sent.length);
      assert.deepEqual([...got].sort(), [...sent].sort(), `${client.jid} got every message exactly once`);
      const errors = client.inbox().filter((el) => el.attrs.type === "error");
      assert.deepEqual(errors.map((e) => e.toString()), [], "no error below the queue's bound");
    }
    assert.deepEqual((await storedBodies(db.url)).sort(), [...sent].sort(), "every message stored once");

    const during = reads.filter((r) => r.duringOutage);
    assert.ok(during.length >= 20, `reads were answered while the database was away (${during.length})`);
    const worst = Math.max(...during.map((r) => r.ms));
    const peak = Math.max(...rss);
    t.diagnostic(`${sent.length} messages; ${during.length} reads answered during the outage, slowest ${worst.toFixed(0)} ms`);
    t.diagnostic(`gateway RSS: ${baseline.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB, ${rssMb(stack.gateway.pid).toFixed(0)} MB after`);
  });
});

describe("past the write queue's bound while the database is away", () => {
  let db: StoppablePostgres;
  let stack: Stack;
  before(async () => {
    db = await startStoppablePostgres();
    stack = await startStack({ env: { DATABASE_URL: db.url, DMUC_LOG_LEVEL: "info", DMUC_WRITE_QUEUE_LIMIT: "100" } });
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
