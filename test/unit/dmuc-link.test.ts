// The reliable DMUC2 link's state machine (src/core/dmuc/link/): numbering, cumulative acks, resends,
// duplicate and gap handling, detection (bounce at once, 5 s unacknowledged, keepalive), probes with
// backoff, giving up, the primary's setup, and restarts from what was committed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_LINK_TIMERS, durable, restoredLink, type LinkAction, type LinkEvent, type PrimaryLinkEvent, type PrimaryLinkState, type ReplicaLinkState } from "../../src/core/dmuc/link/channel.js";
import { acceptedLink, discoverLink, stepPrimary, stepReplica } from "../../src/core/dmuc/link/roles.js";

const T = DEFAULT_LINK_TIMERS;
type Actions = readonly LinkAction<string, string>[];

/** Drives one replica end through events at given times; collects its actions. */
function replica() {
  let link: ReplicaLinkState<string> = acceptedLink<string>(0);
  return {
    get link() {
      return link;
    },
    at(now: number, event: LinkEvent<string, string>): Actions {
      const step = stepReplica(link, event, now, T);
      link = step.link;
      return step.actions;
    },
  };
}

const heard = (ack: number, carried: { seq: number; item: string } | null = null, probe = false): LinkEvent<string, string> => ({ type: "heard", ack, carried, probe });
const kinds = (actions: Actions) => actions.map((a) => (a.type === "transmit" ? `transmit ${a.seq}` : a.type === "ack" ? `${a.probe ? "probe" : "ack"} ${a.ack}` : a.type === "deliver" ? `deliver ${a.item}` : a.type));

test("stanzas are numbered from 1 and a cumulative ack releases them", () => {
  const end = replica();
  assert.deepEqual(end.at(0, { type: "send", item: "a" }), [{ type: "transmit", seq: 1, ack: 0, item: "a" }]);
  assert.deepEqual(kinds(end.at(10, { type: "send", item: "b" })), ["transmit 2"]);
  assert.deepEqual(kinds(end.at(20, { type: "send", item: "c" })), ["transmit 3"]);
  end.at(30, heard(2));
  assert.deepEqual(end.link.channel.outbox.unacked.map((e) => e.item), ["c"]);
  end.at(40, heard(99));
  assert.equal(end.link.channel.outbox.unacked.length, 0, "an ack beyond what was sent acknowledges what was sent");
  assert.deepEqual(kinds(end.at(50, { type: "send", item: "d" })), ["transmit 4"]);
});

test("the receiver applies in order once, acks late when idle, and at once after a duplicate or a gap", () => {
  const end = replica();
  assert.deepEqual(kinds(end.at(0, heard(0, { seq: 1, item: "a" }))), ["deliver a"]);
  assert.deepEqual(kinds(end.at(100, { type: "tick" })), [], "the ack waits for traffic to ride on");
  assert.deepEqual(kinds(end.at(600, { type: "tick" })), ["ack 1"], "idle: an ack of its own after ackDelayMs");
  assert.deepEqual(kinds(end.at(700, heard(0, { seq: 1, item: "a" }))), ["ack 1"], "a duplicate is dropped and acknowledged again");
  assert.deepEqual(kinds(end.at(800, heard(0, { seq: 3, item: "c" }))), ["ack 1"], "a gap: dropped, and the sender told where we are");
  assert.deepEqual(kinds(end.at(900, heard(0, { seq: 2, item: "b" }))), ["deliver b"]);
  assert.deepEqual(kinds(end.at(950, { type: "send", item: "x" })), ["transmit 1"]);
  const sent = end.at(960, { type: "send", item: "y" })[0];
  assert.equal(sent?.type === "transmit" && sent.ack, 2, "the ack rides on our own traffic");
  assert.deepEqual(kinds(end.at(2_000, heard(2, null))), [], "nothing owed any more");
});

