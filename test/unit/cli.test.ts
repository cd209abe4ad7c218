import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCommandLine } from "../../src/cli.js";
import { formatLinks } from "../../src/commands/links.js";

test("commands and options are parsed", () => {
  assert.deepEqual(parseCommandLine(["start"]), { kind: "run", command: "start", name: "start", args: [], options: {} });
  assert.deepEqual(parseCommandLine(["migrate", "--config", "g.json"]), { kind: "run", command: "migrate", name: "migrate", args: [], options: {}, configFile: "g.json" });
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

test("links takes --json; other commands do not", () => {
  assert.deepEqual(parseCommandLine(["links", "--json"]), { kind: "run", command: "links", name: "links", args: [], options: { json: true } });
  assert.equal(parseCommandLine(["start", "--json"]).kind, "usage-error");
});

test("links prints one line a link with its state", () => {
  const text = formatLinks([
    { room: "wallops@dmuc.avalon.test", role: "primary", peer: "dmuc.oulubox.test", domain: "oulubox.test", state: "split", since: new Date("2026-01-01T10:00:00Z"), lastSeen: null, updated: new Date() },
  ]);
  const [header, row] = text.trim().split("\n");
  assert.match(header!, /^ROOM\s+ROLE\s+PEER\s+DOMAIN\s+STATE\s+SPLIT SINCE\s+LAST SEEN$/);
  assert.match(row!, /^wallops@dmuc\.avalon\.test\s+primary\s+dmuc\.oulubox\.test\s+oulubox\.test\s+split\s+2026-01-01T10:00:00Z\s+-$/);
  assert.equal(formatLinks([]), "no DMUC2 links\n");
});

test("rooms commands take their action, ROOM and their own options only", () => {
  assert.deepEqual(parseCommandLine(["rooms", "destroy", "lobby", "--reason", "moving", "--venue", "hall@conference.example.org"]), {
    kind: "run",
    command: "rooms",
    name: "rooms destroy",
    args: ["lobby"],
    options: { reason: "moving", venue: "hall@conference.example.org" },
  });
  const created = parseCommandLine(["rooms", "create", "lobby", "--owner", "a@example.org", "--owner", "b@example.org", "--temporary"]);
  assert.ok(created.kind === "run" && created.options.owner instanceof Array && created.options.owner.length === 2 && created.options.temporary === true);
  for (const [argv, message] of [
    [["rooms"], /'rooms' needs an action \(list, show, create, destroy\)/],
    [["rooms", "drop", "x"], /unknown action 'rooms drop'/],
    [["rooms", "show"], /'rooms show' needs ROOM/],
    [["rooms", "list", "--reason", "x"], /--reason does not go with 'rooms list'/],
    [["backup"], /'backup' needs FILE/],
    [["occupants", "a", "b"], /unexpected argument 'b' after 'occupants'/],
  ] as const) {
    const result = parseCommandLine([...argv]);
    assert.ok(result.kind === "usage-error" && message.test(result.message), `${argv.join(" ")}: ${JSON.stringify(result)}`);
  }
  const help = parseCommandLine(["rooms", "destroy", "--help"]);
  assert.ok(help.kind === "help" && help.text.startsWith("Usage: dmuc-gateway rooms destroy ROOM [--reason TEXT] [--venue JID]"));
});
