// End-to-end XEP-0045 (issue 3, "Done when"): real @xmpp/client users on a real Prosody, through the
// built gateway running as a child process (node dist/src/main.js start) on a real PostgreSQL.
// One stack per describe; waits are for stanzas (the timeouts are safety limits, never assertions).
//
//   npx tsc -p . && node --test dist/test/e2e/rooms.test.js
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import pg from "pg";
import { IqError, type TestClient } from "../support/client.js";
import { startStack, type Stack } from "../support/gateway.js";

const NS = {
  MUC: "http://jabber.org/protocol/muc",
  MUC_USER: "http://jabber.org/protocol/muc#user",
  MUC_ADMIN: "http://jabber.org/protocol/muc#admin",
  MUC_OWNER: "http://jabber.org/protocol/muc#owner",
  DATA: "jabber:x:data",
  DELAY: "urn:xmpp:delay",
  STANZA_ID: "urn:xmpp:sid:0",
  STANZAS: "urn:ietf:params:xml:ns:xmpp-stanzas",
} as const;
const DOMAIN = "conference.localhost";
const WAIT_MS = 10_000;

// ---------------------------------------------------------------------------------------------------
// Small XMPP helpers

const bare = (jid: string | undefined): string => (jid ?? "").split("/")[0]!;
const newId = (): string => randomBytes(6).toString("hex");

/** Status codes of a MUC presence or message (<x xmlns=muc#user><status code/>). */
function statusCodes(el: Element): string[] {
  const x = el.getChild("x", NS.MUC_USER);
  return (x?.getChildren("status") ?? []).map((s) => s.attrs.code!).sort();
}

function mucItem(el: Element): Element | undefined {
  return el.getChild("x", NS.MUC_USER)?.getChild("item");
}

function errorCondition(el: Element): string | undefined {
  return el.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === NS.STANZAS)?.name;
}

function stanzaIdBy(el: Element, by: string): string | undefined {
  return el.getChildren("stanza-id", NS.STANZA_ID).find((s) => s.attrs.by === by)?.attrs.id;
}

const isSubject = (el: Element): boolean =>
  el.name === "message" && el.attrs.type === "groupchat" && el.getChild("subject") !== undefined && el.getChild("body") === undefined;

const fromRoom = (room: string) => (el: Element): boolean => bare(el.attrs.from) === room;

interface Entered {
  /** Other occupants' presences, in arrival order. */
  presences: Element[];
  self: Element;
  /** Messages before the subject (the history), in order. */
  history: Element[];
  subject: Element;
}

/**
 * Enters `room` as `nick` and reads the whole join sequence in order (XEP-0045 §7.2: others'
 * presences, own presence, history, subject). Fails if the room answers with an error.
 */
async function enter(client: TestClient, room: string, nick: string, extra: Element[] = []): Promise<Entered> {
  await client.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: NS.MUC }, ...extra)));
  const presences: Element[] = [];
  const history: Element[] = [];
  let self: Element | undefined;
  for (;;) {
    const el = await client.waitFor(fromRoom(room), WAIT_MS, `the join sequence of ${room}/${nick}`);
    if (el.attrs.type === "error") assert.fail(`entering ${room}/${nick} failed: ${el.toString()}`);
    if (el.name === "presence") {
      if (el.attrs.from === `${room}/${nick}` && statusCodes(el).includes("110")) self = el;
      else presences.push(el);
    } else if (isSubject(el)) {
      assert.ok(self, `the subject came before the self-presence: ${el.toString()}`);
      return { presences, self, history, subject: el };
    } else if (el.name === "message") {
      assert.ok(self, `a message came before the self-presence: ${el.toString()}`);
      history.push(el);
    }
  }
}

