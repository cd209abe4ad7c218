// Self-test of test/support: a real Prosody, real clients, a raw component, a real PostgreSQL, and the
// gateway process helpers driven by a small stand-in program (the gateway itself is tested elsewhere).
//
//   npx tsc -p . && node --test dist/test/integration/support.test.js
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Component } from "@xmpp/component-core";
import xml, { type Element } from "@xmpp/xml";
import pg from "pg";
import { connectClient, IqError, stanza, type TestClient } from "../support/client.js";
import { startGatewayProcess, startStack } from "../support/gateway.js";
import { freePort, freePorts } from "../support/ports.js";
import { startTestDatabase } from "../support/postgres.js";
import { randomSecret, startProsody, type ProsodyServer } from "../support/prosody.js";

const NS_PING = "urn:xmpp:ping";
/** `promise`, or a rejection after `ms` (a safety limit, not a timing assertion). */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms)));
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

const chat = (to: string, body: string): Element => xml("message", { to, type: "chat" }, xml("body", {}, body));

describe("ports", () => {
  it("hands out distinct ports that can be bound", async () => {
    const ports = await freePorts(5);
    assert.equal(new Set(ports).size, 5);
    assert.ok((await freePort()) > 0);
  });
});

describe("Prosody, clients and a raw component", () => {
  const componentDomain = "comp.localhost";
  const secret = randomSecret();
  let prosody: ProsodyServer;
  const login = (username: string): Promise<TestClient> =>
    connectClient({ service: prosody.c2sService, domain: prosody.host, username });

  before(async () => {
    prosody = await startProsody({ components: [{ domain: componentDomain, secret }] });
  });
  after(() => prosody?.stop());

  it("delivers a message from alice to bob", async (t) => {
    const alice = await login("alice");
    t.after(() => alice.stop());
    const bob = await login("bob");
    t.after(() => bob.stop());
    assert.equal(alice.jid, "alice@localhost/test");

    await alice.send(chat(bob.jid, "hello bob"));
    const received = await bob.waitFor(stanza("message", { from: alice.jid }));
    assert.equal(received.getChildText("body"), "hello bob");
    // A stanza that arrived before anyone waited for it stays in the inbox. The IQ round trip through
    // bob's client (which answers unknown IQs with an error; pings it answers, as clients do) proves
    // "second" arrived before the wait.
    await alice.send(chat(bob.jid, "second"));
    await assert.rejects(alice.request(xml("iq", { type: "get", to: bob.jid }, xml("query", { xmlns: "urn:example:unknown" }))), IqError);
    assert.deepEqual(bob.inbox().map((el) => el.name), ["message", "iq"]);
    assert.equal((await bob.waitFor(stanza("message", { from: alice.jid }))).getChildText("body"), "second");
    assert.deepEqual((await bob.drain()).map((el) => el.name), ["iq"]);
    assert.deepEqual(bob.inbox(), []);
  });

  it("answers IQs with results and IqError", async (t) => {
    const alice = await login("alice");
    t.after(() => alice.stop());
    const pong = await alice.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: NS_PING })));
    assert.equal(pong.attrs.type, "result");
    await assert.rejects(
      alice.request(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "urn:example:nothing" }))),
      (err: unknown) => err instanceof IqError && err.condition === "service-unavailable",
    );
    assert.deepEqual(await alice.drain(), [], "IQ replies never reach the inbox");
  });

  it("accepts a component on the component port", async (t) => {
    const component = new Component({ service: prosody.componentService, domain: componentDomain });
    const errors: unknown[] = [];
    component.on("error", (err: unknown) => errors.push(err));
    component.on("open", (header: Element) => {
      component.authenticate(header.attrs.id!, secret).catch((err: unknown) => component.emit("error", err));
    });
    const hiBack = new Promise<Element>((resolve) =>
      component.on("stanza", (el: Element) => el.getChildText("body") === "hi back" && resolve(el)),
    );
    const mark = prosody.logMark();
    await component.start();
    t.after(() => component.stop());
    await prosody.waitForLog(/External component successfully authenticated/, 5_000, { from: mark });

    const alice = await login("alice");
    t.after(() => alice.stop());
    // component -> user
    await component.send(xml("message", { from: `bot@${componentDomain}`, to: alice.jid, type: "chat" }, xml("body", {}, "hi")));
    const fromComponent = await alice.waitFor(stanza("message", { from: `bot@${componentDomain}` }));
    assert.equal(fromComponent.getChildText("body"), "hi");
    // user -> component
    await alice.send(chat(`bot@${componentDomain}`, "hi back"));
    assert.equal((await within(hiBack, 5_000)).attrs.from, alice.jid);
    assert.deepEqual(errors, []);
  });

  it("restarts on the same ports; clients see the disconnect and can log in again", async (t) => {
    const before = { c2s: prosody.c2sPort, component: prosody.componentPort, dir: prosody.dir };
    const alice = await login("alice");
    t.after(() => alice.stop());
    const oldPid = prosody.pid;
    await prosody.restart();
    await alice.closed;
    assert.equal(alice.online, false);
    assert.deepEqual({ c2s: prosody.c2sPort, component: prosody.componentPort, dir: prosody.dir }, before);
    assert.notEqual(prosody.pid, oldPid);
    await assert.rejects(alice.waitFor(() => true, 1_000), /connection is closed/);

    const again = await login("alice");
    t.after(() => again.stop());
    const bob = await login("bob");
    t.after(() => bob.stop());
    await again.send(chat(bob.jid, "after restart"));
    assert.equal((await bob.waitFor(stanza("message", { from: again.jid }))).getChildText("body"), "after restart");
  });
});

