// The operator's room commands against a running gateway (effective at once, through its database),
// the same as XEP-0050 ad-hoc commands for service administrators, the commands with no gateway
// running, and one gateway per domain: a second one on the same domain and database is refused.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import pg from "pg";
import { IqError, type TestClient } from "../support/client.js";
import { startGatewayProcess, startStack, type Stack } from "../support/gateway.js";

const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const COMMANDS = "http://jabber.org/protocol/commands";
const DATA = "jabber:x:data";
const WAIT_MS = 10_000;

async function cli(stack: Stack, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = await startGatewayProcess({ env: stack.env, args });
  const { code } = await run.waitForExit(30_000);
  const result = { code, stdout: run.readStdout(), stderr: run.readLog() };
  await run.stop();
  return result;
}

async function enter(client: TestClient, room: string, nick: string): Promise<void> {
  await client.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
  const self = await client.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/${nick}`, WAIT_MS, `entering ${room}`);
  assert.notEqual(self.attrs.type, "error", self.toString());
}

function command(to: string, node: string, form?: Record<string, string | string[]>): Element {
  return xml(
    "iq",
    { type: "set", to, id: `c-${Math.random().toString(36).slice(2)}` },
    xml(
      "command",
      { xmlns: COMMANDS, node, action: form ? "complete" : "execute" },
      form
        ? xml("x", { xmlns: DATA, type: "submit" }, ...Object.entries(form).map(([v, values]) => xml("field", { var: v }, ...[values].flat().map((value) => xml("value", {}, value)))))
        : null,
    ),
  );
}

describe("the room commands of a service administrator", () => {
  let stack: Stack;
  let alice: TestClient;
  let admin: TestClient;

  before(async () => {
    stack = await startStack({ admins: ["admin@localhost"] });
    alice = await stack.connect("alice");
    admin = await stack.connect("admin");
  });
  after(() => stack?.stop());

  it("rooms create makes a configured, unlocked, persistent room on the running gateway", async () => {
    const created = await cli(stack, "rooms", "create", "lobby", "--name", "The lobby", "--owner", "alice@localhost");
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^created lobby@conference\.localhost$/m);
    // Unlocked: a user other than the owner enters at once.
    await enter(alice, "lobby@conference.localhost", "Alice");
    const info = await alice.request(xml("iq", { type: "get", to: "lobby@conference.localhost", id: "i1" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    const features = info.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
    assert.ok(features.includes("muc_persistent"), features.join(" "));
    assert.equal(info.getChild("query")!.getChild("identity")!.attrs.name, "The lobby");
  });

  it("rooms list and occupants show the room and who is in it", async () => {
    const list = await cli(stack, "rooms", "list", "--json");
    assert.equal(list.code, 0, list.stderr);
    const rooms = JSON.parse(list.stdout).rooms as { jid: string; occupants: number; persistent: boolean }[];
    assert.deepEqual(rooms.map((r) => [r.jid, r.occupants, r.persistent]), [["lobby@conference.localhost", 1, true]]);
    const table = await cli(stack, "rooms", "list");
    assert.match(table.stdout, /^ROOM\s+NAME\s+OCCUPANTS\s+PERSISTENT\s+PUBLIC\s+LAST ACTIVITY$/m);
    assert.match(table.stdout, /^lobby@conference\.localhost\s+The lobby\s+1\s+yes\s+yes\s+-$/m);
    const occupants = await cli(stack, "occupants", "lobby");
    assert.match(occupants.stdout, new RegExp(`^Alice\\s+moderator\\s+owner\\s+${alice.jid.replace(/[.]/g, "\\.")}$`, "m"));
    const shown = await cli(stack, "rooms", "show", "lobby@conference.localhost");
    assert.match(shown.stdout, /^affiliations:\s+alice@localhost \(owner\)$/m);
  });

  it("the same commands are XEP-0050 ad-hoc commands for service administrators only", async () => {
    const items = await admin.request(xml("iq", { type: "get", to: stack.domain, id: "d1" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#items", node: COMMANDS })));
    const nodes = items.getChild("query")!.getChildren("item").map((i) => i.attrs.node);
    assert.ok(nodes.includes("urn:dmuc-gateway:admin:list-rooms") && nodes.includes("urn:dmuc-gateway:admin:destroy-room"), nodes.join(" "));
    const listed = await admin.request(command(stack.domain, "urn:dmuc-gateway:admin:list-rooms"));
    const done = listed.getChild("command", COMMANDS)!;
    assert.equal(done.attrs.status, "completed");
    const rows = done.getChild("x", DATA)!.getChildren("item").map((item) => item.getChildren("field").find((f) => f.attrs.var === "room")!.getChildText("value"));
    assert.deepEqual(rows, ["lobby@conference.localhost"]);
    await assert.rejects(alice.request(command(stack.domain, "urn:dmuc-gateway:admin:list-rooms")), (err: unknown) => err instanceof IqError && err.condition === "forbidden");
    await assert.rejects(
      admin.request(command(stack.domain, "urn:dmuc-gateway:admin:room-info", { room: "nowhere@conference.localhost" })),
      (err: unknown) => err instanceof IqError && err.condition === "item-not-found",
    );
  });

  it("rooms destroy tells the occupants why and where to go, and removes the room", async () => {
    const destroyed = await cli(stack, "rooms", "destroy", "lobby", "--reason", "moving house", "--venue", "hall@conference.localhost");
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.match(destroyed.stdout, /^destroyed lobby@conference\.localhost \(1 occupants told\)$/m);
    const gone = await alice.waitFor((el) => el.name === "presence" && el.attrs.type === "unavailable" && el.attrs.from === "lobby@conference.localhost/Alice", WAIT_MS);
    const destroy = gone.getChild("x", MUC_USER)!.getChild("destroy")!;
    assert.equal(destroy.attrs.jid, "hall@conference.localhost");
    assert.equal(destroy.getChildText("reason"), "moving house");
    const db = new pg.Client({ connectionString: stack.db.url });
    await db.connect();
    try {
      assert.equal((await db.query("SELECT 1 FROM rooms WHERE jid = 'lobby@conference.localhost'")).rowCount, 0);
    } finally {
      await db.end();
    }
    const missing = await cli(stack, "rooms", "show", "lobby");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no room lobby@conference\.localhost/);
  });

  it("a second gateway for the same domain on the same database is refused, naming the first", async () => {
    const second = await startGatewayProcess({ env: stack.env });
    const { code } = await second.waitForExit(30_000);
    assert.equal(code, 1);
    assert.match(second.readLog(), /another gateway is serving conference\.localhost on this database \(dmuc-gateway gateway pid \d+ on /);
    await second.stop();
  });

  it("with no gateway running, the commands work on the database and the next start serves the result", async () => {
    await stack.gateway.stop();
    const created = await cli(stack, "rooms", "create", "quiet", "--temporary", "--hidden");
    assert.equal(created.code, 0, created.stderr);
    const list = await cli(stack, "rooms", "list", "--json");
    assert.deepEqual((JSON.parse(list.stdout).rooms as { jid: string; persistent: boolean; public: boolean }[]).map((r) => [r.jid, r.persistent, r.public]), [
      ["quiet@conference.localhost", false, false],
    ]);
    await stack.restartGateway();
    await enter(alice, "quiet@conference.localhost", "Alice");
  });
});
