// The Prosody module plugins/prosody/mod_dmuc_replica.lua (docs/PROTOCOL.md, "What users send"), tested
// on real servers: Prosody A (a.test, with the module and the replica component dmuc.a.test) federated
// over plaintext s2s with Prosody B (b.test, with a raw component muc.b.test playing a remote room
// service). The replica is a raw component driven by the test. A third Prosody (no s2s) checks the
// pinned `dmuc_replica` option.
//
//   npx tsc -p . && node --test dist/test/integration/prosody-module.test.js
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Component } from "@xmpp/component-core";
import xml, { type Element } from "@xmpp/xml";
import { connectClient, stanza, type StanzaPredicate, type TestClient } from "../support/client.js";
import { randomSecret, startProsody, type ProsodyServer } from "../support/prosody.js";

const NS = "urn:xmpp:tmp:dmuc:0";
// dist/test/integration -> repository root (the .lua file is not compiled, so use the source tree)
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PLUGIN_DIR = join(ROOT, "plugins", "prosody");

// Own loopback addresses (standard s2s port 5269 on each), away from other federation tests' .2/.3.
const ADDR_A = "127.0.0.41";
const ADDR_B = "127.0.0.42";

/** A raw XEP-0114 component with an inbox (like TestClient's) and IQ requests. */
class RawComponent {
  private readonly received: Element[] = [];
  private readonly waiters = new Set<{ predicate: StanzaPredicate; resolve(el: Element): void }>();
  private readonly pending = new Map<string, (el: Element) => void>();
  private nextId = 0;
  readonly errors: unknown[] = [];

  private constructor(
    readonly domain: string,
    readonly raw: Component,
  ) {
    raw.on("error", (err: unknown) => this.errors.push(err));
    raw.on("stanza", (el: Element) => this.onStanza(el));
  }

  static async connect(server: ProsodyServer, domain: string, secret: string): Promise<RawComponent> {
    const raw = new Component({ service: server.componentService, domain });
    const component = new RawComponent(domain, raw);
    raw.on("open", (header: Element) => {
      raw.authenticate(header.attrs.id!, secret).catch((err: unknown) => raw.emit("error", err));
    });
    const mark = server.logMark();
    await raw.start();
    await server.waitForLog(/External component successfully authenticated/, 5_000, { from: mark });
    return component;
  }

  private onStanza(el: Element): void {
    const id = el.attrs.id;
    if (el.name === "iq" && (el.attrs.type === "result" || el.attrs.type === "error") && id && this.pending.has(id)) {
      const done = this.pending.get(id)!;
      this.pending.delete(id);
      return done(el);
    }
    for (const waiter of this.waiters) {
      if (waiter.predicate(el)) {
        this.waiters.delete(waiter);
        return waiter.resolve(el);
      }
    }
    this.received.push(el);
  }

  send(el: Element): Promise<void> {
    return this.raw.send(el);
  }

