// The gateway as an operator runs it (the built CLI with the environment), on a real Prosody and a real
// PostgreSQL: it answers disco and ping through the server, survives a restart of the server, refuses
// bad configuration with one message and exit 2, and reports a refused secret.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import pg from "pg";
import { IqError, type TestClient } from "../support/client.js";
import { startGatewayProcess, startStack, type Stack } from "../support/gateway.js";
import { startTestDatabase, type TestDatabase } from "../support/postgres.js";
import { randomSecret, startProsody } from "../support/prosody.js";

const DISCO_INFO = "http://jabber.org/protocol/disco#info";

function discoInfo(to: string) {
  return xml("iq", { type: "get", to, id: `disco-${Math.random().toString(36).slice(2)}` }, xml("query", { xmlns: DISCO_INFO }));
}

describe("a running gateway", () => {
  let stack: Stack;
  let alice: TestClient;

  before(async () => {
    stack = await startStack({ admins: ["admin@localhost"] });
    alice = await stack.connect("alice");
  });
  after(() => stack?.stop());

  it("answers disco#info on its domain with conference/text and the MUC feature", async () => {
    const result = await alice.request(discoInfo(stack.domain));
    const query = result.getChild("query", DISCO_INFO)!;
    const identity = query.getChild("identity")!;
    assert.equal(identity.attrs.category, "conference");
    assert.equal(identity.attrs.type, "text");
    const features = query.getChildren("feature").map((f) => f.attrs.var);
    assert.ok(features.includes("http://jabber.org/protocol/muc"));
    assert.ok(features.includes("urn:xmpp:ping"));
  });

  it("answers XEP-0199 pings, and service-unavailable to IQs it does not support", async () => {
    const pong = await alice.request(xml("iq", { type: "get", to: stack.domain, id: "p1" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs.type, "result");
    await assert.rejects(
      alice.request(xml("iq", { type: "get", to: stack.domain, id: "v1" }, xml("query", { xmlns: "jabber:iq:version" }))),
      (err: unknown) => err instanceof IqError && err.condition === "service-unavailable",
    );
  });

  it("stores its schema through the migrations, with no synchronize", async () => {
    const client = new pg.Client({ connectionString: stack.db.url });
    await client.connect();
    try {
      const tables = await client.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
      assert.deepEqual(
        tables.rows.map((r) => r.table_name),
        ["audit_events", "dmuc_link_positions", "dmuc_replica_queue", "history_messages", "occupants", "replicas", "room_affiliations", "room_tombstones", "rooms", "typeorm_migrations"],
      );
    } finally {
      await client.end();
    }
  });

  it("reconnects when Prosody restarts, and serves again", async () => {
    const mark = stack.gateway.logMark();
    await alice.stop();
    await stack.prosody.restart();
    await stack.gateway.waitForEvent("xmpp.offline", undefined, 20_000, { from: mark });
    await stack.gateway.waitForEvent("xmpp.online", undefined, 60_000, { from: mark });
    alice = await stack.connect("alice", "again");
    const result = await alice.request(discoInfo(stack.domain));
    assert.equal(result.attrs.type, "result");
  });

  it("stops cleanly on SIGTERM: exit code 0, writes flushed, connection closed", async () => {
    const code = await stack.gateway.stop("SIGTERM");
    assert.equal(code, 0);
  });
});

describe("the command line", () => {
  it("refuses bad configuration with one message naming every bad setting, and exit 2", async () => {
    const gateway = await startGatewayProcess({
      env: { DMUC_XMPP_SERVICE: "http://nowhere", DMUC_DOMAIN: "conference.example.org", DMUC_DB_PORT: "99999" },
    });
    const status = await gateway.waitForExit();
    assert.equal(status.code, 2);
    const output = gateway.readLog();
    assert.match(output, /invalid configuration/);
    assert.match(output, /DMUC_XMPP_SERVICE must look like xmpp:\/\/HOST:PORT/);
    assert.match(output, /DMUC_SECRET is required/);
    assert.match(output, /DMUC_DB_PORT must be from 1 to 65535/);
    assert.equal(output.match(/invalid configuration/g)?.length, 1);
    await gateway.stop();
  });

  it("prints help for every command and a usage error for an unknown one", async () => {
    for (const args of [["--help"], ["start", "--help"], ["migrate", "--help"]]) {
      const gateway = await startGatewayProcess({ env: {}, args });
      assert.equal((await gateway.waitForExit()).code, 0);
      assert.match(gateway.readStdout(), /Usage: dmuc-gateway/);
      await gateway.stop();
    }
    const unknown = await startGatewayProcess({ env: {}, args: ["serve"] });
    assert.equal((await unknown.waitForExit()).code, 2);
    assert.match(unknown.readLog(), /unknown command 'serve'/);
    await unknown.stop();
  });

  describe("against a database", () => {
    let db: TestDatabase;
    before(async () => {
      db = await startTestDatabase();
    });
    after(() => db?.stop());

    it("migrate applies the migrations and exits 0, with no XMPP settings", async () => {
      const env = { DATABASE_URL: db.url };
      const gateway = await startGatewayProcess({ env, args: ["migrate"] });
      assert.equal((await gateway.waitForExit()).code, 0);
      assert.ok(gateway.events().some((e) => e.event === "db.migrated"));
      await gateway.stop();
    });

    it("stops with a clear message and exit 1 when the server refuses the secret", async () => {
      const prosody = await startProsody({ components: [{ domain: "conference.localhost", secret: randomSecret() }] });
      try {
        const gateway = await startGatewayProcess({
          env: { DMUC_XMPP_SERVICE: prosody.componentService, DMUC_DOMAIN: "conference.localhost", DMUC_SECRET: "wrong-secret", DATABASE_URL: db.url },
        });
        const status = await gateway.waitForExit();
        assert.equal(status.code, 1);
        assert.match(gateway.readLog(), /refused the component secret/);
        await gateway.stop();
      } finally {
        await prosody.stop();
      }
    });
  });
});
