// The Prosody module plugins/prosody/mod_dmuc_multicast.lua (issue 14) on a real Prosody: the configured
// component multicasts one stanza to the host's users and each gets what a direct copy would have been;
// everyone else, and any address that is not a user of the host, is refused with XEP-0033's errors
// (as ejabberd's mod_multicast answers them) and nothing is delivered.
//
//   npx tsc -p . && node --test dist/test/integration/prosody-multicast.test.js
import assert from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import xml, { type Element } from "@xmpp/xml";
import { connectClient, type TestClient } from "../support/client.js";
import { randomSecret, startProsody, type ProsodyServer } from "../support/prosody.js";
import { TestComponent } from "../support/raw-component.js";
import { canonicalXml } from "../support/canonical.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PLUGIN_DIR = join(ROOT, "plugins", "prosody");
const NS_ADDRESS = "http://jabber.org/protocol/address";
const HOST = "localhost";
const MUC = "muc.localhost";
const OTHER = "other.localhost";

const addresses = (...children: Element[]): Element => xml("addresses", { xmlns: NS_ADDRESS }, ...children);
const to = (jid: string): Element => xml("address", { type: "to", jid });
const errorCondition = (reply: Element): string | undefined =>
  reply.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas")?.name;
/** A stanza as its recipient sees it, without the xml:lang Prosody stamps on stanzas from a stream. */
const seen = (el: Element): string => canonicalXml(el, (name, value, depth) => (name === "xml:lang" && depth === 0 ? undefined : value));
const withBody = (body: string) => (el: Element): boolean => el.getChildText("body") === body;