  /** Sends an iq and resolves with the reply (result or error). */
  request(iq: Element, timeoutMs = 5_000): Promise<Element> {
    const id = (iq.attrs.id ??= `${this.domain}-${++this.nextId}`);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.domain}: no reply to ${iq.toString()} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (el) => {
        clearTimeout(timer);
        resolvePromise(el);
      });
      this.raw.send(iq).catch(reject);
    });
  }

  waitFor(predicate: StanzaPredicate, timeoutMs = 5_000, what = "a stanza"): Promise<Element> {
    const index = this.received.findIndex(predicate);
    if (index >= 0) return Promise.resolve(this.received.splice(index, 1)[0]!);
    return new Promise((resolvePromise, reject) => {
      const waiter = { predicate, resolve: (el: Element) => (clearTimeout(timer), resolvePromise(el)) };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.domain}: ${what} did not arrive within ${timeoutMs} ms; inbox: ${this.received.join("\n")}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Unconsumed stanzas (not consumed by looking). */
  inbox(): readonly Element[] {
    return this.received;
  }

  async stop(): Promise<void> {
    await this.raw.stop().catch(() => undefined);
  }
}

const message = (to: string, body: string, type = "groupchat"): Element => xml("message", { to, type }, xml("body", {}, body));
const withFrom = (el: Element, from: string): Element => {
  el.attrs.from = from;
  return el;
};
/** The attributes, without the xml:lang that Prosody stamps on every stanza from a stream. */
const attrsOf = (el: Element): Record<string, string> => {
  const attrs = { ...el.attrs };
  delete attrs["xml:lang"];
  return attrs;
};
const withBody = (body: string): StanzaPredicate => (el) => el.name === "message" && el.getChildText("body") === body;
const errorCondition = (reply: Element): string | undefined =>
  reply.getChild("error")?.children.find((c): c is Element => typeof c !== "string" && c.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas")?.name;

const divert = (from: string, to: string, room: string, name = "divert"): Element =>
  xml("iq", { type: "set", from, to }, xml(name, { xmlns: NS, room }));
const directed = (from: string, to: string, jid: string | undefined, room: string): Element =>
  xml("iq", { type: "get", from, to }, xml("directed", { xmlns: NS, jid, room }));
const relay = (from: string, to: string, inner: Element): Element => xml("iq", { type: "set", from, to }, xml("relay", { xmlns: NS }, inner));

function assertResult(reply: Element): void {
  assert.equal(reply.attrs.type, "result", `expected a result, got ${reply.toString()}`);
}
function assertForbidden(reply: Element): void {
  assert.equal(reply.attrs.type, "error", `expected an error, got ${reply.toString()}`);
  assert.equal(errorCondition(reply), "forbidden", reply.toString());
}
const presentOf = (reply: Element): string | undefined => {
  assertResult(reply);
  return reply.getChild("directed", NS)?.attrs.present;
};

describe("mod_dmuc_replica on two federated Prosody servers", () => {
  const secretReplica = randomSecret();
  const secretOther = randomSecret();
  const secretMuc = randomSecret();
  const ROOM = "room@muc.b.test";
  const OTHER_ROOM = "other@muc.b.test";
  let dir: string;
  let a: ProsodyServer;
  let b: ProsodyServer;
  let replica: RawComponent;
  let intruder: RawComponent;
  let muc: RawComponent;
  let user: TestClient;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "dmuc-prosody-module-"));
    const hostsFile = join(dir, "hosts");
    const resolvConf = join(dir, "resolv.conf");
    await writeFile(hostsFile, `${ADDR_A} a.test dmuc.a.test dmuc2.a.test\n${ADDR_B} b.test muc.b.test\n`);
    await writeFile(resolvConf, "nameserver 127.0.0.1\n");
    const unbound = `unbound = { hoststxt = "${hostsFile}"; resolvconf = "${resolvConf}" }`;
    a = await startProsody({
      host: "a.test",
      interface: ADDR_A,
      s2s: true,
      extraModules: ["dmuc_replica", "admin_shell"], // admin_shell: `prosodyctl shell module reload`
      pluginPaths: [PLUGIN_DIR],
      extraConfig: unbound,
      components: [
        { domain: "dmuc.a.test", secret: secretReplica, validateFromAddresses: false },
        { domain: "dmuc2.a.test", secret: secretOther, validateFromAddresses: false },
      ],
    });
    cleanups.push(() => a.stop());
    b = await startProsody({
      host: "b.test",
      interface: ADDR_B,
      s2s: true,
      extraConfig: unbound,
      components: [{ domain: "muc.b.test", secret: secretMuc }],
    });
    cleanups.push(() => b.stop());
    await a.waitForLog(/a\.test:dmuc_replica\s+info\s+dmuc\.loaded replica: the first component/, 2_000);
    replica = await RawComponent.connect(a, "dmuc.a.test", secretReplica);
    cleanups.push(() => replica.stop());
    intruder = await RawComponent.connect(a, "dmuc2.a.test", secretOther);
    cleanups.push(() => intruder.stop());
    muc = await RawComponent.connect(b, "muc.b.test", secretMuc);
    cleanups.push(() => muc.stop());
    user = await connectClient({ service: a.c2sService, domain: "a.test", username: "rubenro", resource: "shaver" });
    cleanups.push(() => user.stop());
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("(a) without a diversion, presence to a remote room goes over s2s", async () => {
    await user.send(xml("presence", { to: `${ROOM}/BigCheese` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    const got = await muc.waitFor(stanza("presence", { to: `${ROOM}/BigCheese` }), 15_000, "the presence over s2s");
    assert.equal(got.attrs.from, user.jid);
    assert.equal(replica.inbox().length, 0);
  });

  it("(b) after <divert/>, what the user sends to the room reaches the replica unchanged, not the room", async () => {
    assertResult(await replica.request(divert("dmuc.a.test", "a.test", ROOM)));
    await user.send(message(ROOM, "diverted one"));
    await user.send(xml("message", { to: `${ROOM}/Wumpus`, type: "chat", id: "pm1" }, xml("body", {}, "diverted pm")));
    const first = await replica.waitFor(withBody("diverted one"), 5_000, "the diverted groupchat message");
    assert.deepEqual(attrsOf(first), { from: user.jid, to: ROOM, type: "groupchat" });
    const pm = await replica.waitFor(withBody("diverted pm"), 5_000, "the diverted private message");
    assert.deepEqual(attrsOf(pm), { from: user.jid, to: `${ROOM}/Wumpus`, type: "chat", id: "pm1" });
    // A barrier: a message to an undiverted room of the same service takes the same s2s stream after them.
    await user.send(message(OTHER_ROOM, "not diverted"));
    const other = await muc.waitFor(withBody("not diverted"), 5_000, "the message to the other room");
    assert.equal(other.attrs.from, user.jid);
    assert.deepEqual(muc.inbox().filter((el) => el.attrs.to?.startsWith(ROOM)), [], "nothing for the diverted room over s2s");
  });

  it("(c) <directed/> tells whether the session sent available presence to the room", async () => {
    const ask = (jid: string, room: string): Promise<Element> => replica.request(directed("dmuc.a.test", "a.test", jid, room));
    assert.equal(presentOf(await ask(user.jid, ROOM)), "true", "presence sent in (a), before the diversion");
    assert.equal(presentOf(await ask(user.jid, OTHER_ROOM)), "false", "a message is not presence");
    assert.equal(presentOf(await ask("rubenro@a.test/other", ROOM)), "false", "another resource");
    assert.equal(presentOf(await ask("someone@a.test/x", ROOM)), "false", "another user");
    // Without a JID: is any session of this server in the room? (what a replica asks before replicating it)
    const anyone = (room: string): Promise<Element> => replica.request(directed("dmuc.a.test", "a.test", undefined, room));
    assert.equal(presentOf(await anyone(ROOM)), "true");
    assert.equal(presentOf(await anyone(OTHER_ROOM)), "false", "nobody of this server entered it");
    // A presence to a diverted room is recorded too (mod_presence sees it before it is routed).
    const ROOM3 = "third@muc.b.test";
    assertResult(await replica.request(divert("dmuc.a.test", "a.test", ROOM3)));
    await user.send(xml("presence", { to: `${ROOM3}/BigCheese` }));
    const diverted = await replica.waitFor(stanza("presence", { to: `${ROOM3}/BigCheese` }), 5_000, "the diverted presence");
    assert.equal(diverted.attrs.from, user.jid);
    assert.equal(presentOf(await ask(user.jid, ROOM3)), "true");
    await user.send(xml("presence", { to: `${ROOM3}/BigCheese`, type: "unavailable" }));
    await replica.waitFor(stanza("presence", { to: `${ROOM3}/BigCheese`, type: "unavailable" }), 5_000, "the diverted unavailable");
    assert.equal(presentOf(await ask(user.jid, ROOM3)), "false", "unavailable withdraws it");
    assertResult(await replica.request(divert("dmuc.a.test", "a.test", ROOM3, "undivert")));
    // Users of other servers are not this server's to vouch for.
    assertForbidden(await ask("mallory@b.test/x", ROOM));
    assert.equal((await ask("rubenro@a.test", ROOM)).attrs.type, "error", "a bare JID is no session");
  });

  it("(d) <relay/> sends the stanza over s2s with the user's from, and does not divert it back", async () => {
    const inner = xml(
      "message",
      { from: user.jid, to: ROOM, type: "groupchat", id: "m1" },
      xml("body", {}, "relayed one"),
      xml("x", { xmlns: "urn:example:extension" }, xml("item", { n: "1" })),
    );
    assertResult(await replica.request(relay("dmuc.a.test", "a.test", inner)));
    const got = await muc.waitFor(withBody("relayed one"), 5_000, "the relayed message over s2s");
    assert.deepEqual(attrsOf(got), { from: user.jid, to: ROOM, type: "groupchat", id: "m1" });
    // The namespace <relay/> lent its content is gone; foreign extensions are kept.
    assert.equal(got.getChild("body")!.attrs.xmlns, undefined);
    const ext = got.getChild("x", "urn:example:extension");
    assert.ok(ext, got.toString());
    assert.equal(ext.getChild("item")?.attrs.n, "1");
    // An explicit jabber:client, and a presence from the bare JID of a user with a session.
    const explicit = xml("message", { xmlns: "jabber:client", from: user.jid, to: ROOM, type: "groupchat" }, xml("body", {}, "relayed two"));
    assertResult(await replica.request(relay("dmuc.a.test", "a.test", explicit)));
    assert.equal((await muc.waitFor(withBody("relayed two"), 5_000, "the second relayed message")).getChild("body")!.attrs.xmlns, undefined);
    assertResult(await replica.request(relay("dmuc.a.test", "a.test", withFrom(message(ROOM, "from bare"), user.bareJid))));
    assert.equal((await muc.waitFor(withBody("from bare"), 5_000, "the message from the bare JID")).attrs.from, user.bareJid);
    assert.deepEqual(replica.inbox(), [], "nothing came back to the replica");
  });

  it("(e) relays with a forged from, or to a local address, are refused", async () => {
    const forged = async (from: string, to = ROOM): Promise<void> =>
      assertForbidden(await replica.request(relay("dmuc.a.test", "a.test", withFrom(message(to, `forged ${from}`), from))));
    await forged("mallory@b.test/x");
    await forged("ghost@a.test/x");
    await forged("ghost@a.test");
    await forged("rubenro@a.test/other-resource");
    await forged("a.test");
    await forged(user.jid, "someone@a.test");
    await forged(user.jid, "dmuc2.a.test");
    // a barrier on the same s2s stream: nothing forged went out before it
    assertResult(await replica.request(relay("dmuc.a.test", "a.test", withFrom(message(ROOM, "after forgeries"), user.jid))));
    await muc.waitFor(withBody("after forgeries"), 5_000, "the barrier message");
    assert.deepEqual(muc.inbox().filter((el) => el.getChildText("body")?.startsWith("forged")), []);
  });

  it("(f) only the replica may ask: another component, a forged from, a client", async () => {
    assertForbidden(await intruder.request(divert("dmuc2.a.test", "a.test", OTHER_ROOM)));
    assertForbidden(await intruder.request(directed("dmuc2.a.test", "a.test", user.jid, ROOM)));
    assertForbidden(await intruder.request(relay("dmuc2.a.test", "a.test", withFrom(message(ROOM, "intruder"), user.jid))));
    // validate_from_addresses = false: the intruder may write the replica's from, which proves nothing
    assertForbidden(await intruder.request(divert("dmuc.a.test", "a.test", OTHER_ROOM)));
    const asClient = await user.request(xml("iq", { type: "set", to: "a.test" }, xml("divert", { xmlns: NS, room: OTHER_ROOM }))).catch((err) => err.stanza as Element);
    assertForbidden(asClient);
    // still not diverted
    await user.send(message(OTHER_ROOM, "still direct"));
    await muc.waitFor(withBody("still direct"), 5_000, "the message to the undiverted room");
    assert.equal(a.readLog().match(/dmuc\.refused/g)!.length >= 5, true, "refusals are logged");
  });

  it("(g) <undivert/> sends the room's stanzas over s2s again", async () => {
    assertResult(await replica.request(divert("dmuc.a.test", "a.test", ROOM, "undivert")));
    await user.send(message(ROOM, "after undivert"));
    assert.equal((await muc.waitFor(withBody("after undivert"), 5_000, "the message after undivert")).attrs.from, user.jid);
    assert.deepEqual(replica.inbox(), []);
  });

  it("(h) a session's unavailable presence on disconnect goes over s2s; a just-gone session may still relay its unavailable", async () => {
    assertResult(await replica.request(divert("dmuc.a.test", "a.test", ROOM)));
    const leaver = await connectClient({ service: a.c2sService, domain: "a.test", username: "leaver", resource: "r" });
    await leaver.send(xml("presence", { to: `${ROOM}/Leaver` }));
    await replica.waitFor(stanza("presence", { from: leaver.jid, to: `${ROOM}/Leaver` }), 5_000, "the leaver's diverted presence");
    await leaver.stop();
    const gone = await muc.waitFor(stanza("presence", { from: leaver.jid, type: "unavailable" }), 5_000, "the unavailable over s2s");
    assert.equal(gone.attrs.to, `${ROOM}/Leaver`);
    // Its unavailable presence may still be relayed for a while; anything else is refused.
    const unavailable = xml("presence", { from: leaver.jid, to: `${ROOM}/Leaver`, type: "unavailable" }, xml("status", {}, "relayed late"));
    assertResult(await replica.request(relay("dmuc.a.test", "a.test", unavailable)));
    await muc.waitFor((el) => el.name === "presence" && el.getChildText("status") === "relayed late", 5_000, "the late unavailable");
    assertForbidden(await replica.request(relay("dmuc.a.test", "a.test", withFrom(message(ROOM, "late"), leaver.jid))));
  });

  it("(i) diversions end with the replica's connection; it diverts again after reconnecting", async () => {
    // ROOM is diverted since (h)
    await user.send(message(ROOM, "before disconnect"));
    await replica.waitFor(withBody("before disconnect"), 5_000, "the diverted message");
    await replica.stop();
    await user.send(message(ROOM, "replica gone"));
    assert.equal((await muc.waitFor(withBody("replica gone"), 5_000, "the message while the replica is gone")).attrs.from, user.jid);
    replica = await RawComponent.connect(a, "dmuc.a.test", secretReplica);
    cleanups.push(() => replica.stop());
    await user.send(message(ROOM, "replica back"));
    await muc.waitFor(withBody("replica back"), 5_000, "the message after the reconnect, before divert");
    assertResult(await replica.request(divert("dmuc.a.test", "a.test", ROOM)));
    await user.send(message(ROOM, "diverted again"));
    await replica.waitFor(withBody("diverted again"), 5_000, "the message diverted again");
    assert.deepEqual(replica.errors, []);
    assert.deepEqual(muc.errors, []);
  });

  it("(j) a module reload keeps the claimed replica and its diversions", async () => {
    const mark = a.logMark();
    const out = execFileSync("prosodyctl", ["--config", a.configFile, "shell", "module", "reload", "dmuc_replica", "a.test"], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.match(out, /Module reloaded on 1 host/);
    await a.waitForLog(/dmuc\.loaded/, 2_000, { from: mark });
    await user.send(message(ROOM, "after reload"));
    await replica.waitFor(withBody("after reload"), 5_000, "the message diverted after the reload");
    assertForbidden(await intruder.request(divert("dmuc2.a.test", "a.test", OTHER_ROOM)));
  });

  it("(k) with acks, each diverted stanza is numbered and kept until taken; what was not taken goes over s2s in the user's name when the replica's connection ends", async () => {
    const ackedDivert = xml("iq", { type: "set", from: "dmuc.a.test", to: "a.test" }, xml("divert", { xmlns: NS, room: ROOM, acks: "true" }));
    assertResult(await replica.request(ackedDivert));
    // A number the user wrote itself does not survive: only the module's.
    await user.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "taken one"), xml("diverted", { xmlns: NS, stream: "forged", seq: "99" })));
    const taken = await replica.waitFor(withBody("taken one"), 5_000, "the first numbered stanza");
    const numbers = taken.getChildren("diverted", NS);
    assert.equal(numbers.length, 1, taken.toString());
    assert.notEqual(numbers[0]!.attrs.stream, "forged");
    assert.ok(taken.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id, "a groupchat message gets an origin-id");
    await replica.send(xml("message", { from: "dmuc.a.test", to: "a.test" }, xml("taken", { xmlns: NS, stream: numbers[0]!.attrs.stream, seq: numbers[0]!.attrs.seq })));
    await user.send(message(ROOM, "never taken"));
    const lostInFlight = await replica.waitFor(withBody("never taken"), 5_000, "the second numbered stanza");
    assert.equal(Number(lostInFlight.getChild("diverted", NS)!.attrs.seq), Number(numbers[0]!.attrs.seq) + 1);
    // A barrier: the module has handled <taken/> once it answers this.
    assert.equal(presentOf(await replica.request(directed("dmuc.a.test", "a.test", user.jid, ROOM))), "true");
    await replica.stop();
    const sentOn = await muc.waitFor(withBody("never taken"), 10_000, "the stanza the replica did not take, over s2s");
    assert.equal(sentOn.attrs.from, user.jid);
    assert.equal(sentOn.getChild("diverted", NS), undefined, "sent on as the user sent it");
    assert.equal(sentOn.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id, lostInFlight.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id, "with the origin-id the replica saw");
    await user.send(message(ROOM, "after the resend"));
    await muc.waitFor(withBody("after the resend"), 5_000, "a barrier over s2s");
    assert.deepEqual(muc.inbox().filter((el) => el.getChildText("body") === "taken one"), [], "what was taken is not sent again");
    replica = await RawComponent.connect(a, "dmuc.a.test", secretReplica);
    cleanups.push(() => replica.stop());
  });

  it("(l) what a session got straight from a room while its replica was down is not delivered again by the restarted replica's catch-up", async () => {
    assertResult(await replica.request(xml("iq", { type: "set", from: "dmuc.a.test", to: "a.test" }, xml("divert", { xmlns: NS, room: ROOM, acks: "true" }))));
    await replica.stop();
    const roomMessage = (from: string, body: string, id: string, to: string, delayed = false) =>
      xml(
        "message",
        { from, to, type: "groupchat" },
        xml("body", {}, body),
        xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: ROOM, id }),
        delayed ? xml("delay", { xmlns: "urn:xmpp:delay", from: ROOM, stamp: new Date().toISOString() }) : null,
      );
    // The primary serves the user directly meanwhile.
    await muc.send(roomMessage(`${ROOM}/Wumpus`, "served directly", "sid-direct", user.jid));
    await user.waitFor(withBody("served directly"), 10_000, "the direct copy over s2s");
    replica = await RawComponent.connect(a, "dmuc.a.test", secretReplica);
    cleanups.push(() => replica.stop());
    assertResult(await replica.request(xml("iq", { type: "set", from: "dmuc.a.test", to: "a.test" }, xml("divert", { xmlns: NS, room: ROOM, acks: "true" }))));
    // The restarted replica's catch-up: the message the user has is dropped, the one it lacks delivered.
    await replica.send(roomMessage(`${ROOM}/Wumpus`, "served directly", "sid-direct", user.jid, true));
    await replica.send(roomMessage(`${ROOM}/Wumpus`, "missed", "sid-missed", user.jid, true));
    await user.waitFor(withBody("missed"), 5_000, "the catch-up the user lacked");
    // One component stream to one user, in order: a second copy would have arrived before "missed".
    assert.deepEqual(user.inbox().filter(withBody("served directly")), [], "no second copy");
  });
});

