// What a MUC client does, for the archive, moderation and import tests: enter a room, configure it,
// talk, and page through a room archive with XEP-0313 (the same wire elements as src/xmpp/mam.ts).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import xml, { type Element } from "@xmpp/xml";
import type { TestClient } from "./client.js";
import { buildMamQuery, parseMamFin, parseMamResult, type MamFin, type MamQuery, type MamResult } from "../../src/xmpp/mam.js";

export const NS_MUC = "http://jabber.org/protocol/muc";
export const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
export const NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner";
export const NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const WAIT_MS = 15_000;

export const newId = (): string => randomBytes(6).toString("hex");
const bare = (jid: string | undefined): string => (jid ?? "").split("/")[0]!;

/** Enters `room` as `nick` and reads the join sequence up to the subject; returns the self-presence. */
export async function enterRoom(client: TestClient, room: string, nick: string, history?: Record<string, string>): Promise<Element> {
  await client.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: NS_MUC }, history ? xml("history", history) : null)));
  let self: Element | undefined;
  for (;;) {
    const el = await client.waitFor((s) => bare(s.attrs.from) === room, WAIT_MS, `the join sequence of ${room}/${nick}`);
    if (el.attrs.type === "error") assert.fail(`entering ${room}/${nick} failed: ${el.toString()}`);
    if (el.name === "presence" && el.attrs.from === `${room}/${nick}`) self = el;
    if (el.name === "message" && el.getChild("subject") !== undefined && el.getChild("body") === undefined) {
      assert.ok(self, "the subject came before the self-presence");
      return self;
    }
  }
}

export function roomConfigForm(fields: Record<string, string | string[]>): Element {
  return xml(
    "x",
    { xmlns: "jabber:x:data", type: "submit" },
    xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
    ...Object.entries(fields).map(([name, value]) => xml("field", { var: name }, ...[value].flat().map((v) => xml("value", {}, v)))),
  );
}

export function configureRoom(owner: TestClient, room: string, fields: Record<string, string | string[]> = {}): Promise<Element> {
  return owner.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS_MUC_OWNER }, roomConfigForm(fields))), WAIT_MS);
}

/** Creates a room (the owner enters) with the given configuration. */
export async function createRoom(owner: TestClient, room: string, nick: string, fields: Record<string, string | string[]> = {}): Promise<void> {
  await enterRoom(owner, room, nick);
  await configureRoom(owner, room, fields);
}

/** Sends a groupchat message (with extra children) and returns the room's echo of it. */
export async function say(client: TestClient, room: string, body: string, extra: Element[] = []): Promise<Element> {
  const id = newId();
  await client.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, body), ...extra));
  const echo = await client.waitFor((el) => el.name === "message" && bare(el.attrs.from) === room && el.attrs.id === id, WAIT_MS, `the echo of "${body}"`);
  assert.notEqual(echo.attrs.type, "error", echo.toString());
  return echo;
}

export function stanzaIdOf(el: Element, by: string): string | undefined {
  return el.getChildren("stanza-id", "urn:xmpp:sid:0").find((s) => s.attrs.by === by)?.attrs.id;
}

export interface MamPage {
  results: MamResult[];
  fin: MamFin;
}

/** One XEP-0313 query to `archive`; the results are the messages that came before the IQ result. */
export async function queryArchive(client: TestClient, archive: string, query: Omit<MamQuery, "queryId" | "flipPage"> & { flipPage?: boolean }): Promise<MamPage> {
  const queryId = newId();
  const reply = await client.request(xml("iq", { type: "set", to: archive }, buildMamQuery({ flipPage: false, ...query, queryId })), WAIT_MS);
  const fin = parseMamFin(reply.getChild("fin", "urn:xmpp:mam:2"));
  assert.ok(fin, `no <fin/> in ${reply.toString()}`);
  const results: MamResult[] = [];
  // The result messages came on the same stream before the IQ result: they are in the inbox.
  const ours = (el: Element) => el.name === "message" && parseMamResult(el)?.queryId === queryId;
  while (client.inbox().some(ours)) results.push(parseMamResult(await client.waitFor(ours, 1))!);
  return { results, fin };
}

/** The whole archive, paged forward from the oldest with RSM after (`max` per page). */
export async function readWholeArchive(client: TestClient, archive: string, max: number, query: Omit<MamQuery, "queryId" | "flipPage" | "rsm"> = {}): Promise<{ results: MamResult[]; pages: number; count: number | undefined }> {
  const results: MamResult[] = [];
  let after: string | undefined;
  for (let pages = 1; ; pages++) {
    const page = await queryArchive(client, archive, { ...query, rsm: after === undefined ? { max } : { max, after } });
    results.push(...page.results);
    if (page.fin.complete || page.results.length === 0) return { results, pages, count: page.fin.rsm.count };
    after = page.fin.rsm.last;
  }
}
