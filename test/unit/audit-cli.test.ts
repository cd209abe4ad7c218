// The auditor's command lines and export formats, without a database (src/commands/audit.ts,
// src/commands/export-format.ts, the filter's SQL in src/commands/audit-export.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { parseCommandLine } from "../../src/cli.js";
import { parseAuditCommandLine, parseTime } from "../../src/commands/audit.js";
import { auditQuery } from "../../src/commands/audit-export.js";
import { Pseudonymiser, rowWriter, type Format } from "../../src/commands/export-format.js";
import { parseAnchors } from "../../src/commands/audit-verify.js";

const NOW = new Date("2026-12-02T12:00:00Z");

async function written(format: Format, pages: Record<string, unknown>[][]): Promise<string> {
  let text = "";
  const out = new Writable({
    write(chunk: Buffer, _e, done) {
      text += chunk.toString();
      done();
    },
  });
  const writer = rowWriter(format, out, ["a", "b"]);
  for (const page of pages) await writer.page(page as never);
  await writer.end();
  return text;
}

test("times are ISO 8601 or ages", () => {
  assert.equal(parseTime("24h", NOW)?.toISOString(), "2026-12-01T12:00:00.000Z");
  assert.equal(parseTime("90m", NOW)?.toISOString(), "2026-12-02T10:30:00.000Z");
  assert.equal(parseTime("2026-11-30", NOW)?.toISOString(), "2026-11-30T00:00:00.000Z");
  assert.equal(parseTime("2026-11-30T08:00+01:00", NOW)?.toISOString(), "2026-11-30T07:00:00.000Z");
  assert.equal(parseTime("yesterday", NOW), null);
  assert.equal(parseTime("2026-13-45", NOW), null);
});

test("audit and history command lines are parsed by their own parser and checked", () => {
  assert.equal(parseCommandLine(["audit"]).kind, "audit");
  assert.equal(parseCommandLine(["audit", "verify", "--room", "r@muc.example.org"]).kind, "audit");
  assert.equal(parseCommandLine(["history", "r@muc.example.org", "--since", "7d", "--format", "csv"]).kind, "audit");
  assert.equal(parseCommandLine(["audit", "--help"]).kind, "help");
  const errors: [string[], RegExp][] = [
    [["audit", "--format", "xml"], /--format must be one of table, json, ndjson, csv/],
    [["audit", "--room", "not a jid"], /--room 'not a jid' is not a bare JID/],
    [["audit", "--follow", "--format", "json"], /--follow cannot write one JSON document/],
    [["audit", "verify", "--kind", "message"], /--kind does not go with audit verify/],
    [["audit", "purge"], /unknown audit command 'purge'/],
    [["audit", "--bogus"], /Unknown option '--bogus'/],
    [["history"], /history needs the room's JID/],
    [["history", "r@muc.example.org", "--follow"], /--follow does not go with history/],
  ];
  for (const [argv, message] of errors) {
    const parsed = parseAuditCommandLine(argv, NOW);
    assert.equal(parsed?.kind, "usage-error", argv.join(" "));
    assert.match((parsed as { message: string }).message, message);
  }
});

test("filters become parameters, never SQL text", () => {
  const { sql, params } = auditQuery({ room: "r@muc", jid: "x'; DROP TABLE audit_events; --@evil", kinds: ["message", "occupant.entered"], since: NOW }, "41", 10);
  assert.deepEqual(params, ["r@muc", "x'; DROP TABLE audit_events; --@evil", ["message", "occupant.entered"], NOW, "41"]);
  assert.doesNotMatch(sql, /DROP/);
  assert.match(sql, /room_jid = \$1 AND \(actor_jid = \$2 OR subject_jid = \$2\) AND kind = ANY\(\$3::text\[\]\) AND at >= \$4 AND id > \$5 ORDER BY id LIMIT 10/);
  assert.match(auditQuery({ jid: "a@b/phone", kinds: [] }).sql, /details->>'jid' = \$1/);
});

test("CSV quotes what needs quoting; JSON is one valid document across pages; NDJSON a line a row", async () => {
  const rows = [[{ a: 'say "hi", then\nleave', b: { x: 1 } }], [{ a: "plain", b: null }]];
  assert.equal(await written("csv", rows), `a,b\r\n"say ""hi"", then\nleave","{""x"":1}"\r\nplain,\r\n`);
  assert.deepEqual(JSON.parse(await written("json", rows)), [...rows[0]!, ...rows[1]!]);
  assert.deepEqual(JSON.parse(await written("json", [])), []);
  assert.deepEqual((await written("ndjson", rows)).trim().split("\n").map((l) => JSON.parse(l)), [...rows[0]!, ...rows[1]!]);
  assert.equal(await written("table", []), "no rows\n");
});

test("pseudonyms are stable per user, keep the domain, and leave servers alone", () => {
  const p = new Pseudonymiser("secret");
  const a = p.jid("Alice@example.org/phone")!;
  assert.match(a, /^u-[0-9a-f]{12}@example\.org\/r-[0-9a-f]{12}$/);
  assert.equal(p.jid("alice@example.org")!.split("@")[0], a.split("@")[0]);
  assert.notEqual(p.jid("bob@example.org"), p.jid("alice@example.org"));
  assert.notEqual(new Pseudonymiser("other").jid("alice@example.org"), p.jid("alice@example.org"));
  assert.equal(p.jid("replica.example.net"), "replica.example.net");
  assert.deepEqual(p.details({ jid: "alice@example.org/phone", replicaJid: "r.example.net", nick: "alice", to: "bob@example.org" }), {
    jid: a,
    replicaJid: "r.example.net",
    nick: "alice",
    to: p.jid("bob@example.org"),
  });
  assert.equal(new Pseudonymiser(null).jid("alice@example.org"), "alice@example.org");
});

test("anchors are read back from 'audit head' lines", () => {
  const hash = "ab".repeat(32);
  assert.deepEqual([...parseAnchors(`# heads\nr@muc 12 ${hash} 2026-12-02T07:00:00.000Z\n\n`)], [["r@muc", { seq: 12, hash }]]);
  assert.throws(() => parseAnchors("r@muc twelve"), /anchor line 1/);
});