describe("mod_dmuc_replica with a pinned dmuc_replica", () => {
  let server: ProsodyServer;
  let pinned: RawComponent;
  let other: RawComponent;
  let user: TestClient;
  const secretPinned = randomSecret();
  const secretOther = randomSecret();

  before(async () => {
    server = await startProsody({
      extraModules: ["dmuc_replica"],
      pluginPaths: [PLUGIN_DIR],
      extraConfig: 'dmuc_replica = "dmuc.localhost"',
      components: [
        { domain: "dmuc.localhost", secret: secretPinned, validateFromAddresses: false },
        { domain: "first.localhost", secret: secretOther, validateFromAddresses: false },
      ],
    });
    other = await RawComponent.connect(server, "first.localhost", secretOther);
    pinned = await RawComponent.connect(server, "dmuc.localhost", secretPinned);
    user = await connectClient({ service: server.c2sService, domain: "localhost", username: "alice", resource: "home" });
  });
  after(async () => {
    await user?.stop().catch(() => undefined);
    await other?.stop();
    await pinned?.stop();
    await server?.stop();
  });

  it("(f) refuses a component that asks first, and answers the pinned one", async () => {
    const room = "room@conference.example.test";
    assertForbidden(await other.request(divert("first.localhost", "localhost", room)));
    assertForbidden(await other.request(directed("first.localhost", "localhost", user.jid, room)));
    assert.equal(presentOf(await pinned.request(directed("dmuc.localhost", "localhost", user.jid, room))), "false");
    assertResult(await pinned.request(divert("dmuc.localhost", "localhost", room)));
    await server.waitForLog(/dmuc\.refused .*first\.localhost is not the replica \(dmuc_replica = dmuc\.localhost\)/, 2_000);
    // bad requests
    const bad = await pinned.request(divert("dmuc.localhost", "localhost", "not a room"));
    assert.equal(errorCondition(bad), "bad-request");
    const local = await pinned.request(divert("dmuc.localhost", "localhost", "room@first.localhost"));
    assert.equal(errorCondition(local), "not-acceptable");
    // route/remote fires even without mod_s2s: the diversion works on a server without federation
    await user.send(message(room, "to the pinned replica"));
    const got = await pinned.waitFor(withBody("to the pinned replica"), 5_000, "the diverted message");
    assert.equal(got.attrs.from, user.jid);
    assert.deepEqual(other.inbox(), []);
  });
});
