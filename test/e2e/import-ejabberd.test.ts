// `dmuc-gateway import` from ejabberd (Debian's ejabberd 23.01, mod_muc + mod_mam), started by the test
// in its own directory on random loopback ports; the gateway runs beside a Prosody as usual.
//
//   npx tsc -p . && node --test dist/test/e2e/import-ejabberd.test.js
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import { connectClient, type TestClient } from "../support/client.js";
import { killSync, removeDirSync, track } from "../support/cleanup.js";
import { GATEWAY_MAIN, startStack, type Stack } from "../support/gateway.js";
import { freePorts } from "../support/ports.js";
import { configureRoom, enterRoom, newId, NS_MUC_ADMIN, readWholeArchive, say } from "../support/room-client.js";
import type { MamResult } from "../../src/xmpp/mam.js";

const run = promisify(execFile);
const HOST = "ejd.localhost";
const MUC = `rooms.${HOST}`;
const WAIT_MS = 20_000;

interface Ejabberd {
  c2sService: string;
  ctl(...args: string[]): Promise<void>;
  stop(): Promise<void>;
}

async function startEjabberd(): Promise<Ejabberd> {
  const dir = mkdtempSync(join(tmpdir(), "dmuc-ejabberd-"));
  for (const sub of ["logs", "spool"]) mkdirSync(join(dir, sub));
  const [c2s, dist] = await freePorts(2);
  writeFileSync(
    join(dir, "ejabberd.yml"),
    [
      `hosts: ["${HOST}"]`,
      "loglevel: info",
      "listen:",
      `  - {port: ${c2s}, ip: "127.0.0.1", module: ejabberd_c2s, starttls: false}`,
      "auth_method: internal",
      "auth_password_format: plain",
      "access_rules:",
      "  muc_create: {allow: all}",
      "modules:",
      "  mod_disco: {}",
      "  mod_mam: {default: always, db_type: mnesia}",
      `  mod_muc: {host: "${MUC}", access_create: muc_create, db_type: mnesia, default_room_options: {mam: true, persistent: true}}`,
    ].join("\n") + "\n",
  );
  writeFileSync(join(dir, "ejabberdctl.cfg"), `ERL_DIST_PORT=${dist}\nINET_DIST_INTERFACE=127.0.0.1\nERLANG_NODE=dmuc${randomBytes(4).toString("hex")}@localhost\n`);
  const ids = (await run("id", ["-u", "ejabberd"])).stdout.trim();
  const gid = (await run("id", ["-g", "ejabberd"])).stdout.trim();
  for (const path of [dir, join(dir, "logs"), join(dir, "spool"), join(dir, "ejabberd.yml"), join(dir, "ejabberdctl.cfg")]) chownSync(path, Number(ids), Number(gid));
  const base = ["--config-dir", dir, "--config", join(dir, "ejabberd.yml"), "--ctl-config", join(dir, "ejabberdctl.cfg"), "--logs", join(dir, "logs"), "--spool", join(dir, "spool")];
  const child: ChildProcess = spawn("ejabberdctl", [...base, "foreground"], { cwd: dir, stdio: "ignore" });
  child.unref();
  // The Erlang VM runs as user ejabberd, started through su in a session of its own: it is found by
  // its directory on the command line (unique to this run), not by process group.
  const ours = (): number[] =>
    readdirSync("/proc")
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir);
        } catch {
          return false;
        }
      })
      .map(Number);
  const stopSync = () => {
    for (const pid of ours()) killSync(pid, "SIGTERM", 5_000);
    killSync(child.pid, "SIGKILL", 1_000);
  };
  const untrack = track({ describe: () => `ejabberd in ${dir}`, stopSync, warnIfLeaked: true });
  const stop = async () => {
    await run("ejabberdctl", [...base, "stop"], { timeout: 20_000 }).catch(() => undefined);
    const deadline = Date.now() + 15_000;
    while (ours().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    stopSync();
    untrack();
    removeDirSync(dir, "ejabberd");
  };
  const started = `Start accepting TCP connections at 127.0.0.1:${c2s} for ejabberd_c2s`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    let log = "";
    try {
      log = readFileSync(join(dir, "logs", "ejabberd.log"), "utf8");
    } catch {
      /* not yet */
    }
    if (log.includes(started)) break;
    if (Date.now() > deadline || ours().length === 0) {
      await stop();
      throw new Error(`ejabberd did not start:\n${log.split("\n").slice(-20).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    c2sService: `xmpp://127.0.0.1:${c2s}`,
    ctl: async (...args: string[]) => {
      await run("ejabberdctl", [...base, ...args]);
    },
    stop,
  };
}

describe("dmuc-gateway import from ejabberd's mod_muc with mod_mam", () => {
  let stack: Stack;
  let ejabberd: Ejabberd;
  const clients: TestClient[] = [];
  before(async () => {
    ejabberd = await startEjabberd();
    for (const user of ["alice", "bob"]) await ejabberd.ctl("register", user, HOST, "password");
    stack = await startStack({ env: { DMUC_RATE_LIMIT: "1000", DMUC_RATE_BURST: "1000" } });
  });
  after(async () => {
    for (const c of clients) await c.stop();
    await stack?.stop();
    await ejabberd?.stop();
  });

  const ejabberdUser = async (username: string) => {
    const client = await connectClient({ service: ejabberd.c2sService, domain: HOST, username, resource: "imp" });
    clients.push(client);
    return client;
  };
  const view = (results: MamResult[]) =>
    results.filter((r) => r.message.getChild("body")).map((r) => ({ nick: (r.message.attrs.from ?? "").split("/")[1], body: r.message.getChildText("body"), stamp: r.stamp.toISOString() }));

  it("moves a room with lists, subject and its archive; the new room answers the same", async () => {
    const alice = await ejabberdUser("alice");
    const bob = await ejabberdUser("bob");
    const room = `old-${newId()}@${MUC}`;
    await enterRoom(alice, room, "Alice");
    await configureRoom(alice, room, { "muc#roomconfig_roomname": "Ejabberd room — ü", "muc#roomconfig_persistentroom": "1", "muc#roomconfig_whois": "anyone" });
    for (const item of [
      xml("item", { jid: `bob@${HOST}`, affiliation: "admin" }, xml("reason", {}, "helps")),
      xml("item", { jid: `carol@${HOST}`, affiliation: "member" }),
      xml("item", { jid: `mallory@${HOST}`, affiliation: "outcast" }, xml("reason", {}, "spam")),
    ]) {
      await alice.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS_MUC_ADMIN }, item)), WAIT_MS);
    }
    await alice.send(xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "Über alles")));
    await alice.waitFor((el) => el.getChild("subject") !== undefined && el.attrs.from === `${room}/Alice`, WAIT_MS);
    await enterRoom(bob, room, "Bob");
    for (let i = 0; i < 120; i++) await say(i % 2 ? bob : alice, room, i % 4 === 0 ? `grüße ${i} 🐈` : `message ${i}`);

    const target = `from-ejabberd-${newId()}`;
    const imported = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [GATEWAY_MAIN, "import", room, "--owner", `alice@${HOST}`, "--server", ejabberd.c2sService, "--to", target, "--json"], {
        env: { ...process.env, ...stack.env, DMUC_IMPORT_PASSWORD: "password", DMUC_LOG_LEVEL: "warn" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("error", reject);
      child.once("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
    assert.equal(imported.code, 0, imported.stderr);
    const summary = JSON.parse(imported.stdout);
    assert.equal(summary.messages.imported, 120);
    assert.deepEqual(summary.affiliations, { owner: 1, admin: 1, member: 1, outcast: 1 });

    const before = await readWholeArchive(bob, room, 50);
    const reader = await stack.connect("reader", "ejd");
    const moved = await readWholeArchive(reader, `${target}@conference.localhost`, 50);
    assert.equal(view(before.results).length, 120);
    assert.deepEqual(view(moved.results), view(before.results));
  });
});
