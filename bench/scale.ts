// Benchmark 5 (issue 6): the scale of one gateway process. Memory per room and per occupant with many
// rooms and occupants in the engine (MucService driven in-process with real join presences), the cost
// of one stanza when the service holds that many rooms, and the restart time to restore them all from
// PostgreSQL (rows persisted through RoomStore, restored by src/shell/room-loader.ts loadRooms).
//
// Heap is measured with forced GC (process.memoryUsage().heapUsed after gc()), so the measurement runs
// in a child node process started with --expose-gc: run() spawns this same file with `--scale-child`.
//
// Peer: Prosody's mod_muc cannot be given 100,000 occupants without as many real sessions, so the
// comparison is with the same data as plain JavaScript objects (what the rooms would cost with no
// engine structure, presences kept as strings), and, for the restart, with only fetching the rows
// (the same SELECTs without building rooms): lower bounds, not a rival implementation.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import xml, { type Element } from "@xmpp/xml";
import parse from "@xmpp/xml/lib/parse.js";
import { startTestDatabase } from "../test/support/postgres.js";
import type { BenchOptions, Cell, Report } from "./lib/report.js";
import { RoomTable } from "../src/core/room-table.js";

export const name = "scale";

const SELF = fileURLToPath(import.meta.url);
const CHILD_FLAG = "--scale-child";
const MARK = "SCALE_RESULT ";
const DOMAIN = "muc.bench.test";
const USERS = "users.bench.test";
const MUC = "http://jabber.org/protocol/muc";
const MUC_OWNER = "http://jabber.org/protocol/muc#owner";
const WRITES_PER_COMMIT = 5_000;

interface ChildResult {
  rooms: number;
  perRoom: number;
  occupants: number;
  buildSeconds: number;
  heap: {
    base: number;
    rooms: number; // after every room with its owner
    full: number; // after every occupant
    rssFull: number;
    json: { rooms: number; full: number };
    presencesOnly: number; // the stored presence elements alone, per occupant
    restored: number; // after loadRooms, engine state only
  };
  stanzaMicros: { atOneRoom: number; atAllRooms: number; samples: number };
  presenceBytes: number;
  persist: { seconds: number; writes: number; statements: number; transactions: number };
  restore: { seconds: number; rawSelectSeconds: number; rooms: number; occupants: number; rows: number };
  database: string;
}

// ---------------------------------------------------------------------------------------------------
// The child: does the measuring

