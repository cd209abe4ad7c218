// Backup and restore with no PostgreSQL client tools: back up, destroy the data, restore, and the rooms,
// their history and the audit trail are back; with an external PostgreSQL and with the embedded one.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import pg from "pg";
import { removeDirSync } from "../support/cleanup.js";
import type { TestClient } from "../support/client.js";
import { startGatewayProcess, startStack, type Env, type Stack } from "../support/gateway.js";

const ROOM = "archive@conference.localhost";
const WAIT_MS = 15_000;

async function cli(env: Env, ...args: string[]): Promise<{ code: number | null; stdout: string; log: string }> {
  const run = await startGatewayProcess({ env, args });
  const { code } = await run.waitForExit(60_000);
  const result = { code, stdout: run.readStdout(), log: run.readLog() };
  await run.stop();
  return result;
}

/** Enters the room, and returns the bodies of the history it sends. */
async function historyOf(client: TestClient, nick: string): Promise<string[]> {
  await client.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
  const bodies: string[] = [];
  for (;;) {
    const el = await client.waitFor((e) => (e.attrs.from ?? "").startsWith(ROOM), WAIT_MS);
    assert.notEqual(el.attrs.type, "error", el.toString());
    if (el.name === "message" && el.getChild("subject") !== undefined && el.getChild("body") === undefined) return bodies;
    if (el.name === "message") bodies.push(el.getChildText("body") ?? "");
  }
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("backup and restore", () => {
  let stack: Stack;
  let dir: string;
  let alice: TestClient;

  before(async () => {
    stack = await startStack();
    dir = await mkdtemp(join(tmpdir(), "dmuc-backup-"));
    assert.equal((await cli(stack.env, "rooms", "create", "archive", "--name", "Archive", "--owner", "alice@localhost")).code, 0);
    alice = await stack.connect("alice");
    assert.deepEqual(await historyOf(alice, "Alice"), []);
    for (const body of ["first", "second, with ünïcode ✓"]) {
      await alice.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, body)));
      await alice.waitFor((el) => el.name === "message" && el.getChildText("body") === body, WAIT_MS);
    }
  });
  after(async () => {
    await stack?.stop();
    if (dir) removeDirSync(dir, "backup test");
  });

  it("with an external PostgreSQL: backup while running, restore refused while running, then back after the data is gone", async () => {
    const file = join(dir, "external.backup");
    const made = await cli(stack.env, "backup", file);
    assert.equal(made.code, 0, made.log);
    assert.match(made.stdout, /^backed up \d+ rows of \d+ tables to /);
    const audit = await query<{ kind: string; room_jid: string }>(stack.db.url, "SELECT kind, room_jid FROM audit_events ORDER BY id");
    assert.ok(audit.some((a) => a.kind === "room.created" && a.room_jid === ROOM));

    const refused = await cli(stack.env, "restore", file);
    assert.equal(refused.code, 1);
    assert.match(refused.log, /a gateway is serving this database \(dmuc-gateway gateway pid \d+/);

    await alice.send(xml("presence", { to: `${ROOM}/Alice`, type: "unavailable" }));
    await stack.gateway.stop();
    await query(stack.db.url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    const restored = await cli(stack.env, "restore", file);
    assert.equal(restored.code, 0, restored.log);
    assert.match(restored.stdout, /^restored \d+ rows of \d+ tables from /);
    assert.deepEqual(await query(stack.db.url, "SELECT kind, room_jid FROM audit_events ORDER BY id"), audit);

    const again = await cli(stack.env, "restore", file);
    assert.equal(again.code, 1);
    assert.match(again.log, /the database is not empty \(.*\d+ rooms.*\): restore into an empty database, or give --force/);

    await stack.restartGateway();
    const bob = await stack.connect("bob");
    assert.deepEqual(await historyOf(bob, "Bob"), ["first", "second, with ünïcode ✓"]);
    // New rows get new ids after the restored ones.
    await bob.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "third")));
    await bob.waitFor((el) => el.name === "message" && el.getChildText("body") === "third", WAIT_MS);
    assert.deepEqual(stack.gateway.events().filter((e) => e.level === "error").map((e) => e.event), []);
    const stored = await query<{ n: string }>(stack.db.url, "SELECT count(*) AS n FROM history_messages");
    assert.equal(stored[0]!.n, "3");
  });

  it("with the embedded PostgreSQL: a backup restores into a new data directory", async () => {
    // The data of the external database goes through a backup into a fresh embedded cluster, then back out.
    const file = join(dir, "to-embedded.backup");
    assert.equal((await cli(stack.env, "backup", file)).code, 0);
    const dataDir = join(dir, "embedded-data");
    const embedded: Env = { DATABASE_URL: undefined, DMUC_DATA_DIR: dataDir, DMUC_DOMAIN: stack.domain };
    const restored = await cli(embedded, "restore", file);
    assert.equal(restored.code, 0, restored.log);
    assert.ok(existsSync(join(dataDir, "postgres", "PG_VERSION")), "the restore created the embedded cluster");
    const listed = await cli(embedded, "rooms", "show", "archive", "--json");
    assert.equal(listed.code, 0, listed.log);
    const room = JSON.parse(listed.stdout).room as { jid: string; name: string; historyMessages: number };
    assert.deepEqual([room.jid, room.name, room.historyMessages], [ROOM, "Archive", 3]);
    const out = join(dir, "from-embedded.backup");
    const second = await cli(embedded, "backup", out);
    assert.equal(second.code, 0, second.log);
  });

  it("refuses a file that is not a backup, with one message", async () => {
    const result = await cli(stack.env, "restore", join(dir, "missing.backup"));
    assert.equal(result.code, 1);
    assert.match(result.log, /cannot read .*missing\.backup/);
  });
});
