// Rooms written into the database by another process (the import command) while the gateway runs:
// it LISTENs on the channel the importer NOTIFYs, so an imported room is served at once.
import type { DataSource } from "typeorm";
import type { PoolClient } from "pg";
import type { Logger } from "../log.js";
import { ROOM_IMPORTED_CHANNEL } from "../commands/import/run.js";

const RETRY_MS = 5_000;

/** Calls `onRoom` with the JID of each room announced on the channel; returns a stop function. */
export function listenForImportedRooms(dataSource: DataSource, log: Logger, onRoom: (roomJid: string) => void): () => Promise<void> {
  let stopped = false;
  let client: PoolClient | null = null;
  let retry: NodeJS.Timeout | null = null;

  const listen = async (): Promise<void> => {
    try {
      // A connection of TypeORM's own pool, kept checked out: LISTEN lasts as long as its session.
      const pool = (dataSource.driver as unknown as { master: { connect(): Promise<PoolClient> } }).master;
      const connection = await pool.connect();
      if (stopped) {
        connection.release();
        return;
      }
      client = connection;
      connection.on("notification", (note) => {
        if (note.channel === ROOM_IMPORTED_CHANNEL && note.payload) onRoom(note.payload);
      });
      connection.on("error", (err) => {
        log.warn("db.listen_lost", { error: err });
        connection.release(err);
        client = null;
        if (!stopped) retry = setTimeout(() => void listen(), RETRY_MS);
      });
      await connection.query(`LISTEN ${ROOM_IMPORTED_CHANNEL}`);
    } catch (err) {
      log.warn("db.listen_failed", { error: err, retryInMs: RETRY_MS });
      if (!stopped) retry = setTimeout(() => void listen(), RETRY_MS);
    }
  };
  void listen();

  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    const connection = client;
    client = null;
    if (connection) {
      await connection.query(`UNLISTEN ${ROOM_IMPORTED_CHANNEL}`).catch(() => undefined);
      connection.release();
    }
  };
}
