// Observability of a running gateway: Prometheus metrics, /healthz and /readyz on DMUC_HTTP, scraped
// during a room's life; the health gauges while PostgreSQL is taken away (unannounced, during
// traffic) and after it is back; and the info log events for rooms and occupants.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import type { TestClient } from "../support/client.js";
import { startStack, type Stack } from "../support/gateway.js";
import { freePort } from "../support/ports.js";
import { startStoppablePostgres, type StoppablePostgres } from "../support/stoppable-postgres.js";

const MUC = "http://jabber.org/protocol/muc";
const ROOM = "tea@conference.localhost";
const WAIT_MS = 10_000;

/** One sample's value from the Prometheus text format; undefined when absent. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

async function scrapeFrom(base: string): Promise<string> {
  const response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/** Scrapes until `check` holds, at most `waitMs`; returns the last scrape. */
async function scrapeFromUntil(base: string, check: (text: string) => boolean, waitMs: number): Promise<string> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const text = await scrapeFrom(base);
    if (check(text) || Date.now() > deadline) return text;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("metrics, health and room events", () => {
  let stack: Stack;
  let base: string;
  let alice: TestClient;
  let bob: TestClient;

  const scrape = async (): Promise<string> => {
    const response = await fetch(`${base}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    return response.text();
  };

  /** Scrapes until `check` holds (the gateway counts as it goes), at most WAIT_MS. */
  const scrapeUntil = async (check: (text: string) => boolean): Promise<string> => {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const text = await scrape();
      if (check(text) || Date.now() > deadline) return text;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    stack = await startStack({ env: { DMUC_HTTP: String(port) } });
    alice = await stack.connect("alice");
    bob = await stack.connect("bob");
  });
  after(() => stack?.stop());

  it("answers /healthz, and /readyz once the database and the XMPP stream are up", async () => {
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200, await ready.clone().text());
    assert.equal(await ready.text(), "ready\n");
  });

  it("counts rooms, occupants, stanzas, fan-out and commits during a room's life", async () => {
    const empty = await scrape();
    assert.equal(sample(empty, "dmuc_rooms"), 0);
    assert.equal(sample(empty, "dmuc_xmpp_connected"), 1);

    for (const [client, nick] of [[alice, "Alice"], [bob, "Bob"]] as const) {
      await client.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: MUC })));
      await client.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/${nick}` && el.attrs.type !== "error", WAIT_MS);
      // An instant room (XEP-0045 §10.1.2): the owner accepts the default configuration.
      if (nick === "Alice") await alice.request(xml("iq", { type: "set", to: ROOM, id: "instant" }, xml("query", { xmlns: `${MUC}#owner` }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))));
    }
    await alice.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "scones?")));
    await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "scones?", WAIT_MS);

    const busy = await scrapeUntil((t) => (sample(t, "dmuc_stanzas_received_total", '{kind="message"}') ?? 0) >= 1);
    assert.equal(sample(busy, "dmuc_rooms"), 1);
    assert.equal(sample(busy, "dmuc_occupants"), 2);
    assert.ok(sample(busy, "dmuc_stanzas_received_total", '{kind="presence"}')! >= 2);
    assert.ok(sample(busy, "dmuc_stanzas_received_total", '{kind="message"}')! >= 1);
    assert.ok(sample(busy, "dmuc_stanzas_sent_total", '{kind="message"}')! >= 2, "the message went to both occupants");
    assert.ok(sample(busy, "dmuc_fanout_deliveries_total")! >= 2 + 3, "two copies of the message, three of the presences");
    assert.ok(sample(busy, "dmuc_commit_batch_writes_count")! >= 1);
    assert.ok(sample(busy, "dmuc_commit_duration_seconds_count")! >= 1);
    assert.equal(sample(busy, "dmuc_database_errors_total", '{operation="commit"}') ?? 0, 0);
    assert.equal(sample(busy, "dmuc_links", '{state="active"}'), 0);
    assert.ok(busy.includes("process_resident_memory_bytes"), "process metrics are there too");

    // A temporary room goes when the last occupant leaves.
    for (const [client, nick] of [[bob, "Bob"], [alice, "Alice"]] as const) {
      await client.send(xml("presence", { to: `${ROOM}/${nick}`, type: "unavailable" }));
      await client.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/${nick}` && el.attrs.type === "unavailable", WAIT_MS);
    }
    const after = await scrapeUntil((t) => sample(t, "dmuc_rooms") === 0);
    assert.equal(sample(after, "dmuc_rooms"), 0);
    assert.equal(sample(after, "dmuc_occupants"), 0);
  });

  it("logs rooms created and destroyed and occupants entering and leaving, at info", async () => {
    await stack.gateway.waitForEvent("room.destroyed", (e) => e.room === ROOM, WAIT_MS);
    const events = stack.gateway.events().filter((e) => ["room.created", "room.destroyed", "occupant.entered", "occupant.left"].includes(e.event) && e.room === ROOM);
    assert.deepEqual(
      events.map((e) => [e.level, e.event, e.nick ?? "", e.jid ?? ""]),
      [
        ["info", "room.created", "", ""],
        ["info", "occupant.entered", "Alice", "alice@localhost"],
        ["info", "occupant.entered", "Bob", "bob@localhost"],
        ["info", "occupant.left", "Bob", "bob@localhost"],
        ["info", "occupant.left", "Alice", "alice@localhost"],
        ["info", "room.destroyed", "", ""],
      ],
    );
  });
});

describe("the health gauges while the database is away", () => {
  let db: StoppablePostgres;
  let stack: Stack;
  let base: string;
  before(async () => {
    db = await startStoppablePostgres();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    stack = await startStack({ env: { DATABASE_URL: db.url, DMUC_HTTP: String(port), DMUC_WRITE_QUEUE_LIMIT: "500" } });
  });
  after(async () => {
    await stack?.stop();
    await db?.stop();
  });

  it("exports degraded, the waiting writes and the unreachable database, then healthy again", async () => {
    const alice = await stack.connect("alice");
    const bob = await stack.connect("bob");
    for (const [client, nick] of [[alice, "Alice"], [bob, "Bob"]] as const) {
      await client.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: MUC })));
      await client.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/${nick}` && el.attrs.type !== "error", WAIT_MS);
      if (nick === "Alice") await alice.request(xml("iq", { type: "set", to: ROOM, id: "instant" }, xml("query", { xmlns: `${MUC}#owner` }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))));
    }
    const healthy = await scrapeFrom(base);
    assert.equal(sample(healthy, "dmuc_degraded"), 0);
    assert.equal(sample(healthy, "dmuc_database_up"), 1);
    assert.equal(sample(healthy, "dmuc_write_queue_effects"), 0);
    assert.equal(sample(healthy, "dmuc_write_queue_limit"), 500);

    await db.pause();
    await alice.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "is anyone storing this?")));
    const away = await scrapeFromUntil(base, (t) => sample(t, "dmuc_degraded") === 1, 30_000);
    assert.equal(sample(away, "dmuc_degraded"), 1);
    assert.equal(sample(away, "dmuc_database_up"), 0);
    assert.ok(sample(away, "dmuc_write_queue_effects")! > 0, "the message waits for its commit");
    assert.ok(sample(away, "dmuc_degraded_seconds")! >= 0);
    assert.equal((await fetch(`${base}/readyz`)).status, 503);

    await db.resume();
    await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "is anyone storing this?", 60_000);
    const back = await scrapeFromUntil(base, (t) => sample(t, "dmuc_degraded") === 0 && sample(t, "dmuc_database_up") === 1, 30_000);
    assert.equal(sample(back, "dmuc_degraded"), 0);
    assert.equal(sample(back, "dmuc_degraded_seconds"), 0);
    assert.equal(sample(back, "dmuc_database_up"), 1);
    assert.equal(sample(back, "dmuc_write_queue_effects"), 0);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
  });
});
