// Property-based fuzzing of the pure core (issue 15): sequences of hostile stanzas (random JIDs, nicks,
// data forms, IQ payloads, error stanzas, deep nesting) mixed with well-formed room traffic, so that
// rooms reach many states, fed to the service at the gateway's default settings. At least 100,000
// stanzas per run. After every stanza:
//   - no exception escapes MucService.handle or tick;
//   - a request gets at most one answer, errors are never answered, and every error is a valid RFC 6120
//     error (a type, one defined condition); hostile input never causes internal-server-error;
//   - nicks are unique (kept in prepared form) and every session belongs to exactly one occupant of its bare JID, a persistent
//     room has an owner, an empty temporary room is gone, no outcast sits in a room;
//   - a refused stanza stores nothing and changes no room.
// On failure fast-check prints the seed and the shrunk sequence (FUZZ_SEED=... reproduces a run).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import xml, { type Element } from "@xmpp/xml";
import { emptyServiceState, MucService, type ServiceState } from "../../src/core/service.js";
import { createPlugins } from "../../plugins/index.js";
import type { Effect } from "../../src/core/effects.js";
import { NS } from "../../src/xmpp/stanza.js";
import { prepareNick } from "../../src/core/room/nick.js";

const DOMAIN = "chat.example";
const ADMIN = "admin@a.example";
const STANZAS_PER_RUN = 200;
const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const ERROR_TYPES = new Set(["auth", "cancel", "continue", "modify", "wait"]);
const CONDITIONS = new Set([
  "bad-request", "conflict", "feature-not-implemented", "forbidden", "gone", "internal-server-error", "item-not-found",
  "jid-malformed", "not-acceptable", "not-allowed", "not-authorized", "policy-violation", "recipient-unavailable", "redirect",
  "registration-required", "remote-server-not-found", "remote-server-timeout", "resource-constraint", "service-unavailable",
  "subscription-required", "undefined-condition", "unexpected-request",
]);

// The gateway's defaults (src/config.ts).
const service = new MucService(
  { domain: DOMAIN, admins: new Set([ADMIN]), name: "Fuzz", localDomain: "example" },
  createPlugins({ maxHistoryMessages: 100, maxBodyChars: 10_000, ratePerSecond: 10, burst: 30 }),
);

// ---------------------------------------------------------------------------------------------------
// Arbitraries: a small world of users, rooms and nicks (so that stanzas meet each other), plus noise.

const hostileText = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.constantFrom("", " ", "\u0000", "\uD800", "a\u200Bb", "ǅ", "ﬁ", "A".repeat(1100), "<&>'\"", "../", "@", "/", "x@y/z"),
);
const users = ["alice@a.example", "bob@a.example", "carol@b.example", "dave@b.example", ADMIN, "a.example"];
const fullJid = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...users), fc.constantFrom("r1", "r2")).map(([u, r]) => `${u}/${r}`) },
  { weight: 1, arbitrary: fc.constantFrom(...users) },
  { weight: 1, arbitrary: hostileText },
);
const roomLocal = fc.oneof({ weight: 8, arbitrary: fc.constantFrom("r1", "r2", "r3") }, { weight: 1, arbitrary: hostileText });
const nick = fc.oneof({ weight: 8, arbitrary: fc.constantFrom("n1", "n2", "n3", "N1", "ｎ1") }, { weight: 1, arbitrary: hostileText });
const address = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(roomLocal, nick).map(([r, n]) => `${r}@${DOMAIN}/${n}`) },
  { weight: 6, arbitrary: roomLocal.map((r) => `${r}@${DOMAIN}`) },
  { weight: 2, arbitrary: fc.constant(DOMAIN) },
  { weight: 1, arbitrary: fc.constantFrom(`r1@other.example`, `${DOMAIN}/x`, "") },
  { weight: 1, arbitrary: hostileText },
);
const jidValue = fc.oneof(fc.constantFrom(...users), fullJid, hostileText);
const idAttr = fc.option(fc.oneof(fc.constantFrom("a", "b"), hostileText), { nil: undefined });

