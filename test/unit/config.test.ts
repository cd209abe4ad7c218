import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { ConfigError, loadConfig, settingsHelp, settingsTable, SETTINGS } from "../../src/config.js";

/** dist/test/unit -> the repository root */
const ROOT = new URL("../../../", import.meta.url);

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
  assert.ok(problems.some((p) => p.startsWith("DMUC_DB_PORT must be from 1 to 65535")));
  assert.ok(problems.some((p) => p.startsWith("DMUC_LOG_LEVEL must be one of debug, info, warn, error")));
  // The database URL may hold a password: it is named but not echoed.
  assert.ok(problems.some((p) => p === "DATABASE_URL must be a postgres:// URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"));
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
  assert.deepEqual(problemsOf({}, unknown), [`--config ${unknown}: unknown setting DMUC_DOMIAN (the keys are the environment variable names, e.g. DMUC_DOMAIN)`]);
  const broken = join(dir, "broken.json");
  writeFileSync(broken, "{ nope");
  const problems = problemsOf(VALID, broken);
  assert.equal(problems.length, 1);
  assert.ok(problems[0]?.startsWith(`--config ${broken}:`));
});

test("an XMPP service without a port, or with one out of range, is refused with what to write", () => {
  const [noPort] = problemsOf({ ...VALID, DMUC_XMPP_SERVICE: "xmpp://example.org" });
  assert.equal(noPort, `DMUC_XMPP_SERVICE has no port: write xmpp://HOST:PORT with the server's component port (5347 in Prosody's and ejabberd's examples) (got "xmpp://example.org")`);
  assert.deepEqual(problemsOf({ ...VALID, DMUC_XMPP_SERVICE: "xmpp://example.org:99999" }), [
    `DMUC_XMPP_SERVICE has a port out of range: it must be from 1 to 65535 (got "xmpp://example.org:99999")`,
  ]);
  assert.equal(loadConfig({ ...VALID, DMUC_XMPP_SERVICE: "xmpp://example.org:5347" }).xmppService, "xmpp://example.org:5347");
});

test("commands that never connect to XMPP do not ask for its settings", () => {
  assert.equal(loadConfig({ DATABASE_URL: "postgres://u:p@db.example.org/dmuc" }, undefined, "migrate").databaseUrl, "postgres://u:p@db.example.org/dmuc");
  assert.equal(loadConfig({ DMUC_DATA_DIR: "/var/lib/dmuc-gateway" }, undefined, "links").dataDir, "/var/lib/dmuc-gateway");
  // A bad value is still a bad value, whichever command reads the configuration.
  assert.deepEqual(problemsOf({ DMUC_DB_PORT: "0" }).sort(), ["DMUC_DB_PORT must be from 1 to 65535 (got \"0\")", "DMUC_XMPP_SERVICE is required", "DMUC_DOMAIN is required", "DMUC_SECRET is required"].sort());
});

test("secrets are named but never echoed", () => {
  const problems = problemsOf({ ...VALID, DMUC_SECRET: "   " });
  assert.deepEqual(problems, ["DMUC_SECRET must not be empty"]);
});

test("the README's settings table is the one the settings table generates", () => {
  const readme = readFileSync(new URL("README.md", ROOT), "utf8");
  const table = settingsTable();
  assert.ok(readme.includes(table + "\n"), `README.md must hold the settings table exactly as generated:\n\n${table}\n`);
});

test("--help lists every setting with its default", () => {
  const help = settingsHelp();
  for (const spec of Object.values(SETTINGS)) assert.match(help, new RegExp(`^  ${spec.env} `, "m"));
  assert.match(help, /DMUC_MAX_HISTORY_MESSAGES\s.*\(default 100\)/);
});

test("the example configuration file in deploy/ is valid", () => {
  const config = loadConfig({}, new URL("deploy/config.example.json", ROOT).pathname);
  assert.equal(config.domain, "conference.example.org");
  assert.equal(config.maxHistoryMessages, 100);
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
  assert.equal(problems[0], 'DMUC_MAX_DEPTH must be from 4 to 1000 (got "9000")');
  assert.match(problems[1]!, /^DMUC_MAX_STANZA_BYTES .* \(got "lots"\)$/);
});
