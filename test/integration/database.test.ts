// Integration test of the storage layer against a real PostgreSQL: an embedded server in a temporary
// directory, or, when DATABASE_URL is set, a fresh database created on that server (then the tests of the
// embedded server itself are skipped).
//
//   npx tsc -p . && node --test dist/test/integration/database.test.js
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { QueryFailedError } from "typeorm";
import { AuditEvent, CONSTRAINTS, HistoryMessage, Occupant, Replica, Room, RoomAffiliation } from "../../entities/index.js";
import { defaultConfig, type GatewayConfig } from "../../src/config.js";
import { DatabaseError, openDatabase, runMigrationsOnly, type Database } from "../../src/db/database.js";
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from "../../src/db/embedded-postgres.js";
import { createLogger, type Logger } from "../../src/log.js";

const EXTERNAL_URL = process.env.DATABASE_URL || undefined;
const HAS_PROC = existsSync("/proc/self/cwd");

interface LogEvent {
  level: string;
  event: string;
  [field: string]: unknown;
}

/** A logger that records its events (and prints them when TEST_LOG is set). */
function recordingLogger(): { log: Logger; events: LogEvent[] } {
  const events: LogEvent[] = [];
  const log = createLogger({
    level: "debug",
    json: true,
    sink: {
      write(line: string) {
        events.push(JSON.parse(line) as LogEvent);
        if (process.env.TEST_LOG) process.stderr.write(line);
      },
    },
  });
  return { log, events };
}

function configFor(dataDir: string, databaseUrl?: string): GatewayConfig {
  const config = defaultConfig();
  config.dataDir = dataDir;
  if (databaseUrl) config.databaseUrl = databaseUrl;
  return config;
}

