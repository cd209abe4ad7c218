// Benchmark (issue 14, memory): what one occupant costs in rooms with many occupants. Rooms of 1000
// occupants are built in-process by MucService.handle from real client join presences, and the heap is
// measured after forced GC (a child node process with --expose-gc), per occupant, against the issue's
// target (1 KiB) and, in the same run, the same data held as plain objects with each presence as its XML
// string: the lower bound of any representation that keeps every presence.
//
// The presences are what clients send: an XEP-0115 <c/> whose `ver` is the hash of the client's
// features (users of one client version share it: four clients here), and for half of the users an
// XEP-0153 avatar hash (their own), some with a <show/> and a <status/>. Each is parsed from its text,
// as the gateway reads it from the socket.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import xml, { type Element } from "@xmpp/xml";
import parse from "@xmpp/xml/lib/parse.js";
import type { BenchOptions, Cell, Report } from "./lib/report.js";

export const name = "occupants";

const SELF = fileURLToPath(import.meta.url);
const CHILD_FLAG = "--occupants-child";
const MARK = "OCCUPANTS_RESULT ";
const DOMAIN = "muc.bench.test";
const USERS = "users.bench.test";
const MUC = "http://jabber.org/protocol/muc";
const MUC_OWNER = "http://jabber.org/protocol/muc#owner";
const TARGET_BYTES = 1024;

const CLIENTS = [
  { node: "https://conversations.im", ver: "yZdf3LwdjBIVmI8QcHXnDhgTI0c=" },
  { node: "https://gajim.org", ver: "NjZPZ3kuWhmRNFUgzNuCb9MkCWQ=" },
  { node: "https://dino.im", ver: "n0X9bDdPC6sbXqEkv7SvOwXSMUc=" },
  { node: "https://monal-im.org", ver: "kL3gMDxlCfe5sV3m5Dzo/OY5GIk=" },
];

interface ChildResult {
  rooms: number;
  perRoom: number;
  occupants: number;
  buildSeconds: number;
  /** Heap after the rooms with their owner only, and after every occupant, above the base. */
  heapOwners: number;
  heapFull: number;
  plainOwners: number;
  plainFull: number;
  presenceBytes: number;
}

async function heapNow(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

const roomJid = (r: number) => `room${r}@${DOMAIN}`;
const userJid = (r: number, k: number) => `user${r}-${k}@${USERS}/phone`;

/** The join presence user k of room r sends (see the top of the file). */
function joinPresence(r: number, k: number): Element {
  const client = CLIENTS[k % CLIENTS.length]!;
  const avatar = k % 2 === 0 ? xml("x", { xmlns: "vcard-temp:x:update" }, xml("photo", {}, createHash("sha1").update(`avatar ${r} ${k}`).digest("hex"))) : null;
  const away = k % 5 === 0 ? [xml("show", {}, "away"), xml("status", {}, "in a meeting")] : [];
  return xml(
    "presence",
    { from: userJid(r, k), to: `${roomJid(r)}/nick${k}`, id: `join-${r}-${k}` },
    ...away,
    xml("c", { xmlns: "http://jabber.org/protocol/caps", hash: "sha-1", node: client.node, ver: client.ver }),
    avatar,
    xml("x", { xmlns: MUC }, xml("history", { maxstanzas: "0" })),
  );
}

async function child(rooms: number, perRoom: number): Promise<ChildResult> {
  const progress = (m: string) => process.stderr.write(`    [occupants child] ${m}\n`);
  const { emptyServiceState, MucService } = await import("../src/core/service.js");
  const { createPlugins } = await import("../plugins/index.js");
  const { randomId } = await import("../src/shell/clock.js");
  type ServiceState = ReturnType<typeof emptyServiceState>;

  const service = new MucService({ domain: DOMAIN, admins: new Set(), name: "bench" }, createPlugins({ maxHistoryMessages: 100, maxBodyChars: 10_000, ratePerSecond: 10, burst: 30 }));
  const context = { now: new Date(), newId: randomId };
  let state: ServiceState = emptyServiceState();
  // Parsed from its text, as the gateway gets a stanza from the socket (strings as the parser makes them).
  const join = (r: number, k: number) => {
    state = service.handle(state, parse(joinPresence(r, k).toString()), context).state;
    if (k === 0) {
      const submit = xml("iq", { type: "set", from: userJid(r, 0), to: roomJid(r), id: `c${r}` }, xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "submit" })));
      state = service.handle(state, submit, context).state;
    }
  };

  const base = await heapNow();
  const t0 = performance.now();
  for (let r = 0; r < rooms; r++) join(r, 0);
  state = service.tick(state, { now: new Date(context.now.getTime() + 60_000), newId: randomId }).state;
  const heapOwners = (await heapNow()) - base;
  for (let r = 0; r < rooms; r++) {
    for (let k = 1; k < perRoom; k++) join(r, k);
    progress(`room ${r + 1}/${rooms}: ${state.rooms.get(roomJid(r))?.occupants.size} occupants`);
  }
  const buildSeconds = (performance.now() - t0) / 1000;
  // A minute later, as the gateway's timer ticks: the flood limiter forgets the entries' buckets.
  state = service.tick(state, { now: new Date(context.now.getTime() + 60_000), newId: randomId }).state;
  const heapFull = (await heapNow()) - base;
  let occupants = 0;
  for (let r = 0; r < rooms; r++) occupants += state.rooms.get(roomJid(r))?.occupants.size ?? 0;
  if (occupants !== rooms * perRoom) throw new Error(`${occupants} occupants for ${rooms} x ${perRoom}`);
  const presenceBytes = joinPresence(0, 1).toString().length;

  // The lower bound: the same data as plain objects, each presence as its XML string.
  const kept = state;
  const plainBase = await heapNow();
  const plain: { jid: string; occupants: unknown[] }[] = [];
  // Flat strings (a built string is a rope of its pieces until flattened).
  const flat = (text: string) => Buffer.from(text).toString();
  const plainOccupant = (r: number, k: number) => ({
    nick: flat(`nick${k}`),
    bareJid: flat(`user${r}-${k}@${USERS}`),
    role: k === 0 ? "moderator" : "participant",
    occupantId: flat(randomId()),
    sessions: [{ jid: flat(userJid(r, k)), presence: flat(joinPresence(r, k).toString()) }],
  });
  for (let r = 0; r < rooms; r++) plain.push({ jid: roomJid(r), occupants: [plainOccupant(r, 0)] });
  const plainOwners = (await heapNow()) - plainBase;
  for (let r = 0; r < rooms; r++) for (let k = 1; k < perRoom; k++) plain[r]!.occupants.push(plainOccupant(r, k));
  const plainFull = (await heapNow()) - plainBase;
  void kept.rooms.size;
  return { rooms, perRoom, occupants, buildSeconds, heapOwners, heapFull, plainOwners, plainFull, presenceBytes };
}

