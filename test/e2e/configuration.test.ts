// The configuration holes of issue 13 (point 4), each closed with one message saying what to fix:
// exit 2 for the configuration itself, exit 1 for the environment (a wrong port, a wrong directory).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { removeDirSync } from "../support/cleanup.js";
import { startGatewayProcess, type Env, type GatewayProcess } from "../support/gateway.js";
import { freePort } from "../support/ports.js";
import { startTestDatabase, type TestDatabase } from "../support/postgres.js";
import { startProsody, type ProsodyServer } from "../support/prosody.js";

const DOMAIN = "conference.localhost";

async function exitOf(env: Env, args?: string[]): Promise<{ code: number | null; log: string; stdout: string }> {
  const gateway = await startGatewayProcess({ env, ...(args ? { args } : {}) });
  try {
    const { code } = await gateway.waitForExit(30_000);
    return { code, log: gateway.readLog(), stdout: gateway.readStdout() };
  } finally {
    await gateway.stop();
  }
}

/** What the program wrote for people (not the JSON log lines). */
const message = (log: string) => log.split("\n").filter((l) => !l.startsWith("{")).join("\n");

describe("configuration errors: exit 2, one message", () => {
  it("an XMPP service URL without a port", async () => {
    const { code, log } = await exitOf({ DMUC_XMPP_SERVICE: "xmpp://127.0.0.1", DMUC_DOMAIN: DOMAIN, DMUC_SECRET: "s" });
    assert.equal(code, 2);
    assert.match(message(log), /DMUC_XMPP_SERVICE has no port: write xmpp:\/\/HOST:PORT/);
  });

  it("an XMPP service URL with a port out of range", async () => {
    const { code, log } = await exitOf({ DMUC_XMPP_SERVICE: "xmpp://127.0.0.1:99999", DMUC_DOMAIN: DOMAIN, DMUC_SECRET: "s" });
    assert.equal(code, 2);
    assert.match(message(log), /DMUC_XMPP_SERVICE has a port out of range: it must be from 1 to 65535/);
  });
});

describe("environment errors: exit 1, one message", () => {
  let prosody: ProsodyServer;
  let db: TestDatabase;
  let dir: string;
  before(async () => {
    prosody = await startProsody({ components: [{ domain: DOMAIN, secret: "right" }] });
    db = await startTestDatabase();
    dir = await mkdtemp(join(tmpdir(), "dmuc-config-test-"));
  });
  after(async () => {
    await prosody?.stop();
    await db?.stop();
    if (dir) removeDirSync(dir, "config test");
  });

  it("pointed at the server's client port: says it is the client port, not the component port", async () => {
    const { code, log } = await exitOf({ DMUC_XMPP_SERVICE: prosody.c2sService, DMUC_DOMAIN: DOMAIN, DMUC_SECRET: "right", DATABASE_URL: db.url });
    assert.equal(code, 1);
    assert.match(message(log), /is the server's client port \(it answered with a jabber:client stream\), not its component port: set DMUC_XMPP_SERVICE/);
  });

  it("pointed at a port that does not speak XMPP: says so, with no unhandled rejection", async () => {
    const http: Server = createServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    try {
      const port = (http.address() as AddressInfo).port;
      const { code, log } = await exitOf({ DMUC_XMPP_SERVICE: `xmpp://127.0.0.1:${port}`, DMUC_DOMAIN: DOMAIN, DMUC_SECRET: "right", DATABASE_URL: db.url });
      assert.equal(code, 1);
      assert.match(message(log), /does not speak XMPP \(it answered "HTTP\/1.1 400 Bad Request/);
      assert.doesNotMatch(log, /unhandled_rejection/);
    } finally {
      http.close();
    }
  });

  it("stopped while the first connection attempts are retried: a clean stop, exit 0", async () => {
    const gateway: GatewayProcess = await startGatewayProcess({
      env: { DMUC_XMPP_SERVICE: `xmpp://127.0.0.1:${await freePort()}`, DMUC_DOMAIN: DOMAIN, DMUC_SECRET: "right", DATABASE_URL: db.url },
    });
    await gateway.waitForEvent("xmpp.unreachable", undefined, 30_000);
    assert.equal(await gateway.stop("SIGTERM"), 0);
  });

  it("a data directory that cannot be created: says which and why, at once", async () => {
    const { code, log } = await exitOf({ DMUC_XMPP_SERVICE: prosody.componentService, DMUC_DOMAIN: DOMAIN, DMUC_SECRET: "right", DMUC_DATA_DIR: "/proc/dmuc-gateway-test" });
    assert.equal(code, 1);
    assert.match(message(log), /cannot create the data directory \/proc\/dmuc-gateway-test \(DMUC_DATA_DIR\)/);
  });

  it("links and migrate need no XMPP settings; links on a wrong data directory creates nothing", async () => {
    const wrong = join(dir, "not-the-gateway");
    const { code, log } = await exitOf({ DMUC_DATA_DIR: wrong }, ["links"]);
    assert.equal(code, 1);
    assert.match(message(log), /no gateway database in .*not-the-gateway \(DMUC_DATA_DIR holds no PostgreSQL cluster\): point DMUC_DATA_DIR at the gateway's data directory/);
    assert.ok(!existsSync(wrong), "links created the data directory");
    const empty = await startTestDatabase();
    try {
      const links = await exitOf({ DATABASE_URL: empty.url }, ["links"]);
      assert.equal(links.code, 1, "the database has no gateway tables yet");
      assert.match(message(links.log), /holds no gateway tables: is it the gateway's database \(DATABASE_URL\)\?/);
      assert.equal((await exitOf({ DATABASE_URL: empty.url }, ["migrate"])).code, 0);
      const migrated = await exitOf({ DATABASE_URL: empty.url }, ["links"]);
      assert.equal(migrated.code, 0);
      assert.equal(migrated.stdout.trim(), "no DMUC2 links");
    } finally {
      await empty.stop();
    }
  });
});
