// The send path's choices (issue 14): one socket write per turn, multicast only after the server said it
// offers XEP-0033, only for the server's own users, and every copy still delivered once.
import { test } from "node:test";
import assert from "node:assert/strict";
import xml, { type Element } from "@xmpp/xml";
import parse from "@xmpp/xml/lib/parse.js";
import { StanzaWriter, type StanzaSink } from "../../src/shell/delivery/stanza-writer.js";
import { createLogger } from "../../src/log.js";

const NS_ADDRESS = "http://jabber.org/protocol/address";

/** Records what the writer writes, and answers its disco#info with the given features. */
function recordingSink(features: string[]): StanzaSink & { writes: string[] } {
  const writes: string[] = [];
  return {
    writes,
    write: (text) => void writes.push(text),
    request: async (iq) =>
      xml("iq", { type: "result", from: iq.attrs.to, to: iq.attrs.from, id: iq.attrs.id }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }, ...features.map((f) => xml("feature", { var: f })))),
  };
}

const log = createLogger({ level: "error" });
const copyTo = (to: string): Element => xml("message", { from: "room@muc.example.org/ann", to, type: "groupchat" }, xml("body", {}, "hi & bye"));
const wire = (text: string): Element[] => parse(`<w>${text}</w>`).getChildElements();
const turn = () => new Promise((resolve) => setImmediate(resolve));

test("without multicast, a turn's stanzas go in one write, one copy per recipient", async () => {
  const sink = recordingSink([]);
  const writer = new StanzaWriter(sink, "muc.example.org", "example.org", log);
  await writer.discover();
  for (const to of ["a@example.org/1", "b@example.org/2", "c@remote.test/3"]) writer.send(copyTo(to));
  await turn();
  assert.equal(sink.writes.length, 1);
  assert.deepEqual(wire(sink.writes[0]!).map((el) => el.attrs.to), ["a@example.org/1", "b@example.org/2", "c@remote.test/3"]);
});

test("with multicast, the server's users get one stanza with their addresses; the others their own copy", async () => {
  const sink = recordingSink([NS_ADDRESS]);
  const writer = new StanzaWriter(sink, "muc.example.org", "example.org", log);
  await writer.discover();
  for (const to of ["a@example.org/1", "c@remote.test/3", "b@EXAMPLE.org/2", "muc2.example.org"]) writer.send(copyTo(to));
  await turn();
  assert.equal(sink.writes.length, 1);
  const sent = wire(sink.writes[0]!);
  assert.deepEqual(sent.map((el) => el.attrs.to), ["example.org", "c@remote.test/3", "muc2.example.org"]);
  const list = sent[0]!.getChild("addresses", NS_ADDRESS)!.getChildren("address").map((a) => [a.attrs.type, a.attrs.jid]);
  assert.deepEqual(list, [["to", "a@example.org/1"], ["to", "b@EXAMPLE.org/2"]]);
  assert.equal(sent[0]!.getChildText("body"), "hi & bye");
  assert.equal(sent[1]!.getChild("addresses", NS_ADDRESS), undefined);
});

test("a single local recipient, or a stanza unlike the others, is not multicast", async () => {
  const sink = recordingSink([NS_ADDRESS]);
  const writer = new StanzaWriter(sink, "muc.example.org", "example.org", log);
  await writer.discover();
  writer.send(copyTo("a@example.org/1"));
  writer.send(xml("presence", { from: "room@muc.example.org/ann", to: "b@example.org/2" }));
  await turn();
  assert.deepEqual(wire(sink.writes[0]!).map((el) => el.attrs.to), ["a@example.org/1", "b@example.org/2"]);
});

test("after the connection is lost, nothing is multicast until the server says so again", async () => {
  const sink = recordingSink([NS_ADDRESS]);
  const writer = new StanzaWriter(sink, "muc.example.org", "example.org", log);
  await writer.discover();
  writer.reset();
  for (const to of ["a@example.org/1", "b@example.org/2"]) writer.send(copyTo(to));
  await turn();
  assert.deepEqual(wire(sink.writes[0]!).map((el) => el.attrs.to), ["a@example.org/1", "b@example.org/2"]);
});

test("a multicast the server refuses turns multicast off: the next broadcasts go one by one", async () => {
  const sink = recordingSink([NS_ADDRESS]);
  const writer = new StanzaWriter(sink, "muc.example.org", "example.org", log);
  await writer.discover();
  // Not a refusal of ours: an error from a user, or a stanza from the domain that is no error.
  writer.notice(xml("message", { from: "a@example.org/1", to: "room@muc.example.org", type: "error" }));
  writer.notice(xml("message", { from: "example.org", to: "room@muc.example.org" }));
  for (const to of ["a@example.org/1", "b@example.org/2"]) writer.send(copyTo(to));
  await turn();
  assert.deepEqual(wire(sink.writes[0]!).map((el) => el.attrs.to), ["example.org"]);
  writer.notice(xml("message", { from: "example.org", to: "room@muc.example.org/ann", type: "error" }, xml("error", { type: "auth" }, xml("forbidden", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }))));
  for (const to of ["a@example.org/1", "b@example.org/2"]) writer.send(copyTo(to));
  await turn();
  assert.deepEqual(wire(sink.writes[1]!).map((el) => el.attrs.to), ["a@example.org/1", "b@example.org/2"]);
});
