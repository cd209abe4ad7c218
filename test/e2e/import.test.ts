// `dmuc-gateway import` end to end (issue 11): rooms on a real Prosody's own MUC with muc_mam (the
// source) are moved into the gateway running beside it on the same Prosody, then compared through
// XMPP only. Users log in with real passwords (internal_hashed) so that a wrong one is refused.
//
//   npx tsc -p . && node --test dist/test/e2e/import.test.js
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import pg from "pg";
import type { TestClient } from "../support/client.js";
import { GATEWAY_MAIN, startStack, type Stack } from "../support/gateway.js";
import { configureRoom, enterRoom, newId, NS_MUC_ADMIN, NS_MUC_OWNER, readWholeArchive, say } from "../support/room-client.js";
import type { MamResult } from "../../src/xmpp/mam.js";

const SOURCE = "rooms.localhost";
const PLAIN_MUC = "plainrooms.localhost";
const DOMAIN = "conference.localhost";
const WAIT_MS = 20_000;
const USERS = ["alice", "bob", "carol", "dave"];

const run = promisify(execFile);

interface ImportRun {
  code: number;
  stdout: string;
  stderr: string;
}

describe("dmuc-gateway import from Prosody's MUC with muc_mam", () => {
  let stack: Stack;
  let db: pg.Client;

  before(async () => {
    stack = await startStack({
      env: { DMUC_RATE_LIMIT: "1000", DMUC_RATE_BURST: "1000" },
      prosody: {
        // Real accounts (a wrong password is refused), stored in the server's data directory so that
        // prosodyctl can create them; Prosody's MUC with its archive as the source, and one without.
        extraConfig: [
          'authentication = "internal_hashed"',
          'storage = "internal"',
          `Component "${SOURCE}" "muc"`,
          '\tmodules_enabled = { "muc_mam" }',
          `Component "${PLAIN_MUC}" "muc"`,
        ].join("\n"),
      },
    });
    for (const user of USERS) {
      await run("prosodyctl", ["--config", stack.prosody.configFile, "register", user, "localhost", "password"]);
    }
    db = new pg.Client({ connectionString: stack.db.url });
    await db.connect();
  });
  after(async () => {
    await db?.end();
    await stack?.stop();
  });

  /** Runs the import command beside the running gateway (same database); resolves with its exit. */
  const importCommand = (args: string[], password = "password", onSpawn?: (pid: number) => void): Promise<ImportRun> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [GATEWAY_MAIN, "import", ...args, "--server", stack.prosody.c2sService], {
        env: { ...process.env, ...stack.env, DMUC_IMPORT_PASSWORD: password, DMUC_LOG_LEVEL: "warn" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("error", reject);
      if (child.pid !== undefined) onSpawn?.(child.pid);
      child.once("exit", (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
    });

  const roomRows = async (room: string): Promise<number> =>
    Number((await db.query(`SELECT count(*) AS n FROM history_messages WHERE room_id = (SELECT id FROM rooms WHERE jid = $1)`, [room])).rows[0].n);

  /** A source room with a non-default configuration, its lists, a subject and `messages` messages. */
  async function sourceRoom(alice: TestClient, bob: TestClient, messages: number, component = SOURCE): Promise<{ room: string; sent: string[] }> {
    const room = `old-${newId()}@${component}`;
    await enterRoom(alice, room, "Alice");
    await configureRoom(alice, room, {
      "muc#roomconfig_roomname": "The old room — ünïcode",
      "muc#roomconfig_roomdesc": "Where we were",
      "muc#roomconfig_persistentroom": "1",
      "muc#roomconfig_publicroom": "0",
      "muc#roomconfig_whois": "anyone",
      "muc#roomconfig_changesubject": "1",
      "muc#roomconfig_historylength": "30",
    });
    // One item per request: Prosody applies only the first item of a muc#admin set.
    const items = [
      xml("item", { jid: "bob@localhost", affiliation: "admin" }, xml("reason", {}, "keeps order")),
      xml("item", { jid: "carol@localhost", affiliation: "member", nick: "Caro" }),
      xml("item", { jid: "dave@localhost", affiliation: "member" }),
      xml("item", { jid: "mallory@localhost", affiliation: "outcast" }, xml("reason", {}, "spam")),
      xml("item", { jid: "frank@localhost", affiliation: "owner" }),
    ];
    for (const item of items) await alice.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS_MUC_ADMIN }, item)), WAIT_MS);
    await alice.send(xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "Welcome — ¡bienvenidos! 🎉")));
    await alice.waitFor((el) => el.attrs.from === `${room}/Alice` && el.getChild("subject") !== undefined, WAIT_MS);
    await enterRoom(bob, room, "Bob");
    const sent: string[] = [];
    for (let i = 0; i < messages; i++) {
      const client = i % 2 === 0 ? alice : bob;
      const body = i % 5 === 0 ? `nachricht ${i}: grüße, 你好 🐈` : `message ${i}`;
      sent.push(body);
      const extra = i % 50 === 7 ? [xml("x", { xmlns: "urn:example:unknown" }, xml("payload", { n: String(i) }, "kept"))] : [];
      if (i === messages - 1) await say(client, room, body, extra);
      else await client.send(xml("message", { to: room, type: "groupchat", id: `m${i}` }, xml("body", {}, body), ...extra));
    }
    await say(alice, room, "last from alice"); // both users' messages have reached the room
    sent.push("last from alice");
    return { room, sent };
  }

  const view = (results: MamResult[]) =>
    results
      .filter((r) => r.message.getChild("body") !== undefined)
      .map((r) => ({
        nick: (r.message.attrs.from ?? "").split("/")[1],
        body: r.message.getChildText("body"),
        stamp: r.stamp.toISOString(),
        unknown: r.message.getChild("x", "urn:example:unknown")?.getChild("payload")?.attrs.n ?? null,
      }));

  const configForm = async (client: TestClient, room: string) => {
    const reply = await client.request(xml("iq", { type: "get", to: room }, xml("query", { xmlns: NS_MUC_OWNER })), WAIT_MS);
    const fields = reply.getChild("query")!.getChild("x")!.getChildren("field");
    // A boolean without a value is false (XEP-0004 §3.3); "1"/"true" and "0"/"false" are the same.
    const normal = (f: (typeof fields)[number]) => {
      const values = f.getChildren("value").map((v) => v.getText());
      if (f.attrs.type !== "boolean") return values;
      return [values[0] === "1" || values[0] === "true" ? "1" : "0"];
    };
    return new Map(fields.map((f) => [f.attrs.var!, normal(f)]));
  };
  const list = async (client: TestClient, room: string, affiliation: string) => {
    const reply = await client.request(xml("iq", { type: "get", to: room }, xml("query", { xmlns: NS_MUC_ADMIN }, xml("item", { affiliation }))), WAIT_MS);
    return reply
      .getChild("query")!
      .getChildren("item")
      .map((i) => `${i.attrs.jid} ${i.getChildText("reason") ?? ""} ${i.attrs.nick ?? ""}`.trim())
      .sort();
  };

  it("moves a configured room with its lists, subject and a few hundred messages; the running gateway serves it at once", async () => {
    const alice = await stack.connect("alice", "imp1");
    const bob = await stack.connect("bob", "imp1");
    const { room, sent } = await sourceRoom(alice, bob, 240);
    const target = `new-${newId()}`;
    const newRoom = `${target}@${DOMAIN}`;

    const dry = await importCommand([room, "--owner", "alice@localhost", "--to", target, "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(JSON.parse(dry.stdout).messages.imported, sent.length);
    assert.equal((await db.query(`SELECT 1 FROM rooms WHERE jid = $1`, [newRoom])).rowCount, 0, "a dry run writes nothing");

    const result = await importCommand([room, "--owner", "alice@localhost", "--to", target, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.target, newRoom);
    assert.equal(summary.messages.imported, sent.length);
    assert.deepEqual(summary.affiliations, { owner: 2, admin: 1, member: 2, outcast: 1 });
    assert.equal(summary.subject, true);
    assert.equal(summary.served, "served", "the command returns once the running gateway serves the room");

    // Through XMPP only: the same archive, in the same order, with the same times and payloads.
    const carol = await stack.connect("carol", "imp1");
    const before = await readWholeArchive(carol, room, 50);
    const moved = await readWholeArchive(carol, newRoom, 50);
    assert.deepEqual(view(moved.results), view(before.results));
    // Two users sent at once: the room's order is what counts; every message is there once.
    assert.deepEqual(view(moved.results).map((m) => m.body).sort(), [...sent].sort());
    assert.ok(view(moved.results).some((m) => m.unknown === "7"), "an unknown extension element is kept");
    // Archive ids are the old ones (references keep working) and stable.
    assert.deepEqual(
      moved.results.map((r) => r.id),
      before.results.filter((r) => r.message.getChild("body")).map((r) => r.id),
    );

    // Configuration: every mapped field has the old value; unmapped ones were reported.
    const oldForm = await configForm(alice, room);
    const newForm = await configForm(alice, newRoom);
    assert.ok(summary.config.mapped >= 7);
    for (const name of ["muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_persistentroom", "muc#roomconfig_publicroom", "muc#roomconfig_whois", "muc#roomconfig_changesubject", "muc#roomconfig_historylength", "muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom"]) {
      assert.deepEqual(newForm.get(name), oldForm.get(name), name);
    }
    // What could not be mapped is reported, each with the old form's field and a reason.
    for (const unmapped of summary.config.unmapped as { field: string; reason: string }[]) {
      assert.ok(oldForm.has(unmapped.field), unmapped.field);
      assert.ok(unmapped.reason.length > 0);
    }

    // The four lists, with reasons and reserved nicks.
    for (const affiliation of ["owner", "admin", "member", "outcast"]) {
      assert.deepEqual(await list(alice, newRoom, affiliation), await list(alice, room, affiliation), affiliation);
    }

    // The subject, and who set it.
    const dave = await stack.connect("dave", "imp1");
    await dave.send(xml("presence", { to: `${newRoom}/Dave` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" }, xml("history", { maxstanzas: "0" }))));
    const subject = await dave.waitFor((el) => el.name === "message" && el.getChild("subject") !== undefined && (el.attrs.from ?? "").startsWith(newRoom), WAIT_MS);
    assert.equal(subject.getChildText("subject"), "Welcome — ¡bienvenidos! 🎉");
    assert.equal(subject.attrs.from, `${newRoom}/Alice`);

    // Re-running stores nothing twice.
    const again = await importCommand([room, "--owner", "alice@localhost", "--to", target, "--json"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout).resumed, true);
    assert.equal(await roomRows(newRoom), sent.length);

    // The audit trail says who imported what from where.
    const audits = await db.query(`SELECT actor_jid, details FROM audit_events WHERE room_jid = $1 AND kind = 'room.imported'`, [newRoom]);
    assert.equal(audits.rowCount, 2);
    assert.equal(audits.rows[0].actor_jid, "alice@localhost");
    assert.equal(audits.rows[0].details.source, room);
    for (const client of [alice, bob, carol, dave]) await client.stop();
  });

  it("an import killed halfway continues where it stopped when run again, and stores nothing twice", async () => {
    const alice = await stack.connect("alice", "imp2");
    const bob = await stack.connect("bob", "imp2");
    const { room, sent } = await sourceRoom(alice, bob, 700);
    const target = `resumed-${newId()}`;
    const newRoom = `${target}@${DOMAIN}`;

    let pid = 0;
    const first = importCommand([room, "--owner", "alice@localhost", "--to", target], "password", (p) => (pid = p));
    // Killed as soon as the first page is stored.
    const deadline = Date.now() + WAIT_MS * 3;
    while ((await roomRows(newRoom).catch(() => 0)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    process.kill(pid, "SIGKILL");
    const killed = await first;
    assert.notEqual(killed.code, 0);
    const partial = await roomRows(newRoom);
    assert.ok(partial > 0 && partial < sent.length, `interrupted with ${partial} of ${sent.length} messages stored`);

    const resumed = await importCommand([room, "--owner", "alice@localhost", "--to", target, "--json"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const summary = JSON.parse(resumed.stdout);
    assert.equal(summary.resumed, true);
    assert.ok(summary.messages.resumedAfter, "continued after the last stored message");
    assert.equal(summary.messages.imported, sent.length - partial);
    assert.equal(summary.served, "served");
    assert.equal(await roomRows(newRoom), sent.length);
    const carol = await stack.connect("carol", "imp2");
    assert.deepEqual(view((await readWholeArchive(carol, newRoom, 50)).results), view((await readWholeArchive(carol, room, 50)).results));
    for (const client of [alice, bob, carol]) await client.stop();
  });

  it("--tombstone destroys the old room pointing to the new one: occupants are told, entering is redirected", async () => {
    const alice = await stack.connect("alice", "imp3");
    const bob = await stack.connect("bob", "imp3");
    const { room } = await sourceRoom(alice, bob, 5);
    const target = `moved-${newId()}`;
    const result = await importCommand([room, "--owner", "alice@localhost", "--to", target, "--tombstone"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /old room destroyed/);
    const gone = await bob.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Bob` && el.attrs.type === "unavailable", WAIT_MS);
    assert.equal(gone.getChild("x", "http://jabber.org/protocol/muc#user")!.getChild("destroy")!.attrs.jid, `${target}@${DOMAIN}`);
    const carol = await stack.connect("carol", "imp3");
    await carol.send(xml("presence", { to: `${room}/Caro` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    const refused = await carol.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Caro`, WAIT_MS);
    assert.equal(refused.attrs.type, "error");
    assert.match(refused.getChild("error")!.getChildText("gone", "urn:ietf:params:xml:ns:xmpp-stanzas") ?? "", new RegExp(`${target}@${DOMAIN}`));
    for (const client of [alice, bob, carol]) await client.stop();
  });

  it("bad input: one clear message and exit 1 (wrong password, not an owner, no such room, no archive, target exists)", async () => {
    const alice = await stack.connect("alice", "imp4");
    const bob = await stack.connect("bob", "imp4");
    const { room } = await sourceRoom(alice, bob, 3);
    const expectFailure = async (args: string[], pattern: RegExp, password?: string) => {
      const outcome = await importCommand(args, password);
      assert.equal(outcome.code, 1, `${args.join(" ")}: ${outcome.stderr}`);
      assert.match(outcome.stderr, pattern);
    };
    await expectFailure([room, "--owner", "alice@localhost", "--to", `x-${newId()}`], /wrong password/, "not-the-password");
    await expectFailure([room, "--owner", "bob@localhost", "--to", `x-${newId()}`], /bob@localhost is not an owner/);
    await expectFailure([`nothing-${newId()}@${SOURCE}`, "--owner", "alice@localhost"], /no such room/);

    const plain = await sourceRoom(alice, bob, 2, PLAIN_MUC);
    const target = `plain-${newId()}`;
    await expectFailure([plain.room, "--owner", "alice@localhost", "--to", target], /has no archive.*--no-archive/);
    const rest = await importCommand([plain.room, "--owner", "alice@localhost", "--to", target, "--no-archive", "--json"]);
    assert.equal(rest.code, 0, rest.stderr);
    assert.equal(JSON.parse(rest.stdout).archive, false);

    // Another room into a name that is taken.
    await expectFailure([room, "--owner", "alice@localhost", "--to", target], /already exists here/);
    for (const client of [alice, bob]) await client.stop();
  });
});