describe("mod_dmuc_multicast on a real Prosody", () => {
  let prosody: ProsodyServer;
  let muc: TestComponent;
  let other: TestComponent;
  let alice: TestClient;
  let alice2: TestClient;
  let bob: TestClient;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    const secret = randomSecret();
    prosody = await startProsody({
      host: HOST,
      extraModules: ["dmuc_multicast"],
      pluginPaths: [PLUGIN_DIR],
      extraConfig: `dmuc_multicast_component = "${MUC}"`,
      components: [
        { domain: MUC, secret },
        { domain: OTHER, secret },
      ],
    });
    cleanups.push(() => prosody.stop());
    muc = await TestComponent.connect(prosody, MUC, secret);
    cleanups.push(() => muc.stop());
    other = await TestComponent.connect(prosody, OTHER, secret);
    cleanups.push(() => other.stop());
    alice = await connectClient({ service: prosody.c2sService, domain: HOST, username: "alice", resource: "phone" });
    alice2 = await connectClient({ service: prosody.c2sService, domain: HOST, username: "alice", resource: "laptop" });
    bob = await connectClient({ service: prosody.c2sService, domain: HOST, username: "bob", resource: "desk" });
    for (const c of [alice, alice2, bob]) cleanups.push(() => c.stop());
    for (const c of [alice, alice2, bob]) await c.sendPresence();
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  it("is offered in the host's disco#info", async () => {
    const info = await bob.request(xml("iq", { type: "get", to: HOST }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    const features = info.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
    assert.ok(features.includes(NS_ADDRESS), features.join(" "));
  });

  it("delivers to each address exactly what a direct copy from the component would be", async () => {
    const body = `multicast <&'"> é 💬`;
    const stanza = (recipient: string, ...extra: Element[]): Element =>
      xml(
        "message",
        { from: `room@${MUC}/nick`, to: recipient, type: "groupchat", id: "m1" },
        xml("body", {}, body),
        xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: `room@${MUC}`, id: "s&1" }),
        ...extra,
      );
    await muc.send(stanza(HOST, addresses(to(alice.jid), to(alice2.jid), to(bob.jid))));
    const viaMulticast = await Promise.all([alice, alice2, bob].map((c) => c.waitFor(withBody(body), 20_000, "the multicast copy")));
    // The same stanza sent one by one, as the gateway does without the module.
    for (const c of [alice, alice2, bob]) await muc.send(stanza(c.jid));
    const direct = await Promise.all([alice, alice2, bob].map((c) => c.waitFor(withBody(body), 20_000, "the direct copy")));
    assert.deepEqual(viaMulticast.map(seen), direct.map(seen));
    for (const [i, c] of [alice, alice2, bob].entries()) {
      assert.equal(viaMulticast[i]!.attrs.to, c.jid);
      assert.equal(viaMulticast[i]!.getChild("addresses", NS_ADDRESS), undefined);
    }
  });

  it("delivers presence the same way", async () => {
    const presence = (recipient: string, ...extra: Element[]): Element =>
      xml("presence", { from: `room@${MUC}/carol`, to: recipient }, xml("show", {}, "away"), xml("x", { xmlns: "http://jabber.org/protocol/muc#user" }, xml("item", { affiliation: "none", role: "participant" })), ...extra);
    const fromCarol = (el: Element): boolean => el.name === "presence" && el.attrs.from === `room@${MUC}/carol`;
    await muc.send(presence(HOST, addresses(to(alice.jid), to(bob.jid))));
    const viaMulticast = await Promise.all([alice, bob].map((c) => c.waitFor(fromCarol, 20_000, "the multicast presence")));
    for (const c of [alice, bob]) await muc.send(presence(c.jid));
    const direct = await Promise.all([alice, bob].map((c) => c.waitFor(fromCarol, 20_000, "the direct presence")));
    assert.deepEqual(viaMulticast.map(seen), direct.map(seen));
  });

  async function assertRefused(sender: { send(el: Element): Promise<void>; waitFor: TestClient["waitFor"] }, from: string, list: Element, condition: string): Promise<void> {
    const body = `refused ${condition} ${Math.random()}`;
    await sender.send(xml("message", { from, to: HOST, type: "groupchat", id: "r1" }, xml("body", {}, body), list));
    const reply = await sender.waitFor((el) => el.attrs.type === "error" && el.attrs.id === "r1" && el.attrs.from === HOST, 20_000, `the ${condition} refusal`);
    assert.equal(errorCondition(reply), condition, reply.toString());
    // Nothing was delivered: bob's server answers a ping only after everything before it.
    const inbox = await bob.drain();
    assert.ok(!inbox.some(withBody(body)), `bob got the refused stanza: ${inbox.join("\n")}`);
  }

  it("refuses another component (forbidden)", async () => {
    await assertRefused(other, `room@${OTHER}/nick`, addresses(to(bob.jid)), "forbidden");
  });

  it("refuses a user of the server (forbidden)", async () => {
    await assertRefused(alice, alice.jid, addresses(to(bob.jid)), "forbidden");
  });

  it("refuses a remote recipient, a component or the host itself as recipient, delivering to nobody (forbidden)", async () => {
    await assertRefused(muc, `room@${MUC}/nick`, addresses(to(bob.jid), to("someone@elsewhere.example/x")), "forbidden");
    await assertRefused(muc, `room@${MUC}/nick`, addresses(to(bob.jid), to(OTHER)), "forbidden");
    await assertRefused(muc, `room@${MUC}/nick`, addresses(to(bob.jid), to(HOST)), "forbidden");
  });

  it("refuses malformed address lists", async () => {
    await assertRefused(muc, `room@${MUC}/nick`, addresses(), "bad-request");
    await assertRefused(muc, `room@${MUC}/nick`, addresses(xml("address", { type: "to", uri: "mailto:bob@example.org" })), "jid-malformed");
    await assertRefused(muc, `room@${MUC}/nick`, addresses(to(bob.jid), xml("address", { jid: alice.jid })), "bad-request");
  });
});

describe("mod_dmuc_multicast without dmuc_multicast_component", () => {
  let prosody: ProsodyServer;
  let muc: TestComponent;
  let bob: TestClient;

  before(async () => {
    const secret = randomSecret();
    prosody = await startProsody({ host: HOST, extraModules: ["dmuc_multicast"], pluginPaths: [PLUGIN_DIR], components: [{ domain: MUC, secret }] });
    muc = await TestComponent.connect(prosody, MUC, secret);
    bob = await connectClient({ service: prosody.c2sService, domain: HOST, username: "bob", resource: "desk" });
    await bob.sendPresence();
  });

  after(async () => {
    await bob?.stop().catch(() => undefined);
    await muc?.stop();
    await prosody?.stop();
  });

  it("offers no multicast and refuses every multicast", async () => {
    const info = await bob.request(xml("iq", { type: "get", to: HOST }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(!info.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === NS_ADDRESS));
    await muc.send(xml("message", { from: `room@${MUC}/nick`, to: HOST, type: "groupchat", id: "u1" }, xml("body", {}, "unconfigured"), addresses(to(bob.jid))));
    const reply = await muc.waitFor((el) => el.attrs.type === "error" && el.attrs.id === "u1", 20_000, "the refusal");
    assert.equal(errorCondition(reply), "forbidden");
    assert.ok(!(await bob.drain()).some(withBody("unconfigured")));
  });
});