test("a bounce splits the link at once; what is sent meanwhile is held and goes out in order at the heal", () => {
  const end = replica();
  end.at(0, { type: "send", item: "a" });
  assert.deepEqual(kinds(end.at(50, { type: "bounced" })), ["split"]);
  assert.equal(end.link.kind, "split");
  assert.deepEqual(kinds(end.at(60, { type: "send", item: "b" })), [], "held, not sent into the split");
  assert.deepEqual(kinds(end.at(70, { type: "bounced" })), [], "further bounces change nothing");
  assert.deepEqual(kinds(end.at(5_050, { type: "tick" })), ["probe 0"]);
  assert.deepEqual(kinds(end.at(5_200, heard(0, null))), ["healed", "transmit 1", "transmit 2"]);
  assert.equal(end.link.kind, "active");
});

test("unacknowledged: resent after 2 s, split after 5 s from the first transmission", () => {
  const end = replica();
  end.at(0, { type: "send", item: "a" });
  end.at(1_000, { type: "send", item: "b" });
  assert.deepEqual(kinds(end.at(1_999, { type: "tick" })), []);
  assert.deepEqual(kinds(end.at(2_000, { type: "tick" })), ["transmit 1", "transmit 2"]);
  assert.equal(end.link.kind, "suspect");
  assert.deepEqual(kinds(end.at(4_999, { type: "tick" })), []);
  assert.deepEqual(end.at(5_000, { type: "tick" }), [{ type: "split", reason: "unacknowledged" }]);
});

test("a suspect link that gets its acks is active again", () => {
  const end = replica();
  end.at(0, { type: "send", item: "a" });
  end.at(2_000, { type: "tick" });
  assert.equal(end.link.kind, "suspect");
  end.at(2_100, heard(1));
  assert.equal(end.link.kind, "active");
  assert.deepEqual(kinds(end.at(6_000, { type: "tick" })), []);
});

test("an idle link is probed after the keepalive interval; an unanswered probe splits it", () => {
  const end = replica();
  assert.deepEqual(kinds(end.at(29_000, { type: "tick" })), []);
  assert.deepEqual(kinds(end.at(30_000, { type: "tick" })), ["probe 0"]);
  assert.deepEqual(kinds(end.at(34_000, { type: "tick" })), []);
  assert.deepEqual(end.at(35_000, { type: "tick" }), [{ type: "split", reason: "keepalive" }]);
  const other = replica();
  other.at(30_000, { type: "tick" });
  other.at(30_100, heard(0));
  assert.deepEqual(kinds(other.at(35_000, { type: "tick" })), [], "answered: no split");
  assert.equal(other.link.kind, "active");
  assert.deepEqual(kinds(other.at(30_000, heard(0, null, true))), ["ack 0"], "a probe from the other side is answered at once");
});

test("a split link is probed with backoff, and abandoned after maxProbes", () => {
  const end = replica();
  end.at(0, { type: "bounced" });
  const probes: number[] = [];
  let now = 0;
  while (end.link.kind === "split" && now < 24 * 3_600_000) {
    now += 1_000;
    const actions = end.at(now, { type: "tick" });
    if (actions.some((a) => a.type === "ack" && a.probe)) probes.push(now);
  }
  assert.deepEqual(probes.slice(0, 4), [5_000, 15_000, 35_000, 75_000]);
  assert.ok(probes.slice(-3).every((p, i, all) => i === 0 || p - all[i - 1]! === T.probeMaxMs), "intervals stop growing at probeMaxMs");
  assert.equal(probes.length, T.maxProbes);
  assert.equal(end.link.kind, "abandoned");
  assert.deepEqual(kinds(end.at(now + 1, heard(0))), [], "abandoned is final");
});