const known = (name: string, xmlns: string) => fc.constant(xml(name, { xmlns }));
const formField = fc.tuple(
  fc.constantFrom(
    "FORM_TYPE", "muc#roomconfig_persistentroom", "muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom", "muc#roomconfig_passwordprotectedroom",
    "muc#roomconfig_roomsecret", "muc#roomconfig_whois", "muc#roomconfig_maxusers", "muc#roomconfig_historylength", "muc#roomconfig_presencebroadcast",
    "muc#roomconfig_allowinvites", "muc#roomconfig_changesubject", "muc#roomconfig_publicroom", "muc#roomconfig_roomname", "muc#roomconfig_allowpm",
    "muc#register_roomnick", "muc#role", "muc#jid", "muc#roomconfig_roomadmins", "muc#roomconfig_roomowners", "x",
  ),
  fc.array(fc.oneof(fc.constantFrom("0", "1", "true", "false", "anyone", "moderators", "participant", "moderator", "visitor", "none", "-1", "20", "99999999999",
    "http://jabber.org/protocol/muc#roomconfig", "http://jabber.org/protocol/muc#register", "http://jabber.org/protocol/muc#request", ...users), hostileText), { maxLength: 3 }),
).map(([v, values]) => xml("field", { var: v }, ...values.map((value) => xml("value", {}, value))));
const form = fc.tuple(fc.constantFrom("submit", "cancel", "form", "result", "bogus"), fc.array(formField, { maxLength: 5 })).map(([type, fields]) => xml("x", { xmlns: NS.DATA_FORMS, type }, ...fields));
const adminItem = fc.record({
  affiliation: fc.option(fc.constantFrom("owner", "admin", "member", "outcast", "none", "bogus"), { nil: undefined }),
  role: fc.option(fc.constantFrom("moderator", "participant", "visitor", "none", "bogus"), { nil: undefined }),
  jid: fc.option(jidValue, { nil: undefined }),
  nick: fc.option(nick, { nil: undefined }),
}).map((attrs) => xml("item", attrs));
const iqPayload = fc.oneof(
  known("query", NS.DISCO_INFO),
  fc.tuple(fc.option(hostileText, { nil: undefined })).map(([node]) => xml("query", { xmlns: NS.DISCO_INFO, node })),
  known("query", NS.DISCO_ITEMS),
  known("ping", NS.PING),
  fc.array(adminItem, { maxLength: 3 }).map((items) => xml("query", { xmlns: NS.MUC_ADMIN }, ...items)),
  fc.option(form, { nil: undefined }).map((x) => xml("query", { xmlns: NS.MUC_OWNER }, x ?? null)),
  fc.tuple(fc.option(jidValue, { nil: undefined }), fc.option(hostileText, { nil: undefined })).map(([jid, reason]) =>
    xml("query", { xmlns: NS.MUC_OWNER }, xml("destroy", { jid }, reason === undefined ? null : xml("reason", {}, reason)))),
  fc.option(form, { nil: undefined }).map((x) => xml("query", { xmlns: NS.REGISTER }, x ?? null)),
  fc.tuple(fc.constantFrom("destroy", "list", "bogus", ""), fc.option(form, { nil: undefined })).map(([node, x]) => xml("command", { xmlns: NS.COMMANDS, node, action: "execute" }, x ?? null)),
  fc.tuple(hostileText, hostileText).map(([name, ns]) => xml(/^[a-z]+$/i.test(name) ? name : "q", { xmlns: ns })),
);

/** A payload nested `depth` levels deep. */
const nested = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 30 }) }, { weight: 1, arbitrary: fc.integer({ min: 200, max: 400 }) }).map((depth) => {
  let el = xml("leaf", {}, "x");
  for (let i = 0; i < depth; i++) el = xml("n", { xmlns: "urn:fuzz" }, el);
  return el;
});
const errorChild = fc.tuple(fc.constantFrom("cancel", "wait", "modify", "auth", "bogus"), fc.constantFrom("gone", "item-not-found", "remote-server-not-found", "bogus"))
  .map(([type, cond]) => xml("error", { type }, xml(cond, { xmlns: NS.STANZAS })));

