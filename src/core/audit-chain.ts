// The hash chain of a room's audit events (docs/AUDIT.md, "The hash chain"). Pure functions: the
// shell uses them to chain rows as it stores them, `dmuc-gateway audit verify` to check them.
//
// hash(row) = lowercase hex SHA-256 of the UTF-8 bytes of canonical(row), where canonical(row) is the
// JSON array
//   ["dmuc-audit-1", room_jid, "<seq>", "<at>", kind, actor_jid, subject_jid, details, prev_hash]
// written without any whitespace; <seq> is the decimal row number in the room's chain (from 1), <at>
// the ISO 8601 UTC time with milliseconds (2026-12-02T07:17:33.123Z), actor_jid and subject_jid are a
// string or null, prev_hash is the previous row's hash (64 zeros for seq 1). Objects in `details` are
// written with their keys sorted by UTF-16 code units; strings and numbers as JSON.stringify writes
// them (ECMAScript), after the details went through JSON (as they are stored, without undefined).
import { createHash } from "node:crypto";

export const CHAIN_VERSION = "dmuc-audit-1";
export const GENESIS_HASH = "0".repeat(64);

export interface ChainRow {
  readonly roomJid: string;
  readonly seq: number;
  readonly at: Date;
  readonly kind: string;
  readonly actorJid: string | null;
  readonly subjectJid: string | null;
  readonly details: unknown;
  readonly prevHash: string;
}

/**
 * A JSON value written with sorted object keys and no whitespace. Values that are not JSON become
 * what JSON.stringify makes of them (undefined fields dropped, dates by toJSON), so that a record
 * hashes the same before it is stored as after it is read back from jsonb.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  const toJSON = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof toJSON === "function") return canonicalJson(toJSON.call(value));
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  // Array.prototype.sort compares UTF-16 code units.
  const object = value as Record<string, unknown>;
  let out = "";
  for (const key of Object.keys(object).sort()) {
    const v = object[key];
    if (v === undefined) continue;
    out += `${out === "" ? "" : ","}${JSON.stringify(key)}:${canonicalJson(v)}`;
  }
  return `{${out}}`;
}

/** canonicalJson of the row's array, written out directly: it is computed for every audit row. */
export function canonicalRow(row: ChainRow): string {
  const s = JSON.stringify;
  return `["${CHAIN_VERSION}",${s(row.roomJid)},"${row.seq}","${row.at.toISOString()}",${s(row.kind)},${s(row.actorJid)},${s(row.subjectJid)},${canonicalJson(row.details)},${s(row.prevHash)}]`;
}

export function rowHash(row: ChainRow): string {
  return createHash("sha256").update(canonicalRow(row), "utf8").digest("hex");
}

/** Where a room's chain starts after a purge, as the retention.purged event records it. */
export interface ChainStart {
  readonly seq: number;
  readonly prevHash: string;
}