test("the primary holds stanzas while it discovers and links, sends them when accepted, gives up when refused", () => {
  let link: PrimaryLinkState<string> = discoverLink<string>(0);
  const at = (now: number, event: PrimaryLinkEvent<string, string>) => {
    const step = stepPrimary(link, event, now, T);
    link = step.link;
    return kinds(step.actions);
  };
  assert.deepEqual(at(0, { type: "send", item: "enter A" }), []);
  assert.deepEqual(at(10, { type: "accepted" }), [], "no answer to a question not asked");
  assert.deepEqual(at(20, { type: "discovered" }), ["request"]);
  assert.deepEqual(at(30, { type: "send", item: "enter B" }), []);
  assert.deepEqual(at(40, heard(0, { seq: 1, item: "x" })), [], "nothing is taken from a replica before it accepted");
  assert.deepEqual(at(50, { type: "accepted" }), ["transmit 1", "transmit 2"]);
  assert.equal(link.kind, "active");

  link = discoverLink<string>(0);
  at(0, { type: "discovered" });
  assert.deepEqual(at(100, { type: "refused" }), ["abandoned"]);
  link = discoverLink<string>(0);
  at(0, { type: "discovered" });
  assert.deepEqual(at(4_999, { type: "tick" }), []);
  assert.deepEqual(at(5_000, { type: "tick" }), ["abandoned"]);
  assert.equal(link.kind === "abandoned" && link.reason, "no answer");
});

test("a restarted end keeps its numbers, probes at once, and resends what was not acknowledged", () => {
  const end = replica();
  end.at(0, heard(0, { seq: 1, item: "a" }));
  end.at(10, { type: "send", item: "x" });
  end.at(20, { type: "send", item: "y" });
  end.at(30, heard(1));
  let link: ReplicaLinkState<string> = restoredLink(durable(end.link.channel), 1_000);
  const step = (now: number, event: LinkEvent<string, string>) => {
    const s = stepReplica(link, event, now, T);
    link = s.link;
    return kinds(s.actions);
  };
  assert.deepEqual(step(1_000, { type: "tick" }), ["probe 1"], "it says at once how far it got");
  assert.deepEqual(step(1_100, heard(1, { seq: 2, item: "b" })), ["healed", "deliver b", "transmit 2"]);
  assert.deepEqual(step(1_200, heard(0, { seq: 1, item: "a" })), ["ack 2"], "what was applied before the restart is not applied again");
});

test("streams: a new stream of the other side is followed from its 1; an old one never again; a restarted end takes what comes", async () => {
  const { heard, newStream } = await import("../../src/core/dmuc/link/stream.js");
  let end: import("../../src/core/dmuc/link/stream.js").LinkStream<string> = { ...newStream<string>("mine", 0), lostPlace: true };
  const carry = (stream: string, seq: number) => {
    const result = heard<string, string>(end, { stream, seq, probe: false }, `${stream}${seq}`);
    end = result.stream;
    const event = result.event;
    return event.type === "heard" && event.carried ? event.carried.seq : null;
  };
  assert.equal(carry("A", 5), 5, "following nothing (restarted): the first stanza seen starts the stream");
  assert.equal(end.end.channel.inbox.applied, 4);
  assert.equal(carry("B", 3), null, "another stream in the middle: not taken");
  assert.equal(carry("B", 1), 1, "the other side's new stream, from its start");
  assert.equal(end.peer, "B");
  assert.equal(carry("A", 1), null, "a late stanza of a stream we left");
  const acked = heard<string, string>(end, { ack: 3, acked: "other", probe: false }, null).event;
  assert.equal(acked.type === "heard" && acked.ack, 0, "an ack of another stream of ours acknowledges nothing");
});

test("streams: a new link's end follows the other side only from its 1 (the whole-core simulation lost a first broadcast)", async () => {
  const { heard, newStream } = await import("../../src/core/dmuc/link/stream.js");
  const fresh = newStream<string>("mine", 0);
  // The primary's first broadcast on a new link is lost; its second arrives first.
  const second = heard<string, string>(fresh, { stream: "P", seq: 2, probe: false }, "P2");
  assert.equal(second.event.type === "heard" && second.event.carried, null, "not applied, so not acknowledged: the primary resends 1 and 2");
  assert.equal(second.stream.peer, null);
  const first = heard<string, string>(second.stream, { stream: "P", seq: 1, probe: false }, "P1");
  assert.equal(first.event.type === "heard" && first.event.carried?.seq, 1);
  assert.equal(first.stream.peer, "P");
});
