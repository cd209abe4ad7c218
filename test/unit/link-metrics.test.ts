// The DMUC2 link metrics and the health gauges, read from a service state and from the effects and
// stanzas the runner performs (no IO): lag per link, netjoin and split durations, resends.
import { test } from "node:test";
import assert from "node:assert/strict";
import xml from "@xmpp/xml";
import { emptyServiceState, type ServiceState } from "../../src/core/service.js";
import { withLink } from "../../src/core/dmuc/dmuc-state.js";
import { newStream, step, transmitHeader } from "../../src/core/dmuc/link/stream.js";
import { DEFAULT_LINK_TIMERS } from "../../src/core/dmuc/link/channel.js";
import { logEffect } from "../../src/core/effects.js";
import { GatewayMetrics } from "../../src/shell/metrics.js";
import type { EffectRunnerHealth } from "../../src/shell/effect-runner.js";

const ROOM = "wallops@dmuc.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const T0 = Date.parse("2026-12-02T10:00:00Z");

function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** A primary's link to one replica with `sent` broadcasts transmitted at T0 and none acknowledged. */
function stateWithLink(sent: number): ServiceState {
  let stream = newStream<ReturnType<typeof xml>>("s1", T0);
  for (let i = 0; i < sent; i++) stream = step<ReturnType<typeof xml>, never>(stream, { type: "send", item: xml("message") }, T0, DEFAULT_LINK_TIMERS).stream;
  const state = emptyServiceState();
  const link = { replicaJid: REPLICA, domain: "oulubox.test", state: "active" as const, keepaliveSeconds: 30, historyLimit: 20, members: new Set<string>(), lastHeard: T0, lastSent: T0, stream };
  return { ...state, dmuc: withLink(state.dmuc, ROOM, link) };
}

function metrics(state: ServiceState, clock: { now: number }, health: Partial<EffectRunnerHealth> = {}) {
  return new GatewayMetrics({
    state: () => state,
    xmppOnline: () => true,
    health: () => ({ degraded: false, degradedSince: null, queuedEffects: 0, queuedUnits: 0, queueLimit: 10_000, waitLimitMs: 10_000, ...health }),
    databaseAnswers: async () => !health.degraded,
    now: () => clock.now,
  });
}

test("each link's unacknowledged stanzas and the age of the oldest are exported", async () => {
  const clock = { now: T0 + 3_000 };
  const text = await metrics(stateWithLink(2), clock).registry.metrics();
  const labels = `{role="primary",room="${ROOM}",peer="${REPLICA}"}`;
  assert.equal(sample(text, "dmuc_link_unacked_stanzas", labels), 2);
  assert.equal(sample(text, "dmuc_link_oldest_unacked_seconds", labels), 3);
  assert.equal(sample(text, "dmuc_link_ends", '{role="primary",state="active"}'), 1);
  assert.equal(sample(text, "dmuc_link_ends", '{role="replica",state="split"}'), 0);

  const idle = await metrics(stateWithLink(0), clock).registry.metrics();
  assert.equal(sample(idle, "dmuc_link_unacked_stanzas", labels), 0);
  assert.equal(sample(idle, "dmuc_link_oldest_unacked_seconds", labels), 0);
});

test("a link that goes away leaves no stale series", async () => {
  let state = stateWithLink(1);
  const m = new GatewayMetrics({ state: () => state, xmppOnline: () => true, health: () => ({ degraded: false, degradedSince: null, queuedEffects: 0, queuedUnits: 0, queueLimit: 1, waitLimitMs: 10_000 }), databaseAnswers: async () => true });
  assert.match(await m.registry.metrics(), /dmuc_link_unacked_stanzas\{/);
  state = emptyServiceState();
  assert.doesNotMatch(await m.registry.metrics(), /dmuc_link_unacked_stanzas\{/);
});

test("netjoin and split durations are observed per role, from the core's link events", async () => {
  const clock = { now: T0 };
  const m = metrics(emptyServiceState(), clock);
  const at = (ms: number, ...effects: ReturnType<typeof logEffect>[]) => {
    clock.now = T0 + ms;
    m.performed(effects);
  };
  // Primary: split at 0, the replica heard again at 20 s, netjoin sent, merged at 20.5 s.
  at(0, logEffect("warn", "dmuc.link_split", { room: ROOM, replica: REPLICA, reason: "link bounce" }));
  at(20_000, logEffect("info", "dmuc.link_up", { room: ROOM, replica: REPLICA }), logEffect("info", "dmuc.netjoin_sent", { room: ROOM, replica: REPLICA }));
  at(20_500, logEffect("info", "dmuc.link_healed", { room: ROOM, replica: REPLICA }));
  // Replica of another room, restored split by a restart 60 s before T0: healed at 30 s without a link_up seen.
  at(30_000, logEffect("info", "dmuc.link_healed", { room: "other@dmuc.eris.test", splitSince: T0 - 60_000 }));

  const text = await m.registry.metrics();
  assert.equal(sample(text, "dmuc_netjoin_duration_seconds_count", '{role="primary"}'), 1);
  assert.equal(sample(text, "dmuc_netjoin_duration_seconds_sum", '{role="primary"}'), 0.5);
  assert.equal(sample(text, "dmuc_split_duration_seconds_sum", '{role="primary"}'), 20.5);
  assert.equal(sample(text, "dmuc_netjoin_duration_seconds_count", '{role="replica"}'), 1);
  assert.equal(sample(text, "dmuc_netjoin_duration_seconds_sum", '{role="replica"}'), 0);
  assert.equal(sample(text, "dmuc_split_duration_seconds_sum", '{role="replica"}'), 90);
  assert.equal(sample(text, "dmuc_netjoins_total", '{role="primary"}'), 1);
  assert.deepEqual(m.links.lastNetjoin("primary", ROOM, REPLICA), { at: T0 + 20_500, netjoinSeconds: 0.5, splitSeconds: 20.5 });
});

test("a stanza sent again on a link with a number already sent counts as resent", async () => {
  const m = metrics(emptyServiceState(), { now: T0 });
  const stream = newStream<never>("s9", T0);
  const onLink = (seq: number) => xml("message", { to: "x@dmuc.oulubox.test" }, transmitHeader(stream, seq, 0));
  for (const seq of [1, 2, 1, 2, 3]) m.sentStanza(onLink(seq), false);
  m.sentStanza(xml("message", { to: "plain@example.org" }), false);
  assert.equal(sample(await m.registry.metrics(), "dmuc_link_resent_total"), 2);
});

test("the gateway's health is exported: degraded, since when, the write queue, the database", async () => {
  const clock = { now: T0 + 12_000 };
  const text = await metrics(emptyServiceState(), clock, { degraded: true, degradedSince: new Date(T0), queuedEffects: 17 }).registry.metrics();
  assert.equal(sample(text, "dmuc_degraded"), 1);
  assert.equal(sample(text, "dmuc_degraded_seconds"), 12);
  assert.equal(sample(text, "dmuc_write_queue_effects"), 17);
  assert.equal(sample(text, "dmuc_write_queue_limit"), 10_000);
  assert.equal(sample(text, "dmuc_database_up"), 0);
  const healthy = await metrics(emptyServiceState(), clock).registry.metrics();
  assert.equal(sample(healthy, "dmuc_degraded"), 0);
  assert.equal(sample(healthy, "dmuc_database_up"), 1);
});
