import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { emptyServiceState, MucService } from "../../src/core/service.js";
import { createPlugins } from "../../plugins/index.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";

const service = new MucService(
  { domain: "chat.shakespeare.lit", admins: new Set(), name: "Shakespearean Chat Service" },
  createPlugins({ maxHistoryMessages: 50, maxBodyChars: 1000, ratePerSecond: 10, burst: 30 }),
);
const context = { now: new Date("2026-01-01T00:00:00Z"), newId: () => "id-1" };

function sent(stanza: Element): Element[] {
  const { effects } = service.handle(emptyServiceState(), stanza, context);
  return effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
}

test("XEP-0045 §6.1: the service answers disco#info with conference/text and the MUC feature", () => {
  const [reply] = sent(example("0045", "Entity Queries Chat Service for MUC Support via Disco"));
  assert.ok(reply);
  assertMatches(reply, example("0045", "Service Returns Disco Info Result"));
  const features = reply.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
  assert.ok(features.includes("urn:xmpp:ping"));
});

test("XEP-0199: the service answers a ping with an empty result", () => {
  const replies = sent(parseXml(`<iq from='juliet@capulet.lit/balcony' to='chat.shakespeare.lit' id='c2s1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`));
  assert.equal(replies.length, 1);
  assertMatches(replies[0]!, parseXml(`<iq from='chat.shakespeare.lit' to='juliet@capulet.lit/balcony' id='c2s1' type='result'/>`));
  assert.equal(replies[0]!.children.length, 0);
});

test("an IQ the service does not support gets service-unavailable", () => {
  const [reply] = sent(parseXml(`<iq from='a@b.lit/c' to='chat.shakespeare.lit' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>`));
  assertMatches(reply!, parseXml(`<iq type='error' id='v1' to='a@b.lit/c'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
});

test("malformed IQs are bad requests; results and errors are never answered", () => {
  const [noPayload] = sent(parseXml(`<iq from='a@b.lit/c' to='chat.shakespeare.lit' id='x' type='get'/>`));
  assertMatches(noPayload!, parseXml(`<iq type='error' id='x'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  const [badType] = sent(parseXml(`<iq from='a@b.lit/c' to='chat.shakespeare.lit' id='y' type='fetch'><ping xmlns='urn:xmpp:ping'/></iq>`));
  assertMatches(badType!, parseXml(`<iq type='error' id='y'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  assert.deepEqual(sent(parseXml(`<iq from='a@b.lit/c' to='chat.shakespeare.lit' id='z' type='result'/>`)), []);
  assert.deepEqual(sent(parseXml(`<iq from='a@b.lit/c' to='chat.shakespeare.lit' id='z' type='error'><error type='cancel'/></iq>`)), []);
});

test("a disco#info query on an unknown node is item-not-found", () => {
  const [reply] = sent(parseXml(`<iq from='a@b.lit/c' to='chat.shakespeare.lit' id='n' type='get'><query xmlns='http://jabber.org/protocol/disco#info' node='nope'/></iq>`));
  assertMatches(reply!, parseXml(`<iq type='error' id='n'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
});

test("a stanza with a malformed recipient gets jid-malformed", () => {
  const [reply] = sent(parseXml(`<message from='a@b.lit/c' to='ro om@chat.shakespeare.lit' id='m' type='groupchat'><body>x</body></message>`));
  assertMatches(reply!, parseXml(`<message type='error' id='m'><error type='modify'><jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`));
});
