// Self-test of test/support/faults.ts: each fault really happens between real Prosody servers (what
// users see while it lasts), and is really healed. Two servers, a gateway on one (for `kill`).
//
//   npx tsc -p . && node --test dist/test/integration/faults.test.js
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import { IqError, stanza, type TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";
import { injectFault } from "../support/faults.js";

const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const chat = (to: string, body: string): Element => xml("message", { to, type: "chat" }, xml("body", {}, body));
const isChat = (el: Element) => el.name === "message" && el.attrs.type === "chat";

/** The next chat message `client` gets from anyone (waiting for it), its body. */
async function nextChat(client: TestClient): Promise<string> {
  return (await client.waitFor(isChat, 20_000, "a chat message")).getChildText("body") ?? "";
}

/** The state letter of a process in /proc (R, S, T for stopped, ...). */
function processState(pid: number): string {
  return readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0]!;
}

describe("fault injection between two Prosody servers", () => {
  let fed: Federation;
  let alice: TestClient;
  let bob: TestClient;

  before(async () => {
    fed = await startFederation({ servers: [{ name: "avalon", gateway: true }, { name: "oulubox", gateway: false }] });
    alice = await fed.connect("alice", "avalon");
    bob = await fed.connect("bob", "oulubox");
    await alice.send(chat(bob.jid, "hello"));
    assert.equal(await nextChat(bob), "hello");
  });
  after(() => fed?.stop());

  it("bounce: both directions bounce with remote-server-timeout while the links stay up; healed, traffic flows", async () => {
    const fault = await injectFault(fed, { kind: "bounce", server: "oulubox" });
    await alice.send(chat(bob.jid, "lost 1"));
    const bounced = await alice.waitFor(stanza("message", { from: bob.jid, type: "error" }), 10_000);
    assert.ok(bounced.getChild("error")?.getChild("remote-server-timeout", STANZAS), bounced.toString());
    await bob.send(chat(alice.jid, "lost 2"));
    const back = await bob.waitFor(stanza("message", { from: alice.jid, type: "error" }), 10_000);
    assert.ok(back.getChild("error")?.getChild("remote-server-timeout", STANZAS), back.toString());
    await fault.heal();
    await alice.send(chat(bob.jid, "after bounce"));
    assert.equal(await nextChat(bob), "after bounce", "the bounced message never arrives");
    await bob.send(chat(alice.jid, "after bounce"));
    assert.equal(await nextChat(alice), "after bounce");
  });

  it("drop: nothing crosses and nobody is told; healed, traffic flows", async () => {
    const fault = await injectFault(fed, { kind: "drop", server: "oulubox" });
    await alice.send(chat(bob.jid, "swallowed 1"));
    await bob.send(chat(alice.jid, "swallowed 2"));
    // Each server handles its user's stanzas in order: an error would be there before the ping's answer.
    assert.deepEqual((await alice.drain()).map(String), []);
    assert.deepEqual((await bob.drain()).map(String), []);
    await fault.heal();
    await alice.send(chat(bob.jid, "after drop"));
    assert.equal(await nextChat(bob), "after drop", "the swallowed message never arrives");
    await bob.send(chat(alice.jid, "after drop"));
    assert.equal(await nextChat(alice), "after drop");
  });

  it("reset: the s2s connections are reset (a new dialback follows), then traffic flows again", async () => {
    await fed.resetS2sCounts();
    const fault = await injectFault(fed, { kind: "reset", server: "avalon" });
    assert.match(fault.description, /^[1-9]\d* s2s TCP connection/);
    await fault.heal();
    await alice.send(chat(bob.jid, "after reset"));
    assert.equal(await nextChat(bob), "after reset");
    const counts = await fed.s2sCounts();
    assert.ok(counts.sum().dialback >= 1, `a new connection was set up: ${JSON.stringify(counts.pairs)}`);
  });

  it("freeze: the Prosody process is stopped until thawed, and what waited is then delivered", async () => {
    const pid = fed.server("oulubox").prosody.pid!;
    const fault = await injectFault(fed, { kind: "freeze", server: "oulubox" });
    assert.equal(processState(pid), "T");
    await alice.send(chat(bob.jid, "while frozen"));
    await fault.heal();
    assert.notEqual(processState(pid), "T");
    assert.equal(await nextChat(bob), "while frozen");
  });

  it("restart: the Prosody process is gone (its users disconnected) until started again", async () => {
    const oldPid = fed.server("oulubox").prosody.pid!;
    const fault = await injectFault(fed, { kind: "restart", server: "oulubox" });
    await bob.closed;
    assert.throws(() => process.kill(oldPid, 0), /ESRCH/);
    await alice.send(chat(bob.jid, "to a stopped server"));
    const bounced = await alice.waitFor(stanza("message", { from: bob.jid, type: "error" }), 30_000);
    assert.ok(bounced.getChild("error"), bounced.toString());
    await fault.heal();
    bob = await fed.connect("bob", "oulubox");
    await alice.send(chat(bob.jid, "after restart"));
    assert.equal(await nextChat(bob), "after restart");
  });

  it("kill: the gateway dies by SIGKILL (its component is gone) until started again", async () => {
    const before = fed.server("avalon").gateway!;
    const info = () => alice.request(xml("iq", { type: "get", to: "dmuc.avalon.test" }, xml("query", { xmlns: NS_DISCO_INFO })), 30_000);
    assert.equal((await info()).attrs.type, "result");
    const fault = await injectFault(fed, { kind: "kill", server: "avalon" });
    // Prosody answers for a component that is not connected: "Component unavailable"
    assert.deepEqual(await before.exited, { code: null, signal: "SIGKILL" });
    await assert.rejects(info(), (err: unknown) => err instanceof IqError && err.condition === "remote-server-timeout");
    await fault.heal();
    assert.notEqual(fed.server("avalon").gateway, before);
    assert.equal((await info()).attrs.type, "result");
    assert.equal(fed.gatewayRuns("avalon").length, 2);
  });
});
