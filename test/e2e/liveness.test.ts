// Ghost occupants (issue 10, point 1) end to end: real @xmpp/client users on a real Prosody, the built
// gateway in a child process, a real PostgreSQL. Faults are unannounced: a client's TCP connection is
// cut and Prosody crashes (SIGKILL: no unavailable presences) and restarts while users are in rooms; clients come back as real ones do (new session,
// rejoin, retried while the room answers with an error). Then, within 60 s, no room lists an occupant
// that is gone (disco#items, the occupants table), and nobody who left receives anything.
//
//   npx tsc -p . && node --test dist/test/e2e/liveness.test.js
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import pg from "pg";
import { connectClient, type TestClient } from "../support/client.js";
import { startEjabberd, type EjabberdServer } from "../support/ejabberd.js";
import { startGatewayProcess, startStack, type GatewayProcess, type Stack } from "../support/gateway.js";
import { startTestDatabase, type TestDatabase } from "../support/postgres.js";

const NS = {
  MUC: "http://jabber.org/protocol/muc",
  MUC_OWNER: "http://jabber.org/protocol/muc#owner",
  DATA: "jabber:x:data",
  DISCO_ITEMS: "http://jabber.org/protocol/disco#items",
} as const;
const DOMAIN = "conference.localhost";
const WAIT_MS = 10_000;
/** The bound: ghosts are gone within a minute of the fault. */
const GHOSTS_GONE_MS = 60_000;

const bare = (jid: string | undefined): string => (jid ?? "").split("/")[0]!;
const fromRoom = (room: string) => (el: Element): boolean => bare(el.attrs.from) === room;

/** Enters and reads the join sequence up to the subject; resolves with the answer, an error presence or the subject. */
async function tryEnter(client: TestClient, room: string, nick: string): Promise<Element> {
  await client.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: NS.MUC }, xml("history", { maxstanzas: "0" }))));
  for (;;) {
    const el = await client.waitFor(fromRoom(room), WAIT_MS, `the join sequence of ${room}/${nick}`);
    if (el.name === "presence" && el.attrs.type === "error") return el;
    if (el.name === "message" && el.getChild("subject")) return el;
  }
}

async function enter(client: TestClient, room: string, nick: string): Promise<void> {
  const answer = await tryEnter(client, room, nick);
  assert.notEqual(answer.attrs.type, "error", answer.toString());
}

