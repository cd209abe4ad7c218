import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCommandLine } from "../../src/cli.js";

test("commands and options are parsed", () => {
  assert.deepEqual(parseCommandLine(["start"]), { kind: "run", command: "start", configFile: undefined });
  assert.deepEqual(parseCommandLine(["migrate", "--config", "g.json"]), { kind: "run", command: "migrate", configFile: "g.json" });
  assert.deepEqual(parseCommandLine(["--version"]), { kind: "version" });
});

test("every command has its own help", () => {
  for (const command of ["start", "migrate"]) {
    const help = parseCommandLine([command, "--help"]);
    assert.equal(help.kind, "help");
    assert.match(help.kind === "help" ? help.text : "", new RegExp(`^Usage: dmuc-gateway ${command}`));
  }
  const main = parseCommandLine(["--help"]);
  assert.ok(main.kind === "help" && main.text.includes("Commands:"));
});

test("bad command lines are usage errors with one message", () => {
  assert.equal(parseCommandLine([]).kind, "usage-error");
  const unknown = parseCommandLine(["strat"]);
  assert.ok(unknown.kind === "usage-error" && unknown.message.startsWith("unknown command 'strat'"));
  const option = parseCommandLine(["start", "--nope"]);
  assert.ok(option.kind === "usage-error" && option.message.includes("--nope"));
});
