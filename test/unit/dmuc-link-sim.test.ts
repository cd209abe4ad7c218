// Deterministic simulation of the reliable DMUC2 link (test/helpers/link-sim.ts): one primary, three
// replicas, random schedules of messages from every server, splits in one or both directions (bounced
// or silently dropped), heals, restarts, over a network that loses, duplicates and reorders. After every
// schedule settles: every message is in every history once, in the primary's order, and every user got
// every message exactly once. fast-check prints the seed and the shrunk schedule of a failure; replay
// one with DMUC_SIM_SEED=<seed> (and DMUC_SIM_PATH=<path>).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { NODES, REPLICAS, Simulation, type Command, type NetworkProfile } from "../helpers/link-sim.js";

const RUNS = Number(process.env.DMUC_SIM_RUNS ?? 10_000);

const node = fc.constantFrom(...NODES);
const replica = fc.constantFrom(...REPLICAS);
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant("say" as const), node, user: fc.constantFrom(0, 1) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("fault" as const), replica, dir: fc.constantFrom("down" as const, "up" as const, "both" as const), mode: fc.constantFrom("drop" as const, "bounce" as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("heal" as const), replica }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("restart" as const), node }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 12_000 }) }) },
);
const profile: fc.Arbitrary<NetworkProfile> = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  lossPerMille: fc.integer({ min: 0, max: 100 }),
  duplicatePerMille: fc.integer({ min: 0, max: 100 }),
  maxDelayMs: fc.integer({ min: 5, max: 3_000 }),
});

function check(commands: readonly Command[], network: NetworkProfile): string[] {
  const sim = new Simulation(network);
  sim.run(commands);
  if (!sim.settle()) return ["did not settle within an hour of simulated time"];
  return sim.violations();
}

test(`${RUNS} random schedules: nothing lost, nothing twice, the same history everywhere`, () => {
  const seed = process.env.DMUC_SIM_SEED === undefined ? undefined : Number(process.env.DMUC_SIM_SEED);
  const path = process.env.DMUC_SIM_PATH;
  fc.assert(
    fc.property(fc.array(command, { maxLength: 40 }), profile, (commands, network) => {
      assert.deepEqual(check(commands, network), []);
    }),
    { numRuns: RUNS, ...(seed !== undefined && { seed }), ...(path !== undefined && { path }) },
  );
});

const calm: NetworkProfile = { seed: 1, lossPerMille: 0, duplicatePerMille: 0, maxDelayMs: 30 };
const say = (node: number, user = 0): Command => ({ t: "say", node, user });
const wait = (ms: number): Command => ({ t: "wait", ms });

// The scenarios of issue 9, as fixed schedules (avalon: the primary, 0; vesa: 1; killrc: 2).
test("a split that bounces: both sides talk one second after the cut, all of it arrives once after the heal", () => {
  const cut: Command[] = [{ t: "fault", replica: 1, dir: "both", mode: "bounce" }, wait(1_000)];
  const talk = [say(2), say(1), say(2), say(1, 1), say(2), say(1)];
  assert.deepEqual(check([...cut, ...talk, wait(20_000), { t: "heal", replica: 1 }], calm), []);
});

test("local continuation: during a split the replica's users see each other's messages at once", () => {
  const sim = new Simulation(calm);
  sim.run([{ t: "fault", replica: 1, dir: "both", mode: "drop" }, say(1), wait(6_000), say(1, 1), wait(100)]);
  const vesa = sim.inboxes.get(1)!;
  assert.equal(vesa[0]!.length, 2, "the message sent before the split was noticed, and the one after");
  assert.deepEqual(vesa[1], vesa[0]);
  assert.equal(sim.inboxes.get(2)![0]!.length, 0, "the other side gets them after the heal");
  assert.ok(sim.settle());
  assert.deepEqual(sim.violations(), []);
});

test("a split that silently drops in both directions, with messages on both sides", () => {
  const schedule: Command[] = [{ t: "fault", replica: 1, dir: "both", mode: "drop" }, say(0), say(1), say(2), wait(8_000), say(1, 1), say(0, 1), wait(30_000), { t: "heal", replica: 1 }];
  assert.deepEqual(check(schedule, calm), []);
});

test("one-way splits, a restart during a split, a lossy reordering network", () => {
  const lossy: NetworkProfile = { seed: 7, lossPerMille: 80, duplicatePerMille: 80, maxDelayMs: 2_000 };
  const schedule: Command[] = [
    { t: "fault", replica: 2, dir: "up", mode: "drop" },
    { t: "fault", replica: 3, dir: "down", mode: "bounce" },
    say(2),
    say(3),
    say(0),
    { t: "restart", node: 2 },
    wait(7_000),
    say(2, 1),
    { t: "restart", node: 0 },
    say(3, 1),
    { t: "heal", replica: 2 },
    wait(3_000),
    say(1),
  ];
  assert.deepEqual(check(schedule, lossy), []);
});