const presence = fc.tuple(
  fc.constantFrom(undefined, undefined, undefined, "unavailable", "unavailable", "error", "probe", "subscribe", "bogus"),
  fc.boolean(),
  fc.option(fc.record({ password: fc.option(hostileText, { nil: undefined }), maxstanzas: fc.option(fc.constantFrom("0", "5", "-1", "x"), { nil: undefined }) }), { nil: undefined }),
  fc.option(fc.tuple(fc.constantFrom("away", "dnd", "chat", "xa", "bogus"), hostileText), { nil: undefined }),
  fc.option(fc.oneof(nested, errorChild), { nil: undefined }),
).map(([type, join, history, show, extra]) =>
  xml(
    "presence",
    { type },
    join ? xml("x", { xmlns: NS.MUC }, history?.password === undefined ? null : xml("password", {}, history.password), history?.maxstanzas === undefined ? null : xml("history", { maxstanzas: history.maxstanzas })) : null,
    show ? xml("show", {}, show[0]) : null,
    show ? xml("status", {}, show[1]) : null,
    type === "error" ? xml("error", { type: "cancel" }, xml("gone", { xmlns: NS.STANZAS })) : null,
    extra ?? null,
  ),
);
const message = fc.tuple(
  fc.constantFrom("groupchat", "groupchat", "groupchat", "chat", "normal", undefined, "error", "headline", "bogus"),
  fc.array(hostileText, { maxLength: 3 }),
  fc.option(hostileText, { nil: undefined }),
  fc.option(fc.oneof(
    fc.tuple(jidValue, fc.option(hostileText, { nil: undefined })).map(([to, reason]) => xml("x", { xmlns: NS.MUC_USER }, xml("invite", { to }, reason === undefined ? null : xml("reason", {}, reason)))),
    jidValue.map((to) => xml("x", { xmlns: NS.MUC_USER }, xml("decline", { to }))),
    form,
    nested,
    errorChild,
    fc.constant(xml("stanza-id", { xmlns: NS.STANZA_ID, by: "r1@chat.example", id: "forged" })),
  ), { nil: undefined }),
).map(([type, bodies, subject, extra]) =>
  xml("message", { type }, ...bodies.map((b) => xml("body", {}, b)), subject === undefined ? null : xml("subject", {}, subject), extra ?? null));
const iq = fc.tuple(fc.constantFrom("get", "set", "get", "set", "result", "error", "bogus"), fc.array(iqPayload, { minLength: 0, maxLength: 2 }))
  .map(([type, payloads]) => xml("iq", { type }, ...(payloads.length === 0 ? [] : payloads.length === 2 && Math.random() < 0 ? [] : payloads)));

interface Step {
  stanza: Element;
  /** Milliseconds since the previous stanza. */
  advance: number;
  /** Run the service's timers before this stanza. */
  tick: boolean;
}

const step: fc.Arbitrary<Step> = fc.tuple(
  fc.oneof({ weight: 4, arbitrary: presence }, { weight: 4, arbitrary: message }, { weight: 3, arbitrary: iq }, { weight: 1, arbitrary: fc.constant(xml("bogus")) }),
  fullJid,
  address,
  idAttr,
  fc.nat({ max: 3_000 }),
  fc.nat({ max: 30 }),
).map(([stanza, from, to, id, advance, tick]) => {
  stanza.attrs.from = from;
  stanza.attrs.to = to;
  if (id !== undefined) stanza.attrs.id = id;
  return { stanza, advance, tick: tick === 0 };
});

// ---------------------------------------------------------------------------------------------------
// Invariants

function checkAnswers(stanza: Element, effects: Effect[]): void {
  const sends = effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  const answers = sends.filter((s) => s.name === stanza.name && s.attrs.to === stanza.attrs.from && s.attrs.id === stanza.attrs.id && (s.attrs.type === "error" || (stanza.name === "iq" && s.attrs.type === "result")) && s.attrs.from === stanza.attrs.to);
  if (stanza.name === "iq") assert.ok(answers.length <= 1, `an IQ gets at most one answer, got ${answers.length}`);
  if (stanza.attrs.type === "error" || (stanza.name === "iq" && stanza.attrs.type === "result")) assert.equal(answers.length, 0, "errors and results are never answered");
  for (const s of sends.filter((x) => x.attrs.type === "error")) {
    const error = s.getChild("error");
    assert.ok(error, `an error stanza carries <error/>: ${s.toString().slice(0, 300)}`);
    assert.ok(ERROR_TYPES.has(error.attrs.type!), `error type ${error.attrs.type}`);
    const conditions = error.getChildElements().filter((c) => c.attrs.xmlns === NS.STANZAS && c.name !== "text");
    assert.equal(conditions.length, 1, "one defined condition");
    assert.ok(CONDITIONS.has(conditions[0]!.name), `condition ${conditions[0]!.name}`);
    assert.notEqual(conditions[0]!.name, "internal-server-error", `hostile input is no internal error: ${stanza.toString().slice(0, 300)}`);
  }
}

