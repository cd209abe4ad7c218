import { test } from "node:test";
import assert from "node:assert/strict";
import { Hooks } from "../../src/core/hooks.js";

type Events = { "pre-join": { event: { nick: string; seen: string[] }; result: string } };

test("handlers run by priority and the first value ends the chain", () => {
  const hooks = new Hooks<Events>();
  hooks.on("pre-join", (e) => void e.seen.push("low"), -10);
  hooks.on("pre-join", (e) => (e.nick === "banned" ? "forbidden" : void e.seen.push("password")), 20);
  hooks.on("pre-join", (e) => void e.seen.push("first"), 20);
  const ok = { nick: "romeo", seen: [] as string[] };
  assert.equal(hooks.fire("pre-join", ok), undefined);
  assert.deepEqual(ok.seen, ["password", "first", "low"]);
  const vetoed = { nick: "banned", seen: [] as string[] };
  assert.equal(hooks.fire("pre-join", vetoed), "forbidden");
  assert.deepEqual(vetoed.seen, []);
});