function runChild(rooms: number, perRoom: number, timeoutMs: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["--expose-gc", SELF, CHILD_FLAG, String(rooms), String(perRoom)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    proc.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`the occupants child took longer than ${timeoutMs / 1000} s`));
    }, timeoutMs);
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith(MARK));
      if (code === 0 && line) resolve(JSON.parse(line.slice(MARK.length)) as ChildResult);
      else reject(new Error(`the occupants child exited with ${code ?? signal}: ${out.slice(-2000)}`));
    });
  });
}

export async function run(options: BenchOptions): Promise<Report> {
  const rooms = options.quick ? 2 : 3;
  const perRoom = options.quick ? 200 : 1000;
  options.log(`occupants: ${rooms} rooms x ${perRoom} occupants in a child process`);
  const r = await runChild(rooms, perRoom, options.quick ? 120_000 : 900_000);
  const added = r.occupants - r.rooms;
  const ours = (r.heapFull - r.heapOwners) / added;
  const plain = (r.plainFull - r.plainOwners) / added;
  const rows: Cell[][] = [
    ["ours: engine state (MucService rooms)", `${(r.heapFull / 1e6).toFixed(1)} MB`, Math.round(r.heapOwners / r.rooms), Math.round(ours), `${(ours / TARGET_BYTES).toFixed(2)}x`],
    ["same data as plain objects, presences as XML strings", `${(r.plainFull / 1e6).toFixed(1)} MB`, Math.round(r.plainOwners / r.rooms), Math.round(plain), `${(plain / TARGET_BYTES).toFixed(2)}x`],
    ["ours / plain", `${(r.heapFull / r.plainFull).toFixed(2)}x`, "-", `${(ours / plain).toFixed(2)}x`, "-"],
  ];
  return {
    tables: [
      {
        title: `Memory per occupant, ${r.rooms} rooms x ${r.perRoom} occupants (${r.occupants}), heapUsed after forced GC`,
        columns: ["what", "total", "bytes per room with its owner", "bytes per extra occupant", "vs 1 KiB (issue 14)"],
        rows,
      },
    ],
    notes: [
      `Child node process with --expose-gc; heapUsed after 3 forced GCs, relative to the heap before building. Built through MucService.handle in ${r.buildSeconds.toFixed(1)} s (every join broadcast to the room, copies discarded), then one tick of the service a minute later, as the gateway's timer runs (the flood limiter forgets the buckets of the entries).`,
      `Join presences as clients send them (${r.presenceBytes} bytes for a user with an avatar): MUC <x/> with <history/>, XEP-0115 <c/> of one of ${CLIENTS.length} clients, an XEP-0153 avatar hash for every other user, <show/> and <status/> for one in five.`,
      "Peer: Prosody's mod_muc would need as many real sessions; the plain-object row is the lower bound of any representation that keeps each occupant's presence (as its XML string), not a rival.",
    ],
  };
}

if (process.argv[1] === SELF && process.argv[2] === CHILD_FLAG) {
  child(Number(process.argv[3]), Number(process.argv[4])).then(
    (result) => {
      process.stdout.write(`${MARK}${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`occupants child failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