async function heapNow(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

function joinPresence(from: string, roomJid: string, nick: string): Element {
  return xml(
    "presence",
    { from, to: `${roomJid}/${nick}` },
    xml("x", { xmlns: MUC }),
    xml("c", { xmlns: "http://jabber.org/protocol/caps", hash: "sha-1", node: "https://conversations.im", ver: randomBytes(20).toString("base64") }),
  );
}

async function child(rooms: number, perRoom: number, databaseUrl: string, databaseKind: string): Promise<ChildResult> {
  const progress = (m: string) => process.stderr.write(`    [scale child] ${m}\n`);
  // Loaded here so that the parent (the bench runner) does not load the engine and TypeORM for nothing.
  const { emptyServiceState, MucService } = await import("../src/core/service.js");
  const { createPlugins } = await import("../plugins/index.js");
  const { randomId } = await import("../src/shell/clock.js");
  type ServiceState = ReturnType<typeof emptyServiceState>;
  type Room = ServiceState["rooms"] extends ReadonlyMap<string, infer R> ? R : never;

  const service = new MucService(
    { domain: DOMAIN, admins: new Set(), name: "bench" },
    createPlugins({ maxHistoryMessages: 100, maxBodyChars: 10_000, ratePerSecond: 10, burst: 30 }),
  );
  const context = { now: new Date(), newId: randomId };
  const roomJid = (r: number) => `room${r}@${DOMAIN}`;
  const userJid = (r: number, k: number) => `u${r}-${k}@${USERS}/laptop`;

  /** One room, built by the service from its join presences alone (a state holding just this room). */
  const buildRoom = (r: number, occupants: number, from?: Room): Room => {
    let state: ServiceState = emptyServiceState();
    if (from) state = { ...state, rooms: RoomTable.from([[roomJid(r), from]]) };
    const start = from ? from.occupants.size : 0;
    for (let k = start; k < occupants; k++) {
      state = service.handle(state, joinPresence(userJid(r, k), roomJid(r), `nick${k}`), context).state;
      if (k === 0) {
        const submit = xml("iq", { type: "set", from: userJid(r, 0), to: roomJid(r), id: `c${r}` }, xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "submit" })));
        state = service.handle(state, submit, context).state;
      }
    }
    const room = state.rooms.get(roomJid(r));
    if (!room || room.occupants.size !== occupants || room.locked) throw new Error(`room ${r}: ${room?.occupants.size} occupants, locked ${room?.locked}`);
    return room;
  };

  const base = await heapNow();
  const t0 = performance.now();
  const all = new Map<string, Room>();
  for (let r = 0; r < rooms; r++) all.set(roomJid(r), buildRoom(r, 1));
  const heapRooms = await heapNow();
  progress(`${rooms} rooms with their owner: ${((heapRooms - base) / 1e6).toFixed(1)} MB`);
  for (let r = 0; r < rooms; r++) all.set(roomJid(r), buildRoom(r, perRoom, all.get(roomJid(r))));
  const buildSeconds = (performance.now() - t0) / 1000;
  let state: ServiceState | null = { ...emptyServiceState(), rooms: RoomTable.from(all) };
  const heapFull = await heapNow();
  const rssFull = process.memoryUsage().rss;
  const occupants = [...all.values()].reduce((n, room) => n + room.occupants.size, 0);
  progress(`${occupants} occupants: ${((heapFull - base) / 1e6).toFixed(1)} MB, built in ${buildSeconds.toFixed(1)} s`);

  // One stanza through the whole service: a presence change, broadcast to the room's occupants.
  const samples = Math.min(400, rooms);
  const change = (r: number) => xml("presence", { from: userJid(r, 1), to: `${roomJid(r)}/nick1` }, xml("show", {}, "away"));
  let small: ServiceState = { ...emptyServiceState(), rooms: RoomTable.from([[roomJid(0), all.get(roomJid(0))!]]) };
  let t = performance.now();
  for (let i = 0; i < samples; i++) small = service.handle(small, change(0), context).state;
  const atOneRoom = ((performance.now() - t) * 1000) / samples;
  t = performance.now();
  for (let i = 0; i < samples; i++) state = service.handle(state!, change((i * 7919) % rooms), context).state;
  const atAllRooms = ((performance.now() - t) * 1000) / samples;
  void small;
  progress(`one stanza: ${atOneRoom.toFixed(0)} µs with 1 room, ${atAllRooms.toFixed(0)} µs with ${rooms} rooms`);

  // Presences as stored, alone: how much of an occupant is its last presence (an ltx element).
  const sampleRoom = all.get(roomJid(0))!;
  const presenceText = [...sampleRoom.occupants.values()][1]!.sessions.values().next().value!.presence.toString();
  const beforePresences = await heapNow();
  const presences: Element[] = Array.from({ length: occupants }, () => parse(presenceText));
  const presencesOnly = ((await heapNow()) - beforePresences) / presences.length;
  presences.length = 0;

  // Persist through RoomStore, in the gateway's order (room, affiliations, occupants), batched.
  const { createDataSource } = await import("../ormconfig.js");
  const { RoomStore } = await import("../src/shell/room-store.js");
  const { loadRooms } = await import("../src/shell/room-loader.js");
  const { createLogger } = await import("../src/log.js");
  type StoreWrite = Parameters<InstanceType<typeof RoomStore>["commit"]>[0][number];
  const dataSource = createDataSource(databaseUrl);
  try {
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
    const settings = ((await dataSource.query(`SELECT current_setting('server_version') AS v, current_setting('fsync') AS f`)) as { v: string; f: string }[])[0]!;
    const store = new RoomStore(dataSource, "muc.bench.test");
    let batch: StoreWrite[] = [];
    let writes = 0;
    let statements = 0;
    let transactions = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      statements += await store.commit(batch, []);
      transactions++;
      writes += batch.length;
      batch = [];
    };
    const tp = performance.now();
    for (const room of state!.rooms.values()) {
      batch.push({ op: "room.save", roomJid: room.jid, config: room.config, subject: room.subject, locked: room.locked });
      for (const [jid, entry] of room.affiliations) batch.push({ op: "affiliation.set", roomJid: room.jid, jid, entry });
      for (const occupant of room.occupants.values()) {
        for (const session of occupant.sessions.values()) {
          batch.push({ op: "occupant.save", roomJid: room.jid, nick: occupant.nick, jid: session.jid, role: occupant.role, occupantId: occupant.occupantId, presence: session.presence });
        }
      }
      if (batch.length >= WRITES_PER_COMMIT) await flush();
    }
    await flush();
    const persistSeconds = (performance.now() - tp) / 1000;
    progress(`persisted ${writes} writes in ${persistSeconds.toFixed(1)} s`);

    // Restart: drop the engine state, restore it from the database.
    state = null;
    all.clear();
    const heapBeforeRestore = await heapNow();
    const log = createLogger({ level: "error" });
    const tr = performance.now();
    const restored = await loadRooms(dataSource, 100, log);
    const restoreSeconds = (performance.now() - tr) / 1000;
    const heapRestored = (await heapNow()) - heapBeforeRestore;
    const restoredOccupants = [...restored.values()].reduce((n, room) => n + room.occupants.size, 0);
    restored.clear();
    progress(`restored ${restoredOccupants} occupants in ${restoreSeconds.toFixed(1)} s`);

    // The same rows fetched without building anything (what the SELECTs alone cost).
    const ts = performance.now();
    let rows = 0;
    for (const sql of [
      `SELECT id, jid, config, subject, subject_nick, subject_changed_at, locked FROM rooms WHERE role = 'primary'`,
      `SELECT room_id, jid, affiliation, reason, nick FROM room_affiliations`,
      `SELECT room_id, nick, real_jid, role, occupant_id, presence FROM occupants ORDER BY updated_at, id`,
    ]) {
      rows += ((await dataSource.query(sql)) as unknown[]).length;
    }
    const rawSelectSeconds = (performance.now() - ts) / 1000;

    // Baseline: the same rooms as plain objects, presences as strings.
    await heapNow();
    const jsonBase = await heapNow();
    const plain: unknown[] = [];
    const plainRoom = (r: number, n: number) => ({
      jid: roomJid(r),
      config: { name: "", description: "", persistent: false, public: true, membersOnly: false, moderated: false, password: "", whois: "moderators", maxUsers: null, historyLength: 20 },
      locked: false,
      subject: null,
      affiliations: [[`u${r}-0@${USERS}`, "owner"]],
      occupants: Array.from({ length: n }, (_, k) => ({
        nick: `nick${k}`,
        bareJid: `u${r}-${k}@${USERS}`,
        role: k === 0 ? "moderator" : "participant",
        occupantId: randomId(),
        sessions: [{ jid: userJid(r, k), presence: presenceText.replace(/u\d+-\d+@/, `u${r}-${k}@`) }],
      })),
    });
    for (let r = 0; r < rooms; r++) plain.push(plainRoom(r, 1));
    const jsonRooms = (await heapNow()) - jsonBase;
    for (let r = 0; r < rooms; r++) plain[r] = plainRoom(r, perRoom);
    const jsonFull = (await heapNow()) - jsonBase;
    void plain.length;

    return {
      rooms,
      perRoom,
      occupants,
      buildSeconds,
      heap: { base, rooms: heapRooms - base, full: heapFull - base, rssFull, json: { rooms: jsonRooms, full: jsonFull }, presencesOnly, restored: heapRestored },
      stanzaMicros: { atOneRoom, atAllRooms, samples },
      presenceBytes: Buffer.byteLength(presenceText),
      persist: { seconds: persistSeconds, writes, statements, transactions },
      restore: { seconds: restoreSeconds, rawSelectSeconds, rooms: restored.size || rooms, occupants: restoredOccupants, rows },
      database: `PostgreSQL ${settings.v}, fsync=${settings.f} (${databaseKind})`,
    };
  } finally {
    if (dataSource.isInitialized) await dataSource.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------
// The parent: runs the child, makes the report

function runChild(rooms: number, perRoom: number, databaseUrl: string, timeoutMs: number): Promise<ChildResult> {
  const databaseKind = process.env.DATABASE_URL ? "the server of DATABASE_URL" : "the embedded test server";
  return new Promise((resolve, reject) => {
    // The database URL goes through the environment, not the command line (it holds a password).
    const proc = spawn(process.execPath, ["--expose-gc", "--max-old-space-size=6144", SELF, CHILD_FLAG, String(rooms), String(perRoom)], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, SCALE_DATABASE_URL: databaseUrl, SCALE_DATABASE_KIND: databaseKind },
    });
    let out = "";
    proc.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`the scale child took longer than ${timeoutMs / 1000} s`));
    }, timeoutMs);
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith(MARK));
      if (code === 0 && line) resolve(JSON.parse(line.slice(MARK.length)) as ChildResult);
      else reject(new Error(`the scale child exited with ${code ?? signal}: ${out.slice(-2000)}`));
    });
  });
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

