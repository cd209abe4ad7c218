// `dmuc-gateway import`: moves a room from any XEP-0045 service here with its whole archive. Reads
// the old room over XMPP (source.ts), maps it (mapping.ts), and writes it with the gateway's own
// store (RoomStore), page by page, so that an interrupted import resumes where it stopped and never
// stores a message twice (history rows are unique per room and archive id). A running gateway is
// told to serve the room through a PostgreSQL notification (src/shell/room-notifications.ts), and
// the command returns once it says it does.
import type { ImportArguments } from "../../cli.js";
import type { DataSource } from "typeorm";
import type { AuditRecord } from "../../core/effects.js";
import type { StoreWrite } from "../../core/store-writes.js";
import type { Subject } from "../../core/room/types.js";
import { RoomStore } from "../../shell/room-store.js";
import { announceImportedRoom } from "../../shell/room-notifications.js";
import { LIVE_ID_PATTERN } from "../../shell/clock.js";
import { bareString, parseJid, type Jid } from "../../xmpp/jid.js";
import { NS_MAM } from "../../xmpp/mam.js";
import { ImportError, SourceRoom, type SourceAffiliation } from "./source.js";
import { mapAffiliation, mapArchivedMessage, mapConfiguration, sourceArchiveId, type UnmappedField } from "./mapping.js";


/** How long to wait for a running gateway to say it serves the imported room. */
const SERVED_TIMEOUT_MS = 15_000;

/** Archive page size asked of the old server (servers cap it: Prosody at 50 by default). */
const PAGE_SIZE = 250;

/** The command line's arguments, with the owner parsed, the password and this gateway's settings. */
export interface ImportRequest extends Omit<ImportArguments, "owner"> {
  owner: Jid;
  password: string;
  /** This gateway's MUC domain and history cap (its configuration). */
  domain: string;
  maxHistoryMessages: number;
  /** Called as pages arrive (a progress bar on a terminal). */
  progress?: (done: number, total: number | undefined) => void;
}

export interface ImportSummary {
  source: string;
  target: string;
  dryRun: boolean;
  resumed: boolean;
  config: { mapped: number; unmapped: UnmappedField[] };
  affiliations: Record<SourceAffiliation["affiliation"], number>;
  subject: boolean;
  messages: { imported: number; skipped: Record<string, number>; resumedAfter: string | null };
  archive: boolean;
  tombstone: boolean;
  /** Whether a running gateway serves the room now ("no-gateway": it will at its next start). */
  served: "served" | "no-gateway" | "timeout" | null;
}

/** The room's newest imported message (by insertion), whose old archive id is where a re-run continues. */
async function resumePoint(dataSource: DataSource, roomJid: string): Promise<string | null> {
  const rows: { stanza_id: string }[] = await dataSource.query(
    `SELECT stanza_id FROM history_messages WHERE room_id = (SELECT id FROM rooms WHERE jid = $1) AND stanza_id !~ $2 ORDER BY id DESC LIMIT 1`,
    [roomJid, LIVE_ID_PATTERN],
  );
  return rows[0] ? sourceArchiveId(rows[0].stanza_id) : null;
}

/** Whether the target exists, and if so whether an earlier import of the same room made it. */
async function targetState(dataSource: DataSource, target: string, source: string): Promise<"absent" | "earlier-import" | "other"> {
  const room: unknown[] = await dataSource.query(`SELECT 1 FROM rooms WHERE jid = $1`, [target]);
  if (room.length === 0) return "absent";
  const started: unknown[] = await dataSource.query(`SELECT 1 FROM audit_events WHERE room_jid = $1 AND kind = 'room.import_started' AND details->>'source' = $2 LIMIT 1`, [target, source]);
  return started.length > 0 ? "earlier-import" : "other";
}

