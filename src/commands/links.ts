// `dmuc-gateway links`: the DMUC2 links this gateway's database knows, and their state. On a primary
// a row per room and replica; on a replica a row per remote room it serves (peer: its primary).
import type { DataSource } from "typeorm";

export interface LinkRow {
  room: string;
  role: "primary" | "replica";
  peer: string;
  domain: string;
  state: string;
  since: Date | null;
  lastSeen: Date | null;
  updated: Date;
}

export async function readLinks(dataSource: DataSource): Promise<LinkRow[]> {
  const rows: { room: string; role: "primary" | "replica"; primary_jid: string | null; replica_jid: string; served_domain: string; state: string; split_since: Date | null; last_seen_at: Date | null; updated_at: Date }[] =
    await dataSource.query(
      `SELECT r.jid AS room, r.role, r.primary_jid, p.replica_jid, p.served_domain, p.state, p.split_since, p.last_seen_at, p.updated_at
       FROM replicas p JOIN rooms r ON r.id = p.room_id ORDER BY r.role, r.jid, p.replica_jid`,
    );
  return rows.map((r) => ({
    room: r.room,
    role: r.role,
    peer: r.role === "replica" ? (r.primary_jid ?? r.room) : r.replica_jid,
    domain: r.served_domain,
    state: r.state,
    since: r.split_since,
    lastSeen: r.last_seen_at,
    updated: r.updated_at,
  }));
}

const stamp = (d: Date | null) => (d ? d.toISOString().replace(/\.\d{3}Z$/, "Z") : "-");

/** A plain table, one link a line, for people; `--json` prints the rows for scripts. */
export function formatLinks(rows: LinkRow[]): string {
  if (rows.length === 0) return "no DMUC2 links\n";
  const table = [
    ["ROOM", "ROLE", "PEER", "DOMAIN", "STATE", "SPLIT SINCE", "LAST SEEN"],
    ...rows.map((r) => [r.room, r.role, r.peer, r.domain, r.state, stamp(r.since), stamp(r.lastSeen)]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}