/** A port on 127.0.0.1 that nothing listens on (just freed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

function isUniqueViolation(constraint: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof QueryFailedError, `expected a QueryFailedError, got ${String(err)}`);
    const driverError = (err as QueryFailedError<Error & { code?: string; constraint?: string }>).driverError;
    assert.equal(driverError.code, "23505");
    assert.equal(driverError.constraint, constraint);
    return true;
  };
}

/** A database for the whole file: its own embedded server, or a new database on DATABASE_URL. */
async function provideDatabaseUrl(): Promise<{ url?: string; drop(): Promise<void> }> {
  if (!EXTERNAL_URL) return { drop: async () => undefined };
  const name = `dmuc_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: EXTERNAL_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(EXTERNAL_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: EXTERNAL_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

describe("database", () => {
  let dataDir: string;
  let external: { url?: string; drop(): Promise<void> } | undefined;
  let db: Database | undefined;
  const recorded = recordingLogger();
  const rooms = { first: "", second: "" };

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "dmuc-db-test-"));
    external = await provideDatabaseUrl();
    db = await openDatabase(configFor(dataDir, external.url), recorded.log);
  });

  after(async () => {
    await db?.close();
    await external?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const source = () => {
    assert.ok(db, "database not open");
    return db.dataSource;
  };

  it("applies the migrations on a new database", async () => {
    assert.equal(db?.embedded, EXTERNAL_URL === undefined);
    const migrated = recorded.events.filter((e) => e.event === "db.migrated").map((e) => e.migration);
    assert.deepEqual(migrated, source().migrations.map((m) => m.name));
    assert.match(String(migrated[0]), /^Initial\d+$/);
    const tables = (await source().query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
    )) as { table_name: string }[];
    assert.deepEqual(
      tables.map((t) => t.table_name),
      ["audit_events", "dmuc_link_positions", "dmuc_replica_queue", "history_messages", "occupants", "replicas", "room_affiliations", "room_tombstones", "rooms", "typeorm_migrations"],
    );
  });

  it("stores and reads rows through the repositories", async () => {
    const ds = source();
    const room = await ds.getRepository(Room).save(
      ds.getRepository(Room).create({ jid: "lounge@conference.example.org", role: "primary", config: { name: "Lounge", persistent: true } }),
    );
    assert.equal(typeof room.id, "string");
    rooms.first = room.id;

    await ds.getRepository(RoomAffiliation).save({ roomId: room.id, jid: "alice@example.org", affiliation: "owner", nick: "alice" });
    await ds.getRepository(Occupant).save({
      roomId: room.id,
      nick: "alice",
      realJid: "alice@example.org/phone",
      role: "moderator",
      occupantId: "occ-alice",
      presence: "<presence from='alice@example.org/phone'/>",
    });
    await ds.getRepository(Replica).save({
      roomId: room.id,
      replicaJid: "dmuc.vesa.example",
      servedDomain: "vesa.example",
      state: "active",
      keepaliveSeconds: 60,
    });
    const sentAt = new Date("2024-05-01T12:00:00.123Z");
    await ds.getRepository(HistoryMessage).save({
      roomId: room.id,
      roomJid: room.jid,
      stanzaId: "s-1",
      originId: "o-1",
      occupantId: "occ-alice",
      nick: "alice",
      senderJid: "alice@example.org/phone",
      body: "hello ✓",
      stanza: "<message type='groupchat'><body>hello ✓</body></message>",
      sentAt,
    });
    await ds.getRepository(AuditEvent).save({
      roomJid: room.jid,
      actorJid: "alice@example.org",
      kind: "room.created",
      details: { persistent: true },
    });

    const stored = await ds.getRepository(Room).findOneByOrFail({ jid: "lounge@conference.example.org" });
    assert.deepEqual(stored.config, { name: "Lounge", persistent: true });
    assert.equal(stored.locked, false);
    assert.equal(stored.primaryJid, null);
    assert.ok(stored.createdAt instanceof Date);

    const message = await ds.getRepository(HistoryMessage).findOneByOrFail({ roomId: room.id, stanzaId: "s-1" });
    assert.equal(message.sentAt.toISOString(), sentAt.toISOString());
    assert.equal(message.body, "hello ✓");
    assert.ok(message.storedAt instanceof Date);

    const withRoom = await ds.getRepository(Occupant).findOneOrFail({ where: { roomId: room.id }, relations: { room: true } });
    assert.equal(withRoom.room?.jid, room.jid);
    assert.equal(withRoom.replicaJid, null);

    const audit = await ds.getRepository(AuditEvent).findOneByOrFail({ kind: "room.created" });
    assert.deepEqual(audit.details, { persistent: true });
    assert.ok(audit.at instanceof Date);
  });

  it("rejects duplicates with the named unique constraints", async () => {
    const ds = source();
    await assert.rejects(
      ds.getRepository(Room).insert({ jid: "lounge@conference.example.org", role: "replica", primaryJid: "muc.other.example" }),
      isUniqueViolation(CONSTRAINTS.rooms.jidKey),
    );
    await assert.rejects(
      ds.getRepository(RoomAffiliation).insert({ roomId: rooms.first, jid: "alice@example.org", affiliation: "member" }),
      isUniqueViolation(CONSTRAINTS.roomAffiliations.roomJidKey),
    );
    // A reserved nick belongs to one JID; JIDs without a reserved nick do not collide.
    await assert.rejects(
      ds.getRepository(RoomAffiliation).insert({ roomId: rooms.first, jid: "mallory@example.org", affiliation: "member", nick: "alice" }),
      isUniqueViolation(CONSTRAINTS.roomAffiliations.roomNickKey),
    );
    await ds.getRepository(RoomAffiliation).insert([
      { roomId: rooms.first, jid: "bob@example.org", affiliation: "member" },
      { roomId: rooms.first, jid: "carol@example.org", affiliation: "admin" },
    ]);
    await assert.rejects(
      ds.getRepository(HistoryMessage).insert({ roomId: rooms.first, roomJid: "lounge@conference.example.org", stanzaId: "s-1", nick: "alice", stanza: "<message/>", sentAt: new Date() }),
      isUniqueViolation(CONSTRAINTS.historyMessages.roomStanzaIdKey),
    );
    await assert.rejects(
      ds.getRepository(Occupant).insert({
        roomId: rooms.first,
        nick: "alice2",
        realJid: "alice@example.org/phone",
        role: "participant",
        occupantId: "occ-alice",
        presence: "<presence/>",
      }),
      isUniqueViolation(CONSTRAINTS.occupants.roomRealJidKey),
    );
    // The CHECK constraints keep the enum-like columns to their values.
    await assert.rejects(
      ds.getRepository(RoomAffiliation).insert({ roomId: rooms.first, jid: "dave@example.org", affiliation: "none" as "member" }),
      (err: unknown) => err instanceof QueryFailedError && (err.driverError as { constraint?: string }).constraint === CONSTRAINTS.roomAffiliations.affiliationCheck,
    );
    // The same stanza id in another room is fine.
    const other = await ds.getRepository(Room).save({ jid: "other@conference.example.org", role: "replica", primaryJid: "muc.other.example", locked: true });
    rooms.second = other.id;
    await ds.getRepository(HistoryMessage).insert({ roomId: other.id, roomJid: other.jid, stanzaId: "s-1", nick: "bob", stanza: "<message/>", sentAt: new Date() });
  });

  it("deletes a room's live rows with it, but keeps its history and audit trail under its JID", async () => {
    const ds = source();
    await ds.getRepository(AuditEvent).insert({ roomJid: "lounge@conference.example.org", kind: "room.destroyed" });
    await ds.getRepository(Room).delete({ id: rooms.first });
    for (const entity of [RoomAffiliation, Occupant, Replica, HistoryMessage]) {
      assert.equal(await ds.getRepository(entity).countBy({ roomId: rooms.first }), 0, `${entity.name} rows left`);
    }
    const kept = await ds.getRepository(HistoryMessage).findBy({ roomJid: "lounge@conference.example.org" });
    assert.deepEqual(kept.map((m) => [m.roomId, m.body]), [[null, "hello ✓"]]);
    assert.equal(await ds.getRepository(AuditEvent).countBy({ roomJid: "lounge@conference.example.org" }), 2);
    assert.equal(await ds.getRepository(HistoryMessage).countBy({ roomId: rooms.second }), 1);
  });

  it("keeps the data when the embedded server is stopped and started again", { skip: EXTERNAL_URL ? "DATABASE_URL is set" : false }, async () => {
    await db?.close();
    db = undefined;
    const before = recorded.events.length;
    db = await openDatabase(configFor(dataDir), recorded.log);
    const since = recorded.events.slice(before).map((e) => e.event);
    assert.ok(since.includes("db.embedded.started"));
    assert.ok(!since.includes("db.embedded.initialising"), "initialised again");
    assert.ok(!since.includes("db.migrated"), "migrated again");
    const room = await db.dataSource.getRepository(Room).findOneByOrFail({ id: rooms.second });
    assert.equal(room.jid, "other@conference.example.org");
    assert.equal(room.locked, true);
    assert.equal(await db.dataSource.getRepository(HistoryMessage).countBy({ roomId: rooms.second }), 1);
    assert.equal(await db.dataSource.getRepository(AuditEvent).count(), 2);
  });

  it("migrate applies nothing on an up-to-date database", async () => {
    await db?.close();
    db = undefined;
    assert.deepEqual(await runMigrationsOnly(configFor(dataDir, external?.url), recorded.log), []);
  });
});

describe("database errors", () => {
  it("names the host and port of a database that cannot be reached", async () => {
    const port = await closedPort();
    const { log } = recordingLogger();
    await assert.rejects(openDatabase(configFor("/nonexistent", `postgres://dmuc:secret@127.0.0.1:${port}/dmuc`), log), (err: unknown) => {
      assert.ok(err instanceof DatabaseError);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}/dmuc`));
      assert.match(err.message, /ECONNREFUSED/);
      assert.doesNotMatch(err.message, /secret/);
      return true;
    });
  });
});

describe("embedded server recovery", { skip: EXTERNAL_URL ? "DATABASE_URL is set" : !HAS_PROC ? "needs /proc" : false }, () => {
  let dataDir: string;
  let clusterDir: string;
  let lockPath: string;
  let pidPath: string;
  let serverCommand: string[] = [];
  let server: EmbeddedPostgresServer | undefined;
  const children: ChildProcess[] = [];

  /** A child process that runs until the end of the suite. */
  function bystander(): ChildProcess {
    const child = spawn("sleep", ["600"], { stdio: "ignore" });
    children.push(child);
    return child;
  }

  async function deadPid(): Promise<number> {
    const child = spawn("true", { stdio: "ignore" });
    await new Promise((done) => child.once("exit", done));
    assert.ok(child.pid);
    return child.pid;
  }

  async function marker(url: string): Promise<string> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return ((await client.query("SELECT value FROM marker")).rows[0] as { value: string }).value;
    } finally {
      await client.end();
    }
  }

  async function startAndCheck(log: Logger): Promise<void> {
    server = await startEmbeddedPostgres({ dataDir, log });
    assert.equal(await marker(server.url), "kept");
    await server.stop();
    server = undefined;
  }

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "dmuc-pg-recovery-"));
    clusterDir = join(dataDir, "postgres");
    lockPath = join(dataDir, "postgres.lock");
    pidPath = join(clusterDir, "postmaster.pid");
    server = await startEmbeddedPostgres({ dataDir, log: recordingLogger().log });
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    await client.query("CREATE TABLE marker (value text); INSERT INTO marker VALUES ('kept')");
    await client.end();
    // The command line of the server, to start one later as a killed gateway would have left it.
    const pid = Number((await readFile(pidPath, "utf8")).split("\n")[0]);
    serverCommand = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((arg) => arg !== "");
    await server.stop();
    server = undefined;
  });

  after(async () => {
    await server?.stop();
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("refuses a cluster whose lock names a live gateway", async () => {
    const other = bystander();
    await writeFile(lockPath, JSON.stringify({ pid: other.pid, hostname: hostname() }));
    await assert.rejects(startEmbeddedPostgres({ dataDir, log: recordingLogger().log }), new RegExp(`in use by another gateway \\(pid ${other.pid} `));
    assert.ok(!existsSync(pidPath), "a server was started");
    await unlink(lockPath);
  });

  it("refuses to start the same cluster twice in one process", async () => {
    server = await startEmbeddedPostgres({ dataDir, log: recordingLogger().log });
    await assert.rejects(startEmbeddedPostgres({ dataDir, log: recordingLogger().log }), /already running in this process/);
    await server.stop();
    server = undefined;
  });

  it("starts after a crash (postmaster.pid of a process that is gone)", async () => {
    await writeFile(pidPath, `${await deadPid()}\n${clusterDir}\n`);
    const { log, events } = recordingLogger();
    await startAndCheck(log);
    assert.ok(events.some((e) => e.event === "db.embedded.stale_pid" && e.action === "left for PostgreSQL to remove"));
  });

  it("starts when the PID in postmaster.pid now belongs to another process", async () => {
    await writeFile(pidPath, `${bystander().pid}\n${clusterDir}\n`);
    const { log, events } = recordingLogger();
    await startAndCheck(log);
    assert.ok(events.some((e) => e.event === "db.embedded.stale_pid" && e.action === "removed"));
  });

  it("stops a server orphaned by a killed gateway, then starts its own", async () => {
    // What a gateway killed with SIGKILL leaves: its lock, and the server still running.
    const [binary, ...args] = serverCommand;
    assert.ok(binary);
    const asPostgres = process.getuid?.() === 0 ? { uid: Number(execFileSync("id", ["-u", "postgres"])), gid: Number(execFileSync("id", ["-g", "postgres"])) } : {};
    const orphan = spawn(binary, args, { ...asPostgres, stdio: ["ignore", "ignore", "pipe"] });
    children.push(orphan);
    await new Promise<void>((done, fail) => {
      let output = "";
      orphan.stderr?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("ready to accept connections")) done();
      });
      orphan.once("exit", () => fail(new Error(`server exited: ${output}`)));
    });
    await writeFile(lockPath, JSON.stringify({ pid: await deadPid(), hostname: hostname() }));

    const { log, events } = recordingLogger();
    await startAndCheck(log);
    assert.ok(events.some((e) => e.event === "db.embedded.stale_lock"));
    assert.ok(events.some((e) => e.event === "db.embedded.orphan" && e.pid === orphan.pid));
    assert.ok(events.some((e) => e.event === "db.embedded.orphan_stopped"));
    assert.ok(orphan.exitCode !== null || orphan.signalCode !== null, "the orphan still runs");
  });
});
