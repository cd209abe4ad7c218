// Import rate (issue 11): `dmuc-gateway import`'s own code (importRoom) moving a room with a
// 20,000-message archive out of Prosody's MUC (muc_mam) into a real PostgreSQL, beside the rate at
// which the same Prosody answers the same MAM pages to the same client code with nothing stored: the
// lower bound for any import over XMPP. Ratios matter, not the absolute figures (shared machine).
import xml from "@xmpp/xml";
import { createDataSource } from "../ormconfig.js";
import { importRoom } from "../src/commands/import/run.js";
import { SourceRoom } from "../src/commands/import/source.js";
import { parseJid } from "../src/xmpp/jid.js";
import { connectClient } from "../test/support/client.js";
import { startProsody } from "../test/support/prosody.js";
import { startTestDatabase } from "../test/support/postgres.js";
import { configureRoom, enterRoom, say } from "../test/support/room-client.js";
import { fmt, type BenchOptions, type Report } from "./lib/report.js";

export const name = "import";
export const order = 60;

const SOURCE = "rooms.localhost";
const PAGE = 250;

export async function run(options: BenchOptions): Promise<Report> {
  const messages = options.quick ? 1_000 : 20_000;
  const repetitions = options.quick ? 1 : 2;
  const prosody = await startProsody({
    extraConfig: [
      "storage_archive_item_limit = 1000000",
      `Component "${SOURCE}" "muc"`,
      '\tmodules_enabled = { "muc_mam" }',
      `\tmax_archive_query_results = ${PAGE}`,
    ].join("\n"),
  });
  const db = await startTestDatabase();
  const dataSource = createDataSource(db.url);
  try {
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
    const owner = await connectClient({ service: prosody.c2sService, domain: prosody.host, username: "owner" });
    const room = `archive@${SOURCE}`;
    await enterRoom(owner, room, "Owner");
    await configureRoom(owner, room, { "muc#roomconfig_persistentroom": "1" });
    options.log(`import: filling the archive with ${messages} messages`);
    for (let i = 0; i < messages; i++) {
      await owner.send(xml("message", { to: room, type: "groupchat", id: `m${i}` }, xml("body", {}, `message ${i}: ${"lorem ipsum ".repeat(6)}`)));
      // Keep the pipe bounded: wait for an echo every 500 messages.
      if (i % 500 === 499) await owner.waitFor((el) => el.attrs.id === `m${i}`, 60_000);
    }
    await say(owner, room, "the end");
    await owner.drain();
    await owner.stop();

    const ownerJid = parseJid(`owner@${prosody.host}`)!;
    const rows: (string | number)[][] = [];
    for (let rep = 1; rep <= repetitions; rep++) {
      // The source alone: every page of the archive, read and parsed, nothing stored.
      const reader = await SourceRoom.connect(room, { owner: ownerJid, password: "password", server: prosody.c2sService, insecure: false });
      let read = 0;
      const t0 = performance.now();
      for (let after: string | undefined; ; ) {
        const page = await reader.archivePage(after, PAGE);
        read += page.results.length;
        if (page.fin.complete || page.results.length === 0) break;
        after = page.fin.rsm.last;
      }
      const sourceSeconds = (performance.now() - t0) / 1000;
      await reader.close();

      // The import: the same pages, mapped and stored page by page (plus config, lists, subject).
      const t1 = performance.now();
      const summary = await importRoom(
        { roomJid: room, owner: ownerJid, password: "password", server: prosody.c2sService, to: `imported-${rep}`, tombstone: false, dryRun: false, insecure: false, noArchive: false, domain: "conference.localhost", maxHistoryMessages: 100 },
        dataSource,
      );
      const importSeconds = (performance.now() - t1) / 1000;
      options.log(`import: run ${rep}: source ${fmt(read / sourceSeconds)} msg/s, import ${fmt(summary.messages.imported / importSeconds)} msg/s`);
      rows.push([rep, read, fmt(read / sourceSeconds), summary.messages.imported, fmt(summary.messages.imported / importSeconds), fmt(sourceSeconds / importSeconds, 2)]);
    }
    return {
      tables: [
        {
          title: `Importing a ${messages.toLocaleString("en-US")}-message room from Prosody (muc_mam, pages of ${PAGE})`,
          columns: ["run", "messages read", "Prosody MAM alone (msg/s)", "messages imported", "import (msg/s)", "import / MAM-alone rate"],
          rows,
        },
      ],
      notes: [
        "MAM alone: the importer's own client code pages the archive and parses every result, storing nothing: the rate of the source server and the XMPP path, the lower bound of any import over XMPP.",
        "import: importRoom (what `dmuc-gateway import` runs), into a real PostgreSQL, one transaction per page; it includes logging in, the configuration, the lists and the subject.",
        "Prosody with memory storage for the archive; PostgreSQL without fsync (test settings).",
      ],
    };
  } finally {
    await dataSource.destroy().catch(() => undefined);
    await db.stop();
    await prosody.stop();
  }
}
