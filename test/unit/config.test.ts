import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../../src/config.js";

const VALID = {
  DMUC_XMPP_SERVICE: "xmpp://127.0.0.1:5347",
  DMUC_DOMAIN: "conference.example.org",
  DMUC_SECRET: "s3cret",
};

function problemsOf(env: NodeJS.ProcessEnv, file?: string): string[] {
  try {
    loadConfig(env, file);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

test("a valid environment gives typed settings with defaults", () => {
  const config = loadConfig({ ...VALID, DMUC_ADMINS: "admin@example.org, Boss@Example.org", DMUC_DB_PORT: "5433" });
  assert.equal(config.domain, "conference.example.org");
  assert.deepEqual(config.admins, ["admin@example.org", "Boss@Example.org"]);
  assert.equal(config.dbPort, 5433);
  assert.equal(config.localDomain, "example.org");
  assert.equal(config.dataDir, "./data");
  assert.equal(config.logLevel, "info");
  assert.equal(config.databaseUrl, undefined);
});

test("every missing required setting is named in one error", () => {
  const problems = problemsOf({});
  assert.deepEqual(problems.sort(), ["DMUC_DOMAIN is required", "DMUC_SECRET is required", "DMUC_XMPP_SERVICE is required"]);
});

test("bad values are named with what was given", () => {
  const problems = problemsOf({
    ...VALID,
    DMUC_XMPP_SERVICE: "http://x",
    DMUC_ADMINS: "not a jid",
    DMUC_DB_PORT: "70000",
    DMUC_LOG_LEVEL: "loud",
    DATABASE_URL: "mysql://x",
  });
  assert.equal(problems.length, 5, problems.join("\n"));
  assert.ok(problems.some((p) => p.startsWith("DMUC_XMPP_SERVICE must look like xmpp://HOST:PORT") && p.includes('"http://x"')));
  assert.ok(problems.some((p) => p.startsWith("DMUC_ADMINS must be a comma-separated list of bare JIDs")));
  assert.ok(problems.some((p) => p.startsWith("DMUC_DB_PORT must be a port number")));
  assert.ok(problems.some((p) => p.startsWith("DMUC_LOG_LEVEL must be one of debug, info, warn, error")));
  // The database URL may hold a password: it is named but not echoed.
  assert.ok(problems.some((p) => p === "DATABASE_URL must be a postgres:// URL"));
});

test("a domain without a parent needs DMUC_LOCAL_DOMAIN", () => {
  assert.deepEqual(problemsOf({ ...VALID, DMUC_DOMAIN: "localhost" }), ["DMUC_LOCAL_DOMAIN is required when DMUC_DOMAIN has no parent domain"]);
  assert.equal(loadConfig({ ...VALID, DMUC_DOMAIN: "localhost", DMUC_LOCAL_DOMAIN: "example.org" }).localDomain, "example.org");
});

test("a JSON config file is read, and the environment wins over it", () => {
  const dir = mkdtempSync(join(tmpdir(), "dmuc-config-"));
  const file = join(dir, "gateway.json");
  writeFileSync(file, JSON.stringify({ ...VALID, DMUC_ADMINS: ["a@example.org"], DMUC_LOG_LEVEL: "debug" }));
  const config = loadConfig({ DMUC_LOG_LEVEL: "warn" }, file);
  assert.deepEqual(config.admins, ["a@example.org"]);
  assert.equal(config.logLevel, "warn");
  assert.equal(config.secret, "s3cret");
});

test("a config file with unknown keys or bad JSON is reported", () => {
  const dir = mkdtempSync(join(tmpdir(), "dmuc-config-"));
  const unknown = join(dir, "unknown.json");
  writeFileSync(unknown, JSON.stringify({ ...VALID, DMUC_DOMIAN: "typo.example.org" }));
  assert.deepEqual(problemsOf({}, unknown), [`--config ${unknown}: unknown setting DMUC_DOMIAN`]);
  const broken = join(dir, "broken.json");
  writeFileSync(broken, "{ nope");
  const problems = problemsOf(VALID, broken);
  assert.equal(problems.length, 1);
  assert.ok(problems[0]?.startsWith(`--config ${broken}:`));
});

test("input limits: defaults, values from the environment, and a depth that could not be serialised refused", () => {
  const defaults = loadConfig(VALID);
  assert.deepEqual(
    [defaults.maxBodyChars, defaults.maxSubjectChars, defaults.maxStanzaBytes, defaults.maxDepth, defaults.maxChildren],
    [10_000, 1000, 262_144, 32, 1000],
  );
  const set = loadConfig({ ...VALID, DMUC_MAX_SUBJECT_CHARS: "200", DMUC_MAX_STANZA_BYTES: "65536", DMUC_MAX_DEPTH: "64", DMUC_MAX_CHILDREN: "100" });
  assert.deepEqual([set.maxSubjectChars, set.maxStanzaBytes, set.maxDepth, set.maxChildren], [200, 65_536, 64, 100]);
  const problems = problemsOf({ ...VALID, DMUC_MAX_DEPTH: "9000", DMUC_MAX_STANZA_BYTES: "lots" }).sort();
  assert.equal(problems.length, 2);
  assert.equal(problems[0], 'DMUC_MAX_DEPTH must be at most 1000 (got "9000")');
  assert.match(problems[1]!, /^DMUC_MAX_STANZA_BYTES .* \(got "lots"\)$/);
});
