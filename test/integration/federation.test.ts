// Self-test of test/support/federation.ts: real Prosody servers federated over plaintext s2s with
// dialback on their own loopback addresses, the s2s counter and netsplit fixture modules, and the
// gateway as a component reached over s2s.
//
//   npx tsc -p . && node --test dist/test/integration/federation.test.js
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import { stanza, type TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";

const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
const chat = (to: string, body: string): Element => xml("message", { to, type: "chat" }, xml("body", {}, body));

/** The command lines of every running prosody process (pgrep -af prosody). */
function prosodyProcesses(): string[] {
  try {
    return execFileSync("pgrep", ["-af", "prosody"], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** Receives `count` chat messages from `from`, in order, and returns their bodies. */
async function receive(client: TestClient, from: string, count: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) bodies.push((await client.waitFor(stanza("message", { from, type: "chat" }), 10_000)).getChildText("body") ?? "");
  return bodies;
}

describe("federation of two Prosody servers without gateways", () => {
  let fed: Federation;
  let configs: string[];
  let alice: TestClient;
  let bob: TestClient;

  before(async () => {
    const t0 = Date.now();
    fed = await startFederation({ servers: [{ name: "avalon", gateway: false }, { name: "oulubox", gateway: false }] });
    process.stderr.write(`[federation.test] two servers up in ${Date.now() - t0} ms\n`);
    configs = fed.servers.map((s) => s.prosody.configFile);
    alice = await fed.connect("alice", "avalon");
    bob = await fed.connect("bob", "oulubox");
  });
  after(() => fed?.stop());

  it("gives each server its own address and domain", () => {
    const [avalon, oulubox] = [fed.server("avalon"), fed.server("oulubox")];
    assert.equal(avalon.domain, "avalon.test");
    assert.equal(oulubox.domain, "oulubox.test");
    assert.equal(avalon.componentDomain, undefined);
    assert.equal(avalon.gateway, undefined);
    assert.notEqual(avalon.address, oulubox.address);
    assert.match(avalon.address, /^127\.\d+\.\d+\.2$/);
    assert.equal(avalon.prosody.s2sPort, 5269);
    assert.equal(alice.jid, "alice@avalon.test/test");
    assert.equal(bob.jid, "bob@oulubox.test/test");
  });

  it("delivers messages both ways over s2s and counts each one once, also those queued during dialback", async () => {
    await fed.resetS2sCounts();
    // No s2s link exists yet: these wait in mod_s2s's queue while the link and dialback are set up.
    const n = 5;
    const t0 = Date.now();
    for (let i = 1; i <= n; i++) await alice.send(chat(bob.jid, `to bob ${i}`));
    assert.deepEqual(await receive(bob, alice.jid, n), [1, 2, 3, 4, 5].map((i) => `to bob ${i}`));
    process.stderr.write(`[federation.test] first s2s delivery (with dialback) in ${Date.now() - t0} ms\n`);
    for (let i = 1; i <= 2; i++) await bob.send(chat(alice.jid, `to alice ${i}`));
    assert.deepEqual(await receive(alice, bob.jid, 2), ["to alice 1", "to alice 2"]);

    let counts = await fed.s2sCounts();
    assert.deepEqual(
      { ...counts.between("avalon.test", "oulubox.test"), bytes: 0 },
      // oulubox asked avalon (db:verify) whether avalon's dialback key is genuine, and the other way round
      { message: n, presence: 0, iq: 0, other: 0, stanzas: n, dialback: 1, bytes: 0 },
    );
    assert.ok(counts.between("avalon.test", "oulubox.test").bytes > n * 50);
    assert.equal(counts.between("oulubox.test", "avalon.test").message, 2);
    assert.equal(counts.sum().stanzas, n + 2, JSON.stringify(counts.pairs));

    // over the established link, after a reset
    await fed.resetS2sCounts();
    assert.deepEqual((await fed.s2sCounts()).pairs, []);
    const m = 7;
    for (let i = 1; i <= m; i++) await alice.send(chat(bob.jid, `again ${i}`));
    assert.equal((await receive(bob, alice.jid, m)).length, m);
    counts = await fed.s2sCounts();
    assert.equal(counts.between("avalon.test", "oulubox.test").message, m);
    assert.equal(counts.sum({ from: "oulubox.test" }).stanzas, 0);
    assert.equal(counts.sum().stanzas, m);
    assert.deepEqual(await alice.drain(), []);
    assert.deepEqual(await bob.drain(), []);
  });

  it("cuts a server off and reconnects it (stopS2s/startS2s)", async () => {
    await fed.stopS2s("avalon");
    await fed.resetS2sCounts();
    // avalon's own user: bounced by avalon itself
    await alice.send(chat(bob.jid, "during the split"));
    const bounced = await alice.waitFor(stanza("message", { from: bob.jid, type: "error" }), 10_000);
    assert.ok(bounced.getChild("error")?.getChild("remote-server-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas"), bounced.toString());
    // the other side: avalon's port refuses connections, oulubox bounces
    await bob.send(chat(alice.jid, "during the split"));
    const refused = await bob.waitFor(stanza("message", { from: alice.jid, type: "error" }), 15_000);
    assert.ok(refused.getChild("error"), refused.toString());
    assert.equal((await fed.s2sCounts()).between("avalon.test", "oulubox.test").stanzas, 0, "nothing left avalon");
    // users of the cut server are still connected
    assert.equal((await alice.request(xml("iq", { type: "get", to: "avalon.test" }, xml("ping", { xmlns: "urn:xmpp:ping" })))).attrs.type, "result");

    await fed.startS2s("avalon");
    await alice.send(chat(bob.jid, "after the split"));
    assert.deepEqual(await receive(bob, alice.jid, 1), ["after the split"]);
    await bob.send(chat(alice.jid, "after the split"));
    assert.deepEqual(await receive(alice, bob.jid, 1), ["after the split"]);
    assert.deepEqual(await alice.drain(), []);
    assert.deepEqual(await bob.drain(), []);
  });

  it("stops everything, and stop() is idempotent", async () => {
    const pids = fed.servers.map((s) => s.prosody.pid);
    await fed.stop();
    await fed.stop();
    const ours = prosodyProcesses().filter((line) => configs.some((c) => line.includes(c)));
    assert.deepEqual(ours, []);
    for (const pid of pids) assert.throws(() => process.kill(pid!, 0), /ESRCH/);
  });
});

describe("federation with a gateway on one server", () => {
  let fed: Federation;

  before(async () => {
    const t0 = Date.now();
    fed = await startFederation({
      servers: [
        { name: "avalon", gateway: true },
        { name: "oulubox", gateway: false },
      ],
    });
    process.stderr.write(`[federation.test] two servers and a gateway up in ${Date.now() - t0} ms\n`);
  });
  after(() => fed?.stop());

  it("connects the gateway, and a user of the other server reaches it over s2s (disco#info)", async () => {
    const avalon = fed.server("avalon");
    assert.equal(avalon.componentDomain, "dmuc.avalon.test");
    assert.ok(avalon.gateway && avalon.db && avalon.env);
    assert.equal(avalon.env.DMUC_DOMAIN, "dmuc.avalon.test");
    assert.equal(avalon.env.DMUC_LOCAL_DOMAIN, "avalon.test");
    assert.match(avalon.prosody.readLog(), /External component successfully authenticated/);
    if (avalon.dmucModule) assert.doesNotMatch(avalon.prosody.readLog(), /Unable to load module|Error initializing module/);

    const carol = await fed.connect("carol", "oulubox");
    await fed.resetS2sCounts();
    const info = await carol.request(xml("iq", { type: "get", to: "dmuc.avalon.test" }, xml("query", { xmlns: NS_DISCO_INFO })), 10_000);
    assert.equal(info.attrs.from, "dmuc.avalon.test");
    const identities = info.getChild("query", NS_DISCO_INFO)!.getChildren("identity").map((i) => `${i.attrs.category}/${i.attrs.type}`);
    assert.ok(identities.includes("conference/text"), identities.join(", "));

    // the reply left avalon from the component's domain
    const counts = await fed.s2sCounts();
    assert.equal(counts.between("oulubox.test", "dmuc.avalon.test").iq, 1);
    assert.equal(counts.between("dmuc.avalon.test", "oulubox.test").iq, 1);
    assert.equal(counts.sum().stanzas, 2, JSON.stringify(counts.pairs));
    assert.equal(counts.sum().dialback, 2, "one dialback verification per link");
  });

  it("stops the gateway, Prosody servers and database", async () => {
    const configs = fed.servers.map((s) => s.prosody.configFile);
    const gateway = fed.server("avalon").gateway!;
    await fed.stop();
    assert.notEqual(await gateway.exited, undefined);
    assert.deepEqual(prosodyProcesses().filter((line) => configs.some((c) => line.includes(c))), []);
  });
});

describe("federation startup failure", () => {
  it("stops what was started when a gateway cannot start", async () => {
    const before = new Set(prosodyProcesses());
    await assert.rejects(
      startFederation({ servers: [{ name: "avalon", gateway: true }, { name: "oulubox", gateway: false }], entry: "/nonexistent/gateway.js" }),
      /does not exist/,
    );
    assert.deepEqual(prosodyProcesses().filter((line) => !before.has(line) && line.includes("dmuc-prosody-")), []);
  });
});