/** What a client does after a server restart: rejoin, and try again while the room is unreachable. */
async function rejoin(client: TestClient, room: string, nick: string): Promise<void> {
  const deadline = Date.now() + GHOSTS_GONE_MS;
  for (;;) {
    const answer = await tryEnter(client, room, nick);
    if (answer.attrs.type !== "error") return;
    if (Date.now() > deadline) assert.fail(`could not rejoin ${room}: ${answer.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function createRoom(owner: TestClient, room: string, nick: string): Promise<void> {
  await enter(owner, room, nick);
  const fields = { "muc#roomconfig_whois": "anyone", "muc#roomconfig_persistentroom": "1" };
  const form = xml(
    "x",
    { xmlns: NS.DATA, type: "submit" },
    xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
    ...Object.entries(fields).map(([name, value]) => xml("field", { var: name }, xml("value", {}, value))),
  );
  await owner.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS.MUC_OWNER }, form)), WAIT_MS);
}

/** The nicks a room lists (disco#items: the rooms here are non-anonymous, so it lists its occupants). */
async function listed(client: TestClient, room: string): Promise<string[]> {
  const result = await client.request(xml("iq", { type: "get", to: room }, xml("query", { xmlns: NS.DISCO_ITEMS })), WAIT_MS);
  return (result.getChild("query", NS.DISCO_ITEMS)?.getChildren("item") ?? []).map((i) => i.attrs.jid!.split("/")[1]!).sort();
}

async function storedSessions(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ row: string }>(
      "SELECT r.jid || ' ' || o.nick || ' ' || o.real_jid AS row FROM occupants o JOIN rooms r ON r.id = o.room_id ORDER BY 1",
    );
    return rows.map((r) => r.row);
  } finally {
    await client.end();
  }
}

/** Polls `read` until it equals `expected` or the bound passes; the last value is what is compared. */
async function eventually<T>(read: () => Promise<T>, expected: T, what: string): Promise<void> {
  const deadline = Date.now() + GHOSTS_GONE_MS;
  let last: T;
  for (;;) {
    last = await read();
    try {
      assert.deepEqual(last, expected);
      return;
    } catch {
      if (Date.now() > deadline) assert.deepEqual(last, expected, `${what} after ${GHOSTS_GONE_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

describe("ghost occupants (real Prosody restarted, a client's TCP connection cut)", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  it("after the server restart no room lists a gone occupant, and nobody who left receives anything", async () => {
    const id = randomBytes(4).toString("hex");
    const lobby = `lobby-${id}@${DOMAIN}`;
    const annex = `annex-${id}@${DOMAIN}`;
    let alice = await stack.connect("alice", "before");
    const bob = await stack.connect("bob", "before");
    let carol = await stack.connect("carol", "before");
    await createRoom(alice, lobby, "Alice");
    await createRoom(carol, annex, "Carol");
    await enter(bob, lobby, "Bob");
    await enter(carol, lobby, "Carol");
    await enter(alice, annex, "Alice");
    assert.deepEqual(await listed(alice, lobby), ["Alice", "Bob", "Carol"]);

    // Faults, unannounced: Bob's TCP connection is cut, then the server crashes under everyone and
    // starts again: nobody tells the rooms that the sessions ended.
    bob.raw.socket?.destroy();
    await stack.prosody.restart({ crash: true });

    // Alice comes back with a new session and rejoins both rooms as her client would; Carol comes back
    // but does not rejoin (she left).
    alice = await stack.connect("alice", "after");
    carol = await stack.connect("carol", "after");
    await rejoin(alice, lobby, "Alice");
    await rejoin(alice, annex, "Alice");

    await eventually(() => listed(alice, lobby), ["Alice"], "the lobby's occupants");
    await eventually(() => listed(alice, annex), ["Alice"], "the annex's occupants");
    await eventually(
      () => storedSessions(stack.db.url),
      [`${annex} Alice ${alice.jid}`, `${lobby} Alice ${alice.jid}`].sort(),
      "the stored occupants",
    );
    // The room goes on; Carol, who left, receives nothing from either room.
    await alice.send(xml("message", { to: lobby, type: "groupchat", id: "after-1" }, xml("body", {}, "still here")));
    await alice.waitFor((el) => el.name === "message" && el.attrs.id === "after-1", WAIT_MS);
    await alice.send(xml("message", { to: annex, type: "groupchat", id: "after-2" }, xml("body", {}, "here too")));
    await alice.waitFor((el) => el.name === "message" && el.attrs.id === "after-2", WAIT_MS);
    const carolGot = (await carol.drain(DOMAIN)).filter((el) => fromRoom(lobby)(el) || fromRoom(annex)(el));
    assert.deepEqual(carolGot.map((el) => el.toString()), []);
  });

  it("occupants restored by a gateway restart are verified: one who left while it was down is removed", async () => {
    const lobby = `restored-${randomBytes(4).toString("hex")}@${DOMAIN}`;
    const alice = await stack.connect("alice", "restored");
    const dave = await stack.connect("dave", "restored");
    await createRoom(alice, lobby, "Alice");
    await enter(dave, lobby, "Dave");

    // The gateway goes away; meanwhile Dave leaves (his unavailable presence bounces) and logs out.
    await stack.gateway.stop();
    await dave.send(xml("presence", { to: `${lobby}/Dave`, type: "unavailable" }));
    await dave.stop();
    await stack.restartGateway();

    await eventually(() => listed(alice, lobby), ["Alice"], "the occupants after the gateway restart");
    await eventually(() => storedSessions(stack.db.url).then((rows) => rows.filter((r) => r.startsWith(lobby))), [`${lobby} Alice ${alice.jid}`], "the stored occupants");
  });
});

describe("ghost occupants on ejabberd (crashed and restarted under users in a room)", () => {
  let ejabberd: EjabberdServer | undefined;
  let db: TestDatabase | undefined;
  let gateway: GatewayProcess | undefined;
  const clients: TestClient[] = [];
  before(async () => {
    const secret = randomBytes(12).toString("hex");
    ejabberd = await startEjabberd({ components: [{ domain: DOMAIN, secret }], users: ["alice", "carol"] });
    // The accounts just registered may still sit in the Erlang VM's write buffers; the crash below must
    // lose sessions, not accounts: a clean restart puts them on disk first.
    await ejabberd.restart();
    db = await startTestDatabase();
    gateway = await startGatewayProcess({
      env: { DMUC_XMPP_SERVICE: ejabberd.componentService, DMUC_DOMAIN: DOMAIN, DMUC_SECRET: secret, DATABASE_URL: db.url, DMUC_LOG_LEVEL: "debug" },
    });
  });
  after(async () => {
    for (const c of clients) await c.stop().catch(() => undefined);
    await gateway?.stop();
    await ejabberd?.stop();
    await db?.stop();
  });

  const user = async (username: string, resource: string): Promise<TestClient> => {
    const c = await connectClient({ service: ejabberd!.c2sService, domain: "localhost", username, resource });
    clients.push(c);
    return c;
  };

  /** Setup only: the service answers once the gateway is connected to ejabberd. */
  const serviceUp = async (client: TestClient): Promise<void> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await client.request(xml("iq", { type: "get", to: DOMAIN }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })), 5000).then(() => true, () => false);
      if (ok) return;
      if (Date.now() > deadline) assert.fail(`the gateway did not connect to ejabberd:\n${gateway!.readLog().split("\n").slice(-20).join("\n")}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };

  it("after the crash no room lists a gone occupant, and a user back without rejoining receives nothing", async () => {
    const lobby = `lobby-${randomBytes(4).toString("hex")}@${DOMAIN}`;
    let alice = await user("alice", "before");
    await serviceUp(alice);
    let carol = await user("carol", "before");
    await createRoom(alice, lobby, "Alice");
    await enter(carol, lobby, "Carol");
    assert.deepEqual(await listed(alice, lobby), ["Alice", "Carol"]);

    await ejabberd!.restart({ crash: true });

    alice = await user("alice", "after");
    carol = await user("carol", "after");
    await rejoin(alice, lobby, "Alice");
    await eventually(() => listed(alice, lobby), ["Alice"], "the lobby's occupants");
    await eventually(() => storedSessions(db!.url), [`${lobby} Alice ${alice.jid}`], "the stored occupants");
    await alice.send(xml("message", { to: lobby, type: "groupchat", id: "after-ejabberd" }, xml("body", {}, "still here")));
    await alice.waitFor((el) => el.name === "message" && el.attrs.id === "after-ejabberd", WAIT_MS);
    const carolGot = (await carol.drain(DOMAIN)).filter(fromRoom(lobby));
    assert.deepEqual(carolGot.map((el) => el.toString()), []);
  });
});
