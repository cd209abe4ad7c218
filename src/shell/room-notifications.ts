// Rooms written into the database by another process (the import command) while the gateway runs:
// it LISTENs on the channel the importer NOTIFYs, so an imported room is served at once.
import type { DataSource } from "typeorm";
import type { PoolClient } from "pg";
import type { Logger } from "../log.js";

/** The channel on which an import tells a running gateway that a room is ready to be served. */
export const ROOM_IMPORTED_CHANNEL = "dmuc_room_imported";
/** The channel on which the gateway answers that it serves the room now. */
export const ROOM_SERVED_CHANNEL = "dmuc_room_served";

type Pool = { connect(): Promise<PoolClient> };
const poolOf = (dataSource: DataSource): Pool => (dataSource.driver as unknown as { master: Pool }).master;

/**
 * Tells a running gateway to serve `roomJid` and waits (up to `timeoutMs`) until it says it does, so
 * that the import command returns only once the room answers. "no-gateway" when no gateway listens.
 */
export async function announceImportedRoom(dataSource: DataSource, roomJid: string, timeoutMs: number): Promise<"served" | "no-gateway" | "timeout"> {
  const connection = await poolOf(dataSource).connect();
  try {
    await connection.query(`LISTEN ${ROOM_SERVED_CHANNEL}`);
    const served = new Promise<"served">((resolve) => {
      connection.on("notification", (note) => {
        if (note.channel === ROOM_SERVED_CHANNEL && note.payload === roomJid) resolve("served");
      });
    });
    // A listening gateway's session last ran its LISTEN (it stays idle after it).
    const listeners: { n: number }[] = await connection.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query = $1`,
      [`LISTEN ${ROOM_IMPORTED_CHANNEL}`],
    ).then((r: { rows: { n: number }[] }) => r.rows);
    await connection.query(`SELECT pg_notify($1, $2)`, [ROOM_IMPORTED_CHANNEL, roomJid]);
    if ((listeners[0]?.n ?? 0) === 0) return "no-gateway";
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
    try {
      return await Promise.race([served, timeout]);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await connection.query(`UNLISTEN ${ROOM_SERVED_CHANNEL}`).catch(() => undefined);
    connection.removeAllListeners("notification");
    connection.release();
  }
}

const RETRY_MS = 5_000;

/** Calls `onRoom` with the JID of each room announced on the channel; returns a stop function. */
export function listenForImportedRooms(dataSource: DataSource, log: Logger, onRoom: (roomJid: string) => void): () => Promise<void> {
  let stopped = false;
  let client: PoolClient | null = null;
  let retry: NodeJS.Timeout | null = null;

  const listen = async (): Promise<void> => {
    try {
      // A connection of TypeORM's own pool, kept checked out: LISTEN lasts as long as its session.
      const connection = await poolOf(dataSource).connect();
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
