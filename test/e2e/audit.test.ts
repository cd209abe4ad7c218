// The audit trail end to end (issue 12): a scripted room life with real @xmpp/client users on a real
// Prosody, through the built gateway on a real PostgreSQL, then what `dmuc-gateway audit` prints,
// row by row, and `dmuc-gateway history` still returning the messages after the room is gone.
//
//   npx tsc -p . && node --test dist/test/e2e/audit.test.js
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import type { TestClient } from "../support/client.js";
import { GATEWAY_MAIN, startStack, type Stack } from "../support/gateway.js";

const NS = {
  MUC: "http://jabber.org/protocol/muc",
  MUC_USER: "http://jabber.org/protocol/muc#user",
  MUC_ADMIN: "http://jabber.org/protocol/muc#admin",
  MUC_OWNER: "http://jabber.org/protocol/muc#owner",
  DATA: "jabber:x:data",
} as const;
const DOMAIN = "conference.localhost";
const WAIT_MS = 10_000;

const bare = (jid: string | undefined): string => (jid ?? "").split("/")[0]!;
const codes = (el: Element) => (el.getChild("x", NS.MUC_USER)?.getChildren("status") ?? []).map((s) => s.attrs.code);

function cli(stack: Stack, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [GATEWAY_MAIN, ...args], { env: { ...process.env, ...stack.env, DMUC_LOG_LEVEL: "error" }, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Sends a presence to room/nick and waits for the room's answer to that nick (own presence or error). */
async function enter(client: TestClient, room: string, nick: string, password?: string): Promise<Element> {
  await client.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: NS.MUC }, password ? xml("password", {}, password) : null)));
  return client.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/${nick}` && (el.attrs.type === "error" || codes(el).includes("110")), WAIT_MS, `${nick} entering`);
}

const admin = (client: TestClient, room: string, item: Element) => client.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS.MUC_ADMIN }, item)), WAIT_MS);

const configure = (client: TestClient, room: string, fields: Record<string, string>) =>
  client.request(
    xml(
      "iq",
      { type: "set", to: room },
      xml(
        "query",
        { xmlns: NS.MUC_OWNER },
        xml(
          "x",
          { xmlns: NS.DATA, type: "submit" },
          xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
          ...Object.entries(fields).map(([k, v]) => xml("field", { var: k }, xml("value", {}, v))),
        ),
      ),
    ),
    WAIT_MS,
  );

async function say(client: TestClient, room: string, body: string): Promise<void> {
  const id = randomBytes(6).toString("hex");
  await client.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, body)));
  await client.waitFor((el) => el.name === "message" && bare(el.attrs.from) === room && el.attrs.id === id, WAIT_MS, `the echo of ${body}`);
}

describe("audit trail of a room's life (real Prosody, real PostgreSQL)", () => {
  let stack: Stack;
  const room = `audited-${randomBytes(4).toString("hex")}@${DOMAIN}`;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  it("records every event, in order, with actors and subjects, and keeps the messages after the room is gone", async () => {
    const alice = await stack.connect("alice", "desk");
    const bob = await stack.connect("bob", "phone");
    const carol = await stack.connect("carol", "laptop");
    const dave = await stack.connect("dave", "tablet");

    // Create and configure (a password), a refused entry, two entries.
    assert.deepEqual(codes(await enter(alice, room, "Alice")).sort(), ["110", "201"]);
    await configure(alice, room, { "muc#roomconfig_roomname": "Audited", "muc#roomconfig_roomsecret": "s3same" });
    assert.equal((await enter(dave, room, "Dave", "wrong")).attrs.type, "error");
    assert.notEqual((await enter(bob, room, "Bob", "s3same")).attrs.type, "error");
    assert.notEqual((await enter(carol, room, "Carol", "s3same")).attrs.type, "error");

    // A nick change, the subject, messages.
    await bob.send(xml("presence", { to: `${room}/Robert` }));
    await bob.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Robert` && codes(el).includes("110"), WAIT_MS, "Bob as Robert");
    await alice.send(xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "Quarterly review")));
    await carol.waitFor((el) => el.name === "message" && el.getChildText("subject") === "Quarterly review", WAIT_MS, "the subject");
    await say(bob, room, "hello all");
    await say(carol, room, "hi Robert");

    // Voice revoked and granted, a kick, a ban, the destruction.
    await admin(alice, room, xml("item", { nick: "Carol", role: "visitor" }, xml("reason", {}, "hush")));
    await admin(alice, room, xml("item", { nick: "Carol", role: "participant" }));
    await admin(alice, room, xml("item", { nick: "Robert", role: "none" }, xml("reason", {}, "spam")));
    await admin(alice, room, xml("item", { jid: "carol@localhost", affiliation: "outcast" }, xml("reason", {}, "leaks")));
    await alice.request(
      xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS.MUC_OWNER }, xml("destroy", { jid: `archive@${DOMAIN}` }, xml("reason", {}, "review done")))),
      WAIT_MS,
    );

    const audit = await cli(stack, "audit", "--room", room, "--format", "json");
    assert.equal(audit.code, 0, audit.stderr);
    const rows = JSON.parse(audit.stdout) as { kind: string; actor: string | null; subject: string | null; details: Record<string, unknown>; seq: number }[];
    const A = "alice@localhost";
    const B = "bob@localhost";
    const C = "carol@localhost";
    const D = "dave@localhost";
    assert.deepEqual(
      rows.map((r) => [r.kind, r.actor, r.subject]),
      [
        ["room.created", A, null],
        ["occupant.entered", A, A],
        ["config.changed", A, null],
        ["occupant.entry_refused", D, D],
        ["occupant.entered", B, B],
        ["occupant.entered", C, C],
        ["nick.changed", B, B],
        ["subject.changed", A, null],
        ["message", B, null],
        ["message", C, null],
        ["role.changed", A, C],
        ["role.changed", A, C],
        ["occupant.kicked", A, B],
        ["occupant.left", A, B],
        ["occupant.banned", A, C],
        ["occupant.left", A, C],
        ["occupant.left", A, A],
        ["room.destroyed", A, null],
      ],
    );
    assert.deepEqual(rows.map((r) => r.seq), rows.map((_, i) => i + 1));
    const at = (i: number) => rows[i]!.details;
    assert.deepEqual(at(1), { jid: alice.jid, nick: "Alice", role: "moderator", affiliation: "owner", via: "direct" });
    assert.deepEqual(at(2).changes, { name: { from: "", to: "Audited" }, password: { from: "", to: "(set)" } });
    assert.equal(at(3).condition, "not-authorized");
    assert.deepEqual(at(4), { jid: bob.jid, nick: "Bob", role: "participant", affiliation: "none", via: "direct" });
    assert.deepEqual(at(6), { jid: bob.jid, previous: "Bob", nick: "Robert" });
    assert.equal(at(7).subject, "Quarterly review");
    assert.deepEqual([at(10).role, at(10).reason, at(11).role], ["visitor", "hush", "participant"]);
    assert.deepEqual([at(12).nick, at(12).reason, at(13).cause], ["Robert", "spam", "kicked"]);
    assert.deepEqual([at(14).affiliation, at(14).reason, at(15).cause, at(16).cause], ["outcast", "leaks", "banned", "destroyed"]);
    assert.deepEqual(at(17), { reason: "review done", alternate: `archive@${DOMAIN}`, cause: "destroyed", occupants: 1 });

    // The messages outlive the room, and the audit refers to them by stanza-id.
    const history = await cli(stack, "history", room, "--format", "json");
    assert.equal(history.code, 0, history.stderr);
    const messages = JSON.parse(history.stdout) as { stanza_id: string; nick: string; sender: string; body: string; room_exists: boolean }[];
    assert.deepEqual(messages.map((m) => [m.nick, m.sender, m.body, m.room_exists]), [
      ["Robert", bob.jid, "hello all", false],
      ["Carol", carol.jid, "hi Robert", false],
    ]);
    assert.deepEqual(messages.map((m) => m.stanza_id), [at(8).stanzaId, at(9).stanzaId]);

    // Filters: by JID (actor or subject) and kind; the table for people; pseudonyms on request.
    const aboutCarol = await cli(stack, "audit", "--jid", C, "--kind", "occupant.banned,occupant.left", "--format", "ndjson");
    assert.deepEqual(aboutCarol.stdout.trim().split("\n").map((l) => JSON.parse(l).kind), ["occupant.banned", "occupant.left"]);
    const table = await cli(stack, "audit", "--room", room, "--kind", "room.destroyed", "--format", "table");
    const [header, line] = table.stdout.split("\n");
    assert.match(header!, /^AT\s+ROOM\s+KIND\s+ACTOR\s+SUBJECT\s+DETAILS$/);
    assert.match(line!, new RegExp(`^\\S+Z\\s+${room.replace(/\./g, "\\.")}\\s+room\\.destroyed\\s+alice@localhost\\s+\\{"alternate":"archive@conference\\.localhost","cause":"destroyed"`));
    const hidden = await cli(stack, "history", room, "--format", "csv");
    assert.match(hidden.stdout.split("\r\n")[1]!, new RegExp(`,Robert,${bob.jid.replace(/[./]/g, "\\$&")},`));
    const env = { ...stack.env, DMUC_PSEUDONYMISE_EXPORTS: "true" };
    const pseudonymous = await new Promise<string>((resolve) =>
      execFile(process.execPath, [GATEWAY_MAIN, "history", room, "--format", "csv"], { env: { ...process.env, ...env, DMUC_LOG_LEVEL: "error" } }, (_e, out) => resolve(out)),
    );
    const sender = pseudonymous.split("\r\n")[1]!.split(",")[3]!;
    assert.match(sender, /^u-[0-9a-f]{12}@localhost\/r-[0-9a-f]{12}$/);

    const verified = await cli(stack, "audit", "verify", "--room", room);
    assert.equal(verified.code, 0, verified.stdout);
  });
});