function checkState(state: ServiceState): void {
  for (const [jid, room] of state.rooms) {
    assert.equal(room.jid, jid);
    assert.ok(room.occupants.size > 0 || room.config.persistent, `an empty temporary room is gone: ${jid}`);
    if (room.config.persistent) assert.ok([...room.affiliations.values()].some((a) => a.affiliation === "owner"), `persistent ${jid} has an owner`);
    let sessions = 0;
    for (const [nickName, occupant] of room.occupants) {
      assert.equal(occupant.nick, nickName);
      assert.equal(prepareNick(nickName), nickName, "nicks are kept prepared, so that equal nicks are equal strings");
      assert.ok(occupant.sessions.size > 0, "an occupant has a session");
      assert.notEqual(room.affiliations.get(occupant.bareJid)?.affiliation, "outcast", "no outcast in the room");
      for (const full of occupant.sessions.keys()) {
        sessions++;
        assert.equal(room.sessionNicks.get(full), nickName, "the session maps to its occupant");
        assert.equal(full.split("/")[0], occupant.bareJid, "every session of an occupant is of its bare JID");
      }
    }
    assert.equal(room.sessionNicks.size, sessions, "no session outside the occupants");
  }
}

function isRefusal(stanza: Element, effects: Effect[]): boolean {
  return effects.some((e) => e.kind === "send" && e.stanza.attrs.type === "error" && e.stanza.name === stanza.name && e.stanza.attrs.to === stanza.attrs.from && e.stanza.attrs.id === stanza.attrs.id && e.stanza.attrs.from === stanza.attrs.to);
}

function play(steps: Step[]): void {
  let state = emptyServiceState();
  let now = Date.parse("2026-01-01T00:00:00Z");
  let ids = 0;
  const context = () => ({ now: new Date(now), newId: () => `id${++ids}` });
  for (const [index, { stanza, advance, tick }] of steps.entries()) {
    now += advance;
    try {
    if (tick) {
      const ticked = service.tick(state, context());
      if (ticked.state.rooms !== state.rooms) checkState(ticked.state);
      state = ticked.state;
    }
    const before = state;
    const outcome = service.handle(state, stanza, context());
    checkAnswers(stanza, outcome.effects);
    if (isRefusal(stanza, outcome.effects)) {
      assert.ok(!outcome.effects.some((e) => e.kind === "store"), `a refused stanza stores nothing: ${stanza.toString().slice(0, 300)}`);
      assert.equal(outcome.state.rooms, before.rooms, "a refused stanza changes no room");
    }
    if (outcome.state.rooms !== state.rooms) checkState(outcome.state);
    state = outcome.state;
    } catch (err) {
      throw new Error(`step ${index}: ${(err as Error).message}\n  stanza: ${stanza.toString().slice(0, 600)}`);
    }
  }
}

test(`fuzz: ${RUNS * STANZAS_PER_RUN} hostile stanzas through the pure core keep every invariant`, () => {
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() ^ (Math.random() * 0x7fffffff);
  const steps = fc.array(step, { minLength: STANZAS_PER_RUN, maxLength: STANZAS_PER_RUN }).map((s) => s.map((x) => Object.assign(x, { [fc.toStringMethod]: () => `+${x.advance}ms${x.tick ? " tick" : ""} ${x.stanza.toString().slice(0, 400)}` })));
  fc.assert(fc.property(steps, (s) => play(s)), { seed, numRuns: RUNS, endOnFailure: process.env.FUZZ_NO_SHRINK === "1", verbose: 1, includeErrorInReport: true, interruptAfterTimeLimit: 300_000 });
});