export async function importRoom(request: ImportRequest, dataSource: DataSource | null): Promise<ImportSummary> {
  const sourceJid = parseJid(request.roomJid);
  if (!sourceJid || sourceJid.local === null || sourceJid.resource !== null) throw new ImportError(`not a room JID: ${request.roomJid}`);
  const source = bareString(sourceJid);
  const targetJid = parseJid(`${request.to ?? sourceJid.local}@${request.domain}`);
  if (!targetJid || targetJid.resource !== null) throw new ImportError(`not a valid room name here: ${request.to}`);
  const target = bareString(targetJid);
  const owner = bareString(request.owner);

  let resumed = false;
  if (dataSource) {
    const state = await targetState(dataSource, target, source);
    if (state === "other") throw new ImportError(`${target} already exists here with other content; choose another name with --to`);
    resumed = state === "earlier-import";
  }

  const room = await SourceRoom.connect(source, { owner: request.owner, password: request.password, server: request.server, insecure: request.insecure });
  try {
    const { features } = await room.discover();
    const fields = await room.configuration();
    const lists = { owner: [], admin: [], member: [], outcast: [] } as Record<SourceAffiliation["affiliation"], SourceAffiliation[]>;
    for (const affiliation of ["owner", "admin", "member", "outcast"] as const) lists[affiliation] = await room.affiliations(affiliation);
    const hasArchive = features.has(NS_MAM);
    if (!hasArchive && !request.noArchive) throw new ImportError(`${source} has no archive (MAM); re-run with --no-archive to import the rest`);
    const subject = await room.subject();
    const mapped = mapConfiguration(fields, target, `${owner}/import`, request.maxHistoryMessages);

    const summary: ImportSummary = {
      source,
      target,
      dryRun: request.dryRun,
      resumed,
      config: { mapped: mapped.mapped.length, unmapped: mapped.unmapped },
      affiliations: { owner: lists.owner.length, admin: lists.admin.length, member: lists.member.length, outcast: lists.outcast.length },
      subject: subject.text !== "",
      messages: { imported: 0, skipped: {}, resumedAfter: null },
      archive: !request.noArchive,
      tombstone: false,
      served: null,
    };
    const store = dataSource && !request.dryRun ? new RoomStore(dataSource, request.domain) : null;

    // The room, its settings, lists and subject first (idempotent upserts), in one transaction.
    const roomSubject: Subject | null = subject.text === "" && subject.nick === null ? null : { text: subject.text, nick: subject.nick, at: subject.at ?? new Date() };
    const writes: StoreWrite[] = [{ op: "room.save", roomJid: target, config: mapped.config, subject: roomSubject, locked: false }];
    for (const list of Object.values(lists)) for (const entry of list) writes.push({ op: "affiliation.set", roomJid: target, jid: entry.jid, entry: mapAffiliation(entry) });
    const started: AuditRecord = { kind: "room.import_started", roomJid: target, actorJid: owner, details: { source, server: request.server ?? null, resumed } };
    await store?.commit(writes, [started]);

    if (!request.noArchive) {
      let after = store ? await resumePoint(dataSource!, target) : null;
      summary.messages.resumedAfter = after;
      for (;;) {
        const page = await room.archivePage(after ?? undefined, PAGE_SIZE);
        const rows: StoreWrite[] = [];
        for (const result of page.results) {
          const message = mapArchivedMessage(result, target);
          if ("skipped" in message) summary.messages.skipped[message.skipped] = (summary.messages.skipped[message.skipped] ?? 0) + 1;
          else rows.push({ op: "history.append", roomJid: target, entry: message.entry, archived: true });
        }
        await store?.commit(rows, []);
        summary.messages.imported += rows.length;
        request.progress?.(summary.messages.imported, page.fin.rsm.count);
        const last = page.fin.rsm.last ?? page.results.at(-1)?.id;
        if (page.fin.complete || page.results.length === 0 || last === undefined) break;
        after = last;
      }
    }

    if (dataSource && store) {
      const done: AuditRecord = {
        kind: "room.imported",
        roomJid: target,
        actorJid: owner,
        details: { source, server: request.server ?? null, config: summary.config, affiliations: summary.affiliations, subject: summary.subject, messages: summary.messages, resumed },
      };
      await store.commit([], [done]);
      summary.served = await announceImportedRoom(dataSource, target, SERVED_TIMEOUT_MS);
    }
    if (request.tombstone && !request.dryRun) {
      await room.destroy(target, `This room has moved to ${target}`);
      summary.tombstone = true;
    }
    return summary;
  } finally {
    await room.close();
  }
}

/** The one summary line at the end of an import. */
export function formatSummary(s: ImportSummary): string {
  const skipped = Object.entries(s.messages.skipped).map(([why, n]) => `${n} ${why}`);
  const unmapped = s.config.unmapped.map((u) => `${u.field} (${u.reason})`);
  return [
    `${s.dryRun ? "would import" : "imported"} ${s.source} -> ${s.target}${s.resumed ? " (resumed)" : ""}:`,
    `config ${s.config.mapped} fields${unmapped.length ? `, not mapped: ${unmapped.join(", ")}` : ""};`,
    `affiliations ${s.affiliations.owner} owners, ${s.affiliations.admin} admins, ${s.affiliations.member} members, ${s.affiliations.outcast} outcasts;`,
    `subject ${s.subject ? "yes" : "none"};`,
    s.archive ? `messages ${s.messages.imported}${skipped.length ? `, skipped ${skipped.join(", ")}` : ""}` : "archive not imported (--no-archive)",
    s.served === "served" ? "; the running gateway serves it" : s.served === "no-gateway" ? "; no gateway running: served at its next start" : s.served === "timeout" ? "; the running gateway has not confirmed it serves the room yet" : "",
    s.tombstone ? "; old room destroyed with a pointer here" : "",
  ].join(" ");
}
