// Issue 16 point 8: memory with ten rooms full of large (allowed) messages. One user creates ten rooms
// on each side (our gateway, Prosody's mod_muc on the same Prosody), each keeping 50 messages of
// history, and posts 60 messages of 9,000 characters to each. RSS of the gateway and of Prosody before
// and after each side's turn (Prosody's RSS is the whole server: c2s, both MUCs). Ours keeps at most
// DMUC_MAX_HISTORY_KB of history per room in memory (the rest is in PostgreSQL); mod_muc keeps 50.
import xml from "@xmpp/xml";
import { readFileSync } from "node:fs";
import type { BenchOptions, Report } from "./lib/report.js";
import { fmt } from "./lib/report.js";
import { HISTORY, isSelfPresence, joinPresence, SIDES, startMucRig } from "./lib/muc-rig.js";
import { sleep } from "./lib/stats.js";

export const name = "memory";
export const order = 6;

const ROOMS = 10;
const BODY_CHARS = 9_000;
const SETTLE_MS = 5_000;

function rssMb(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
  } catch {
    return NaN;
  }
}

export async function run(options: BenchOptions): Promise<Report> {
  const perRoom = options.quick ? 20 : 60;
  const rig = await startMucRig({ log: options.log });
  const rows: (string | number)[][] = [];
  try {
    const poster = await rig.connect("poster");
    const filler = "x".repeat(BODY_CHARS - 20);
    for (const side of SIDES) {
      const domain = rig.rooms[side].split("@")[1]!;
      await sleep(SETTLE_MS);
      const before = { gateway: rssMb(rig.gateway.pid), prosody: rssMb(rig.prosody.pid) };
      for (let r = 0; r < ROOMS; r++) {
        const room = `big${r}@${domain}`;
        const self = poster.expect(isSelfPresence(room, "poster"), `self-presence from ${room}`);
        await poster.send(joinPresence(room, "poster", 0));
        await self;
        await poster.raw.iqCaller.request(
          xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" },
            xml("x", { xmlns: "jabber:x:data", type: "submit" },
              xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
              xml("field", { var: "muc#roomconfig_historylength" }, xml("value", {}, String(HISTORY)))))),
          30_000,
        );
        for (let i = 0; i < perRoom; i++) {
          const echo = poster.expect((el) => el.name === "message" && el.attrs.from === `${room}/poster` && el.getChildText("body")?.startsWith(`${i} `) === true, `echo ${i} from ${room}`);
          await poster.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, `${i} ${filler}`)));
          await echo;
        }
      }
      await sleep(SETTLE_MS);
      const after = { gateway: rssMb(rig.gateway.pid), prosody: rssMb(rig.prosody.pid) };
      const ours = side === "ours";
      rows.push([
        ours ? "ours" : "Prosody mod_muc",
        fmt(ours ? before.gateway : before.prosody, 0),
        fmt(ours ? after.gateway : after.prosody, 0),
        fmt(ours ? after.gateway - before.gateway : after.prosody - before.prosody, 0),
        fmt(ours ? after.prosody - before.prosody : NaN, 0),
      ]);
      options.log(`memory: ${side}: gateway ${fmt(before.gateway, 0)} -> ${fmt(after.gateway, 0)} MB, Prosody ${fmt(before.prosody, 0)} -> ${fmt(after.prosody, 0)} MB`);
    }
  } finally {
    await rig.stop();
  }
  return {
    tables: [
      {
        title: `RSS with ${ROOMS} rooms of ${perRoom} messages of ${BODY_CHARS.toLocaleString("en-US")} characters (MB)`,
        columns: ["MUC", "RSS before", "RSS after", "growth", "Prosody's own growth meanwhile (routing)"],
        rows,
      },
    ],
    notes: [
      "ours: RSS of the gateway process; Prosody mod_muc: RSS of the Prosody process (which also routes our side's traffic)",
      `history: ${HISTORY} messages per room on both sides; ours also bounded by DMUC_MAX_HISTORY_KB (default 256) in memory, every message stored in PostgreSQL`,
      `RSS read ${SETTLE_MS / 1000} s after the last message; the poster waits for each echo before sending the next`,
    ],
  };
}