describe("PostgreSQL", () => {
  it("gives a fresh database where SELECT 1 works, and drops it", async () => {
    const db = await startTestDatabase();
    const other = await startTestDatabase();
    try {
      assert.notEqual(db.url, other.url);
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ one: number; db: string }>("SELECT 1 AS one, current_database() AS db");
        assert.deepEqual(rows, [{ one: 1, db: db.name }]);
      } finally {
        await client.end();
      }
    } finally {
      await db.stop();
      await other.stop();
    }
    const client = new pg.Client({ connectionString: other.url });
    await assert.rejects(client.connect(), /does not exist/);
  });
});

describe("gateway process helpers (with a stand-in program)", () => {
  let dir: string;
  let standIn: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "dmuc-standin-"));
    standIn = join(dir, "stand-in.mjs");
    const componentCore = createRequire(import.meta.url).resolve("@xmpp/component-core");
    // Speaks the gateway's contract: JSON log lines on stderr; a component that answers pings and
    // echoes chat messages; exits 0 on SIGTERM.
    await writeFile(
      standIn,
      `import { createRequire } from "node:module";
const { Component, xml } = createRequire(import.meta.url)(${JSON.stringify(componentCore)});
const log = (event, fields = {}) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "info", event, ...fields }) + "\\n");
log("gateway.starting", { args: process.argv.slice(2), domain: process.env.DMUC_DOMAIN ?? null,
  databaseUrl: process.env.DATABASE_URL ?? null, leaked: process.env.DMUC_LEAK_CHECK ?? null, dataDir: process.env.DMUC_DATA_DIR ?? null });
process.stdout.write("stand-in output\\n");
process.on("SIGTERM", async () => { log("gateway.stopping"); await entity?.stop().catch(() => {}); process.exit(0); });
let entity;
if (process.env.DMUC_XMPP_SERVICE) {
  entity = new Component({ service: process.env.DMUC_XMPP_SERVICE, domain: process.env.DMUC_DOMAIN });
  entity.on("error", (err) => log("xmpp.error", { message: String(err) }));
  entity.on("open", (el) => entity.authenticate(el.attrs.id, process.env.DMUC_SECRET).catch((err) => entity.emit("error", err)));
  entity.on("stanza", (el) => {
    const reply = { from: el.attrs.to, to: el.attrs.from };
    if (el.name === "iq" && el.attrs.type === "get") entity.send(xml("iq", { ...reply, id: el.attrs.id, type: "result" }));
    if (el.name === "message" && el.getChildText("body")) entity.send(xml("message", { ...reply, type: "chat" }, xml("body", {}, "echo: " + el.getChildText("body"))));
  });
  await entity.start();
  log("xmpp.online");
} else {
  setInterval(() => {}, 1000);
}
`,
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("runs a process, reads its JSON log, and stops it", async (t) => {
    process.env.DMUC_LEAK_CHECK = "from the developer's shell";
    t.after(() => delete process.env.DMUC_LEAK_CHECK);
    const gateway = await startGatewayProcess({ entry: standIn, env: { DMUC_DOMAIN: "x.localhost" }, args: ["start", "--flag"] });
    t.after(() => gateway.stop());
    const started = await gateway.waitForEvent("gateway.starting");
    assert.deepEqual(
      { args: started.args, domain: started.domain, databaseUrl: started.databaseUrl, leaked: started.leaked, dataDir: started.dataDir },
      { args: ["start", "--flag"], domain: "x.localhost", databaseUrl: null, leaked: null, dataDir: join(gateway.dir, "data") },
    );
    await gateway.waitForLog(/"event":"gateway.starting"/);
    const code = await gateway.stop();
    assert.equal(code, 0);
    assert.deepEqual(gateway.events().map((e) => e.event), ["gateway.starting", "gateway.stopping"]);
    assert.equal(gateway.readStdout(), "stand-in output");
    // waiting on a process that has exited fails at once, with its log
    await assert.rejects(gateway.waitForEvent("never", undefined, 60_000), /exited \(code 0/);
  });

  it("startStack wires Prosody, a database and the gateway; drain() is a barrier through the component", async (t) => {
    const stack = await startStack({ entry: standIn, domain: "muc.localhost", admins: ["admin@localhost"] });
    t.after(() => stack.stop());
    const started = await stack.gateway.waitForEvent("gateway.starting");
    assert.equal(started.databaseUrl, stack.db.url);
    assert.equal(stack.env.DMUC_ADMINS, "admin@localhost");
    await stack.gateway.waitForEvent("xmpp.online");

    const alice = await stack.connect("alice");
    await alice.send(chat("echo@muc.localhost", "one"));
    await alice.send(chat("echo@muc.localhost", "two"));
    const echoes = await alice.drain("muc.localhost");
    assert.deepEqual(echoes.map((el) => el.getChildText("body")), ["echo: one", "echo: two"]);

    const first = stack.gateway;
    const second = await stack.restartGateway();
    assert.notEqual(second.pid, first.pid);
    assert.equal(await first.exited.then((s) => s.code), 0);
    await alice.send(chat("echo@muc.localhost", "three"));
    assert.deepEqual((await alice.drain("muc.localhost")).map((el) => el.getChildText("body")), ["echo: three"]);
  });
});
