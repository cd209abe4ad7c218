// Waiting for what an operator sees in PostgreSQL: a row, polled, with a bound.
import pg from "pg";

/** Polls `query` on `url` until it returns a row, or fails after `ms`. */
export async function untilRow(url: string, query: string, params: unknown[], what: string, ms = 30_000): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const end = Date.now() + ms; ; ) {
      if ((await client.query(query, params)).rows.length > 0) return;
      if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await client.end();
  }
}

/** The primary's row for its link of `room` to `replica` is active (what `dmuc-gateway links` shows). */
export const untilLinkActive = (url: string, room: string, replica: string, ms?: number): Promise<void> =>
  untilRow(url, `SELECT 1 FROM replicas p JOIN rooms r ON r.id = p.room_id WHERE r.jid = $1 AND p.replica_jid = $2 AND p.state = 'active'`, [room, replica], `the link of ${room} to ${replica} active`, ms);

/** The replica's copy of `room` lists a session of `bareJid` among the sessions it serves. */
export const untilServedByReplica = (url: string, room: string, bareJid: string, ms?: number): Promise<void> =>
  untilRow(url, `SELECT 1 FROM occupants o JOIN rooms r ON r.id = o.room_id WHERE r.jid = $1 AND r.role = 'replica' AND o.real_jid LIKE $2`, [room, `${bareJid}/%`], `${bareJid} served by the replica of ${room}`, ms);