/** Tries to enter and returns the error presence the room must answer with. */
async function enterRefused(client: TestClient, room: string, nick: string, extra: Element[] = []): Promise<Element> {
  await client.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: NS.MUC }, ...extra)));
  const reply = await client.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/${nick}`, WAIT_MS, `the answer of ${room} to ${nick}`);
  assert.equal(reply.attrs.type, "error", `expected a refusal, got ${reply.toString()}`);
  return reply;
}

const form = (type: "submit" | "cancel", fields: Record<string, string | string[]> = {}): Element =>
  xml(
    "x",
    { xmlns: NS.DATA, type },
    ...(type === "submit" ? [xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig"))] : []),
    ...Object.entries(fields).map(([name, value]) => xml("field", { var: name }, ...[value].flat().map((v) => xml("value", {}, v)))),
  );

/** Submits the room configuration (an empty form: an instant room, XEP-0045 §10.1.2). */
function configure(owner: TestClient, room: string, fields: Record<string, string | string[]> = {}): Promise<Element> {
  return owner.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS.MUC_OWNER }, form("submit", fields))), WAIT_MS);
}

/** Creates a room (owner enters, status 201) and configures it. */
async function createRoom(owner: TestClient, room: string, nick: string, fields: Record<string, string | string[]> = {}): Promise<Entered> {
  const entered = await enter(owner, room, nick);
  assert.deepEqual(statusCodes(entered.self), ["110", "201"]);
  await configure(owner, room, fields);
  return entered;
}

function admin(client: TestClient, room: string, type: "get" | "set", ...items: Element[]): Promise<Element> {
  return client.request(xml("iq", { type, to: room }, xml("query", { xmlns: NS.MUC_ADMIN }, ...items)), WAIT_MS);
}

/** Sends a groupchat message and returns the room's echo of it to the sender. */
async function say(client: TestClient, room: string, body: string): Promise<Element> {
  const id = newId();
  await client.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, body)));
  const echo = await client.waitFor((el) => el.name === "message" && fromRoom(room)(el) && el.attrs.id === id, WAIT_MS, `the echo of "${body}"`);
  assert.notEqual(echo.attrs.type, "error", echo.toString());
  return echo;
}

const groupchatWithBody = (room: string, body: string) => (el: Element): boolean =>
  el.name === "message" && el.attrs.type === "groupchat" && fromRoom(room)(el) && el.getChildText("body") === body;

function newRoomJid(prefix: string): string {
  return `${prefix}-${newId()}@${DOMAIN}`;
}

/** Everything still in the inbox after a round trip through the MUC service (see TestClient.drain). */
const drain = (client: TestClient): Promise<Element[]> => client.drain(DOMAIN);

function describeAll(els: readonly Element[]): string {
  return els.map((el) => el.toString()).join("\n") || "(none)";
}

// ---------------------------------------------------------------------------------------------------

describe("XEP-0045 rooms through the gateway (real Prosody, real PostgreSQL)", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  it("entering: creating a room (201), instant configuration, a second user sees the first", async () => {
    const room = newRoomJid("enter");
    const alice = await stack.connect("alice", "enter");
    const bob = await stack.connect("bob", "enter");

    const created = await enter(alice, room, "Alice");
    assert.deepEqual(statusCodes(created.self), ["110", "201"]);
    assert.equal(mucItem(created.self)?.attrs.affiliation, "owner");
    assert.equal(mucItem(created.self)?.attrs.role, "moderator");
    assert.deepEqual(created.presences, []);
    assert.deepEqual(created.history, []);

    // Locked until configured: nobody else may enter (§10.1.1).
    const locked = await enterRefused(bob, room, "Bob");
    assert.equal(errorCondition(locked), "item-not-found", locked.toString());

    // Instant room: the owner accepts the default configuration.
    const result = await configure(alice, room);
    assert.equal(result.attrs.type, "result");

    const entered = await enter(bob, room, "Bob");
    assert.deepEqual(statusCodes(entered.self), ["110"]);
    assert.equal(mucItem(entered.self)?.attrs.affiliation, "none");
    assert.equal(mucItem(entered.self)?.attrs.role, "participant");
    assert.deepEqual(entered.presences.map((p) => p.attrs.from), [`${room}/Alice`]);
    const aliceSeen = mucItem(entered.presences[0]!);
    assert.equal(aliceSeen?.attrs.affiliation, "owner");
    assert.equal(aliceSeen?.attrs.role, "moderator");
    assert.equal(aliceSeen?.attrs.jid, undefined, "a non-anonymous room is not the default: participants see no real JIDs");
    assert.equal(entered.subject.getChildText("subject"), "");

    // Alice, a moderator, sees Bob enter with his real JID.
    const bobSeen = await alice.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Bob`, WAIT_MS);
    assert.equal(bobSeen.attrs.type, undefined);
    assert.equal(bare(mucItem(bobSeen)?.attrs.jid), "bob@localhost");
    assert.deepEqual(statusCodes(bobSeen), []);

    assert.deepEqual(await drain(alice), []);
    assert.deepEqual(await drain(bob), []);
    await alice.stop();
    await bob.stop();
  });

  it("history: earlier messages arrive with <delay from=room>, the live stanza-ids, then the subject", async () => {
    const room = newRoomJid("history");
    const alice = await stack.connect("alice", "history");
    const bob = await stack.connect("bob", "history");
    const carol = await stack.connect("carol", "history");
    await createRoom(alice, room, "Alice");
    await enter(bob, room, "Bob");

    await alice.send(xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "Today's topic")));
    await alice.waitFor((el) => isSubject(el) && fromRoom(room)(el), WAIT_MS, "the subject change");
    const live = [await say(alice, room, "first"), await say(bob, room, "second"), await say(alice, room, "third")];
    const liveIds = live.map((el) => stanzaIdBy(el, room));
    assert.ok(liveIds.every((id) => typeof id === "string" && id.length > 0), describeAll(live));
    assert.equal(new Set(liveIds).size, 3);
    // Everyone got the same copy (same stanza-id) as the sender's echo.
    for (const [i, body] of ["first", "second", "third"].entries()) {
      const copy = await (i === 1 ? alice : bob).waitFor(groupchatWithBody(room, body), WAIT_MS);
      assert.equal(stanzaIdBy(copy, room), liveIds[i]);
    }
    const subjectAtBob = await bob.waitFor((el) => isSubject(el) && fromRoom(room)(el), WAIT_MS);
    assert.equal(subjectAtBob.getChildText("subject"), "Today's topic");

    const entered = await enter(carol, room, "Carol");
    assert.deepEqual(entered.presences.map((p) => p.attrs.from).sort(), [`${room}/Alice`, `${room}/Bob`]);
    assert.deepEqual(entered.history.map((m) => m.getChildText("body")), ["first", "second", "third"]);
    assert.deepEqual(entered.history.map((m) => m.attrs.from), [`${room}/Alice`, `${room}/Bob`, `${room}/Alice`]);
    for (const [i, message] of entered.history.entries()) {
      assert.equal(message.attrs.type, "groupchat");
      const delay = message.getChild("delay", NS.DELAY);
      assert.equal(delay?.attrs.from, room, message.toString());
      assert.ok(delay?.attrs.stamp && !Number.isNaN(Date.parse(delay.attrs.stamp)), message.toString());
      assert.equal(stanzaIdBy(message, room), liveIds[i], message.toString());
    }
    assert.equal(entered.subject.getChildText("subject"), "Today's topic");
    assert.equal(entered.subject.attrs.from, `${room}/Alice`);

    // A live message after entering has no delay.
    const fourth = await say(bob, room, "fourth");
    const atCarol = await carol.waitFor(groupchatWithBody(room, "fourth"), WAIT_MS);
    assert.equal(atCarol.getChild("delay", NS.DELAY), undefined);
    assert.equal(stanzaIdBy(atCarol, room), stanzaIdBy(fourth, room));

    for (const c of [alice, bob, carol]) await c.stop();
  });

  it("private messages: between occupants; a non-occupant gets an error", async () => {
    const room = newRoomJid("pm");
    const alice = await stack.connect("alice", "pm");
    const bob = await stack.connect("bob", "pm");
    const dave = await stack.connect("dave", "pm");
    await createRoom(alice, room, "Alice");
    await enter(bob, room, "Bob");
    await alice.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Bob`, WAIT_MS);

    await bob.send(xml("message", { to: `${room}/Alice`, type: "chat", id: "pm1" }, xml("body", {}, "psst, Alice")));
    const atAlice = await alice.waitFor((el) => el.name === "message" && el.attrs.from === `${room}/Bob`, WAIT_MS, "Bob's private message");
    assert.equal(atAlice.attrs.type, "chat");
    assert.equal(atAlice.getChildText("body"), "psst, Alice");
    assert.ok(!atAlice.toString().includes("bob@localhost"), `the real JID must not leak: ${atAlice.toString()}`);

    await alice.send(xml("message", { to: `${room}/Bob`, type: "chat", id: "pm2" }, xml("body", {}, "yes, Bob?")));
    const atBob = await bob.waitFor((el) => el.name === "message" && el.attrs.from === `${room}/Alice`, WAIT_MS, "Alice's reply");
    assert.equal(atBob.attrs.type, "chat");
    assert.equal(atBob.getChildText("body"), "yes, Bob?");

    // Dave is not in the room.
    await dave.send(xml("message", { to: `${room}/Alice`, type: "chat", id: "pm3" }, xml("body", {}, "hello from outside")));
    const refused = await dave.waitFor((el) => el.name === "message" && el.attrs.id === "pm3", WAIT_MS, "the error to Dave");
    assert.equal(refused.attrs.type, "error", refused.toString());
    assert.equal(errorCondition(refused), "not-acceptable", refused.toString());
    // Nothing reached the occupants (groupchat from a non-occupant neither).
    await dave.send(xml("message", { to: room, type: "groupchat", id: "gc1" }, xml("body", {}, "shout from outside")));
    const refusedGc = await dave.waitFor((el) => el.name === "message" && el.attrs.id === "gc1", WAIT_MS);
    assert.equal(refusedGc.attrs.type, "error");
    assert.deepEqual(await drain(alice), []);
    assert.deepEqual(await drain(bob), []);

    for (const c of [alice, bob, dave]) await c.stop();
  });

  it("moderation: a kick (307) reaches everyone and removes the user; a ban refuses re-entry", async () => {
    const room = newRoomJid("moderation");
    const alice = await stack.connect("alice", "moderation");
    const bob = await stack.connect("bob", "moderation");
    const carol = await stack.connect("carol", "moderation");
    await createRoom(alice, room, "Alice");
    await enter(bob, room, "Bob");
    await enter(carol, room, "Carol");
    await drain(alice);
    await drain(bob);
    await drain(carol);

    await admin(alice, room, "set", xml("item", { nick: "Bob", role: "none" }, xml("reason", {}, "behave")));
    const kickedSelf = await bob.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Bob`, WAIT_MS, "Bob's kick");
    assert.equal(kickedSelf.attrs.type, "unavailable");
    assert.deepEqual(statusCodes(kickedSelf), ["110", "307"]);
    assert.equal(mucItem(kickedSelf)?.attrs.role, "none");
    assert.equal(mucItem(kickedSelf)?.getChildText("reason"), "behave");
    for (const other of [alice, carol]) {
      const seen = await other.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Bob`, WAIT_MS, "Bob's kick");
      assert.equal(seen.attrs.type, "unavailable");
      assert.deepEqual(statusCodes(seen), ["307"]);
    }
    // Bob is out: his groupchat message is refused and reaches nobody.
    await bob.send(xml("message", { to: room, type: "groupchat", id: "after-kick" }, xml("body", {}, "still here?")));
    const refused = await bob.waitFor((el) => el.name === "message" && el.attrs.id === "after-kick", WAIT_MS);
    assert.equal(refused.attrs.type, "error", refused.toString());
    assert.equal(errorCondition(refused), "not-acceptable");
    assert.deepEqual(await drain(alice), []);
    assert.deepEqual(await drain(carol), []);

    // A ban (outcast) removes Carol (301) and keeps her out.
    await admin(alice, room, "set", xml("item", { jid: "carol@localhost", affiliation: "outcast" }, xml("reason", {}, "spam")));
    const bannedSelf = await carol.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Carol`, WAIT_MS, "Carol's ban");
    assert.equal(bannedSelf.attrs.type, "unavailable");
    assert.deepEqual(statusCodes(bannedSelf), ["110", "301"]);
    assert.equal(mucItem(bannedSelf)?.attrs.affiliation, "outcast");
    const bannedSeen = await alice.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Carol`, WAIT_MS, "Carol's ban");
    assert.equal(bannedSeen.attrs.type, "unavailable");
    assert.deepEqual(statusCodes(bannedSeen), ["301"]);

    const again = await enterRefused(carol, room, "Carol");
    assert.equal(errorCondition(again), "forbidden", again.toString());
    assert.equal(again.getChild("error")?.attrs.type, "auth");
    // A kick is not a ban: Bob may come back.
    const back = await enter(bob, room, "Bob");
    assert.deepEqual(back.presences.map((p) => p.attrs.from), [`${room}/Alice`]);
    const outcasts = await admin(alice, room, "get", xml("item", { affiliation: "outcast" }));
    assert.deepEqual(outcasts.getChild("query", NS.MUC_ADMIN)?.getChildren("item").map((i) => i.attrs.jid), ["carol@localhost"]);

    for (const c of [alice, bob, carol]) await c.stop();
  });

  it("configuration: the owner gets the form; members-only refuses non-members; a password is required", async () => {
    const alice = await stack.connect("alice", "config");
    const dave = await stack.connect("dave", "config");
    const erin = await stack.connect("erin", "config");

    // The form.
    const membersRoom = newRoomJid("members");
    await enter(alice, membersRoom, "Alice");
    const reply = await alice.request(xml("iq", { type: "get", to: membersRoom }, xml("query", { xmlns: NS.MUC_OWNER })), WAIT_MS);
    const x = reply.getChild("query", NS.MUC_OWNER)?.getChild("x", NS.DATA);
    assert.equal(x?.attrs.type, "form", reply.toString());
    const fields = new Map(x!.getChildren("field").map((f) => [f.attrs.var!, f]));
    assert.equal(fields.get("FORM_TYPE")?.getChildText("value"), "http://jabber.org/protocol/muc#roomconfig");
    for (const name of ["muc#roomconfig_membersonly", "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret", "muc#roomconfig_persistentroom"]) {
      assert.ok(fields.has(name), `the form has ${name}: ${reply.toString()}`);
    }
    assert.equal(fields.get("muc#roomconfig_membersonly")?.attrs.type, "boolean");

    // Members-only.
    await configure(alice, membersRoom, { "muc#roomconfig_membersonly": "1" });
    const notMember = await enterRefused(dave, membersRoom, "Dave");
    assert.equal(errorCondition(notMember), "registration-required", notMember.toString());
    assert.equal(notMember.getChild("error")?.attrs.type, "auth");
    await admin(alice, membersRoom, "set", xml("item", { jid: "dave@localhost", affiliation: "member" }));
    const member = await enter(dave, membersRoom, "Dave");
    assert.equal(mucItem(member.self)?.attrs.affiliation, "member");
    // The form now shows the setting.
    const updated = await alice.request(xml("iq", { type: "get", to: membersRoom }, xml("query", { xmlns: NS.MUC_OWNER })), WAIT_MS);
    const membersOnly = updated.getChild("query", NS.MUC_OWNER)?.getChild("x", NS.DATA)?.getChildren("field").find((f) => f.attrs.var === "muc#roomconfig_membersonly");
    assert.ok(["1", "true"].includes(membersOnly?.getChildText("value") ?? ""), updated.toString());

    // Password-protected.
    const secretRoom = newRoomJid("secret");
    await createRoom(alice, secretRoom, "Alice", { "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "s3cret" });
    const noPassword = await enterRefused(erin, secretRoom, "Erin");
    assert.equal(errorCondition(noPassword), "not-authorized", noPassword.toString());
    const wrongPassword = await enterRefused(erin, secretRoom, "Erin", [xml("password", {}, "guess")]);
    assert.equal(errorCondition(wrongPassword), "not-authorized", wrongPassword.toString());
    const withPassword = await enter(erin, secretRoom, "Erin", [xml("password", {}, "s3cret")]);
    assert.deepEqual(withPassword.presences.map((p) => p.attrs.from), [`${secretRoom}/Alice`]);

    // Only the owner may read the form.
    await assert.rejects(
      erin.request(xml("iq", { type: "get", to: secretRoom }, xml("query", { xmlns: NS.MUC_OWNER })), WAIT_MS),
      (err: unknown) => err instanceof IqError && err.condition === "forbidden",
    );

    for (const c of [alice, dave, erin]) await c.stop();
  });
});

describe("a persistent room across a restart of the gateway process", () => {
  let stack: Stack;
  let db: pg.Client | undefined;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await db?.end().catch(() => undefined);
    await stack?.stop();
  });

  const room = newRoomJid("persist");
  const bodies = ["one", "two", "three"];
  let liveIds: string[] = [];
  let alice: TestClient;
  let bob: TestClient;

  it("keeps occupants, history, affiliations; nobody is kicked by the restart", async () => {
    alice = await stack.connect("alice", "persist");
    bob = await stack.connect("bob", "persist");
    const carol = await stack.connect("carol", "persist");

    await createRoom(alice, room, "Alice", { "muc#roomconfig_persistentroom": "1" });
    await admin(alice, room, "set", xml("item", { jid: "bob@localhost", affiliation: "admin" }), xml("item", { jid: "carol@localhost", affiliation: "member" }));
    await enter(bob, room, "Bob");
    const live = [await say(alice, room, bodies[0]!), await say(bob, room, bodies[1]!), await say(alice, room, bodies[2]!)];
    liveIds = live.map((el) => stanzaIdBy(el, room)!);
    assert.ok(liveIds.every(Boolean), describeAll(live));
    for (const body of bodies.filter((_, i) => i !== 1)) await bob.waitFor(groupchatWithBody(room, body), WAIT_MS);
    await alice.waitFor(groupchatWithBody(room, bodies[1]!), WAIT_MS);
    await drain(alice);
    await drain(bob);

    const first = stack.gateway;
    const restarted = await stack.restartGateway();
    assert.notEqual(restarted.pid, first.pid);
    const restored = await restarted.waitForEvent("gateway.rooms_restored", undefined, WAIT_MS);
    assert.ok(Number(restored.occupants) >= 2, JSON.stringify(restored));
    assert.ok(alice.online && bob.online);

    // Without entering again, Bob's message reaches Alice.
    const afterRestart = await say(bob, room, "after the restart");
    const atAlice = await alice.waitFor(groupchatWithBody(room, "after the restart"), WAIT_MS, "Bob's message after the restart");
    assert.equal(atAlice.attrs.from, `${room}/Bob`);
    assert.equal(stanzaIdBy(atAlice, room), stanzaIdBy(afterRestart, room));
    // Nobody was kicked: nothing else (no unavailable presence, no error) reached them.
    for (const c of [alice, bob]) {
      const rest = await drain(c);
      assert.deepEqual(rest.filter((el) => el.name === "presence" && el.attrs.type === "unavailable"), [], describeAll(rest));
      assert.deepEqual(rest, [], `${c.jid} got nothing else: ${describeAll(rest)}`);
    }

    // A third user sees both occupants and the history from before the restart, same stanza-ids.
    const entered = await enter(carol, room, "Carol");
    assert.equal(mucItem(entered.self)?.attrs.affiliation, "member");
    const byFrom = new Map(entered.presences.map((p) => [p.attrs.from!, p]));
    assert.deepEqual([...byFrom.keys()].sort(), [`${room}/Alice`, `${room}/Bob`]);
    assert.equal(mucItem(byFrom.get(`${room}/Alice`)!)?.attrs.affiliation, "owner");
    assert.equal(mucItem(byFrom.get(`${room}/Bob`)!)?.attrs.affiliation, "admin");
    assert.equal(mucItem(byFrom.get(`${room}/Bob`)!)?.attrs.role, "moderator");
    assert.deepEqual(entered.history.map((m) => m.getChildText("body")), [...bodies, "after the restart"]);
    assert.deepEqual(entered.history.map((m) => stanzaIdBy(m, room)), [...liveIds, stanzaIdBy(afterRestart, room)]);
    for (const m of entered.history) assert.equal(m.getChild("delay", NS.DELAY)?.attrs.from, room, m.toString());
    // Alice and Bob see Carol come in.
    for (const c of [alice, bob]) await c.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Carol`, WAIT_MS);

    // The affiliation lists survived.
    const admins = await admin(alice, room, "get", xml("item", { affiliation: "admin" }));
    assert.deepEqual(admins.getChild("query", NS.MUC_ADMIN)?.getChildren("item").map((i) => i.attrs.jid), ["bob@localhost"]);
    const members = await admin(alice, room, "get", xml("item", { affiliation: "member" }));
    assert.deepEqual(members.getChild("query", NS.MUC_ADMIN)?.getChildren("item").map((i) => i.attrs.jid), ["carol@localhost"]);
    await carol.stop();
  });

  it("stores history and audit events in PostgreSQL", async () => {
    assert.ok(liveIds.length === 3, "runs after the restart test");
    db = new pg.Client({ connectionString: stack.db.url });
    await db.connect();
    const history = await db.query<{ stanza_id: string; body: string; nick: string }>(
      `SELECT h.stanza_id, h.body, h.nick FROM history_messages h JOIN rooms r ON r.id = h.room_id WHERE r.jid = $1 ORDER BY h.seq`,
      [room],
    );
    assert.deepEqual(history.rows.slice(0, 3), bodies.map((body, i) => ({ stanza_id: liveIds[i], body, nick: i === 1 ? "Bob" : "Alice" })));
    assert.equal(history.rows[3]?.body, "after the restart");

    const affiliations = await db.query<{ jid: string; affiliation: string }>(
      `SELECT a.jid, a.affiliation FROM room_affiliations a JOIN rooms r ON r.id = a.room_id WHERE r.jid = $1 ORDER BY a.jid`,
      [room],
    );
    assert.deepEqual(affiliations.rows, [
      { jid: "alice@localhost", affiliation: "owner" },
      { jid: "bob@localhost", affiliation: "admin" },
      { jid: "carol@localhost", affiliation: "member" },
    ]);
    const changes = await db.query<{ actor_jid: string; details: { jid: string; affiliation: string } }>(
      `SELECT actor_jid, details FROM audit_events WHERE room_jid = $1 AND kind = 'affiliation.changed' ORDER BY id`,
      [room],
    );
    const granted = changes.rows.filter((r) => r.details.jid !== "alice@localhost").map((r) => [r.actor_jid, r.details.jid, r.details.affiliation]);
    assert.deepEqual(granted, [
      ["alice@localhost", "bob@localhost", "admin"],
      ["alice@localhost", "carol@localhost", "member"],
    ]);

    // Destroying the room: occupants are told, the rows go, the audit trail keeps the event.
    await alice.request(
      xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS.MUC_OWNER }, xml("destroy", {}, xml("reason", {}, "done")))),
      WAIT_MS,
    );
    const gone = await bob.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Bob`, WAIT_MS, "the destruction");
    assert.equal(gone.attrs.type, "unavailable");
    assert.equal(gone.getChild("x", NS.MUC_USER)?.getChild("destroy")?.getChildText("reason"), "done");
    const destroyed = await db.query<{ actor_jid: string; details: { reason?: string } }>(
      `SELECT actor_jid, details FROM audit_events WHERE room_jid = $1 AND kind = 'room.destroyed'`,
      [room],
    );
    assert.deepEqual(destroyed.rows.map((r) => [r.actor_jid, r.details.reason]), [["alice@localhost", "done"]]);
    const left = await db.query(`SELECT 1 FROM rooms WHERE jid = $1`, [room]);
    assert.equal(left.rowCount, 0);
    // Its history outlives it (retention, not deletion), under the room's JID.
    const kept = await db.query(`SELECT body FROM history_messages WHERE room_jid = $1 AND room_id IS NULL ORDER BY sent_at, id`, [room]);
    assert.deepEqual(kept.rows.map((r) => r.body).slice(0, 4), [...bodies, "after the restart"]);
  });
});