export async function run(options: BenchOptions): Promise<Report> {
  const rooms = options.quick ? 1_000 : 10_000;
  const perRoom = 10;
  options.log(`scale: ${rooms} rooms x ${perRoom} occupants in a child process`);
  // A fresh database made here (on the runner's shared test server, or DATABASE_URL's), used by the child.
  const db = await startTestDatabase();
  let r: ChildResult;
  try {
    r = await runChild(rooms, perRoom, db.url, options.quick ? 180_000 : 600_000);
  } finally {
    await db.stop();
  }
  const added = r.occupants - r.rooms;
  const perRoomBytes = r.heap.rooms / r.rooms; // a room with its owner
  const perOccupant = (r.heap.full - r.heap.rooms) / added;
  const jsonPerRoom = r.heap.json.rooms / r.rooms;
  const jsonPerOccupant = (r.heap.json.full - r.heap.json.rooms) / added;
  const memory: Cell[][] = [
    ["engine state (MucService rooms)", `${mb(r.heap.full)} MB`, Math.round(perRoomBytes), Math.round(perOccupant), `${(r.heap.full / r.occupants / 1024).toFixed(2)} KiB`],
    ["same data as plain objects, presences as strings", `${mb(r.heap.json.full)} MB`, Math.round(jsonPerRoom), Math.round(jsonPerOccupant), `${(r.heap.json.full / r.occupants / 1024).toFixed(2)} KiB`],
    ["engine / plain", `${(r.heap.full / r.heap.json.full).toFixed(2)}x`, `${(perRoomBytes / jsonPerRoom).toFixed(2)}x`, `${(perOccupant / jsonPerOccupant).toFixed(2)}x`, "-"],
    ["engine state after restore (loadRooms)", `${mb(r.heap.restored)} MB`, "-", "-", `${(r.heap.restored / r.occupants / 1024).toFixed(2)} KiB`],
  ];
  const timing: Cell[][] = [
    [`persist ${r.rooms} rooms, ${r.occupants} occupants through RoomStore`, `${r.persist.seconds.toFixed(1)} s`, `${r.persist.writes} writes, ${r.persist.statements} statements, ${r.persist.transactions} transactions (${WRITES_PER_COMMIT} writes each)`],
    ["restore at start: loadRooms", `${r.restore.seconds.toFixed(2)} s`, `${r.restore.occupants} occupants back, ${Math.round(r.restore.occupants / r.restore.seconds)} occupants/s`],
    ["peer: the same SELECTs, rows only", `${r.restore.rawSelectSeconds.toFixed(2)} s`, `${r.restore.rows} rows; loadRooms takes ${(r.restore.seconds / r.restore.rawSelectSeconds).toFixed(1)}x that`],
    ["one presence change through MucService, 1 room in state", `${r.stanzaMicros.atOneRoom.toFixed(0)} µs`, `${r.stanzaMicros.samples} stanzas, broadcast to ${perRoom} occupants`],
    [`the same with ${r.rooms} rooms in state`, `${r.stanzaMicros.atAllRooms.toFixed(0)} µs`, `${(r.stanzaMicros.atAllRooms / r.stanzaMicros.atOneRoom).toFixed(1)}x: ${Math.round(1e6 / r.stanzaMicros.atAllRooms)} room stanzas/s at most`],
  ];
  return {
    tables: [
      { title: `Memory, ${r.rooms} rooms x ${r.perRoom} occupants (${r.occupants}), heapUsed after forced GC`, columns: ["what", "total", "bytes/room (with owner)", "bytes/extra occupant", "per occupant, all in"], rows: memory },
      { title: "Persist, restart, per-stanza cost", columns: ["what", "time", "detail"], rows: timing },
    ],
    notes: [
      `Child node process with --expose-gc; heapUsed after 3 forced GCs, relative to the heap before building. RSS with everything built: ${mb(r.heap.rssFull)} MB. ${r.database}.`,
      `Each occupant joined with a real client presence (MUC <x/> and an XEP-0115 <c/>, ${r.presenceBytes} bytes as stored) through MucService.handle; each room was created by its owner's join and unlocked by an empty owner form (instant room). Built in ${r.buildSeconds.toFixed(1)} s.`,
      "Rooms were built each in a state holding only that room and then gathered into one state (a RoomTable), which is quicker to build; the room objects are the same either way. A room change copies one of the table's 256 buckets, not every room (src/core/room-table.ts): the per-stanza rows show what is left of the cost of many rooms.",
      `An occupant's last presence, as the engine keeps it (an ltx Element, parsed from the same XML), costs ${Math.round(r.heap.presencesOnly)} bytes alone: ${((100 * r.heap.presencesOnly) / perOccupant).toFixed(0)}% of an extra occupant.`,
      "Peers: Prosody's mod_muc would need as many real sessions to hold this many occupants, which one machine's benchmark cannot open; the plain-object baseline is the same data with no engine structure (a lower bound, not a rival), and the bare SELECTs are the floor of any restore from these tables.",
    ],
  };
}

if (process.argv[1] === SELF && process.argv[2] === CHILD_FLAG) {
  child(Number(process.argv[3]), Number(process.argv[4]), process.env.SCALE_DATABASE_URL!, process.env.SCALE_DATABASE_KIND ?? "").then(
    (result) => {
      process.stdout.write(`${MARK}${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`scale child failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
