// `dmuc-gateway rooms ...` and `occupants`: the service administrator's commands (the same as the
// XEP-0050 ones, plugins/admin-commands.ts) from the command line. When a gateway serves the domain,
// it runs them in its own state (src/shell/admin-channel.ts), so a destroyed room's occupants are told
// at once; when none does, they run here on the stored state and the next start serves the result.
import pg from "pg";
import { AdminError, runAdminCommand, type AdminCommand, type AdminResult, type OccupantRow, type RoomDetails } from "../../plugins/admin-commands.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../log.js";
import { openExistingDatabase } from "../db/database.js";
import { DomainLease, DomainTakenError } from "../db/domain-lease.js";
import { askGateway } from "../shell/admin-channel.js";
import { createService, loadServiceState } from "../shell/gateway.js";
import { liveContext } from "../shell/clock.js";
import { RoomStore } from "../shell/room-store.js";
import type { AuditRecord } from "../core/effects.js";
import type { StoreWrite } from "../core/store-writes.js";

export async function runRoomsCommand(config: GatewayConfig, log: Logger, command: AdminCommand): Promise<AdminResult> {
  const database = await openExistingDatabase(config, log);
  try {
    let lease: DomainLease;
    try {
      lease = await DomainLease.acquire(database.url, config.domain, "command", log);
    } catch (err) {
      if (!(err instanceof DomainTakenError)) throw err;
      // A gateway serves the domain: it runs the command.
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const reply = await askGateway(client, config.domain, command);
        if (!reply.ok) throw new AdminError(reply.error, (reply.kind as AdminError["kind"]) ?? "bad-request");
        return reply.result;
      } finally {
        await client.end();
      }
    }
    try {
      const state = await loadServiceState(database, config, log);
      const outcome = createService(config).operate(state, liveContext(), (request, rooms) => runAdminCommand(rooms, request, command));
      const writes: StoreWrite[] = [];
      const audits: AuditRecord[] = [];
      for (const effect of outcome.effects) {
        if (effect.kind === "store") writes.push(effect.write);
        else if (effect.kind === "audit") audits.push(effect.record);
      }
      // Stanzas are dropped: nobody is connected while no gateway runs.
      if (writes.length > 0 || audits.length > 0) await new RoomStore(database.dataSource, config.domain).commit(writes, audits);
      return outcome.result;
    } finally {
      await lease.release();
    }
  } finally {
    await database.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Output for people (--json prints the result as it is)

function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  return all.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

const when = (iso: string | null) => (iso ? iso.replace(/\.\d{3}Z$/, "Z") : "-");
const yesNo = (b: boolean) => (b ? "yes" : "no");

function occupantTable(occupants: OccupantRow[]): string {
  if (occupants.length === 0) return "no occupants\n";
  return table(["NICK", "ROLE", "AFFILIATION", "JIDS"], occupants.map((o) => [o.nick, o.role, o.affiliation, o.sessions.join(" ")]));
}

function roomText(room: RoomDetails): string {
  const lines = [
    ["room", room.jid],
    ["name", room.name || "-"],
    ["description", room.description || "-"],
    ["subject", room.subject ?? "-"],
    ["persistent", yesNo(room.persistent)],
    ["public", yesNo(room.public)],
    ["members only", yesNo(room.membersOnly)],
    ["password", yesNo(room.passwordProtected)],
    ["locked", yesNo(room.locked)],
    ["history", `${room.historyMessages} messages`],
    ["last activity", when(room.lastActivity)],
    ["affiliations", room.affiliations.map((a) => `${a.jid} (${a.affiliation})`).join(", ") || "-"],
  ];
  return lines.map(([k, v]) => `${`${k}:`.padEnd(15)}${v}`).join("\n") + `\noccupants (${room.occupants}):\n` + occupantTable(room.occupantList).replace(/^/gm, "  ").trimEnd() + "\n";
}

export function formatAdminResult(result: AdminResult): string {
  switch (result.op) {
    case "rooms.list":
      if (result.rooms.length === 0) return "no rooms\n";
      return table(
        ["ROOM", "NAME", "OCCUPANTS", "PERSISTENT", "PUBLIC", "LAST ACTIVITY"],
        result.rooms.map((r) => [r.jid, r.name || "-", String(r.occupants), yesNo(r.persistent), yesNo(r.public), when(r.lastActivity)]),
      );
    case "rooms.show":
      return roomText(result.room);
    case "rooms.create":
      return `created ${result.room.jid}\n` + roomText(result.room);
    case "rooms.destroy":
      return `destroyed ${result.room} (${result.occupantsTold} occupants told)\n`;
    case "occupants":
      return occupantTable(result.occupants);
  }
}
