// Streams the rows of one query through a PostgreSQL cursor (pg-cursor), a page at a time, so that
// exports and verification of millions of rows run in constant memory. The query sees one snapshot.
import Cursor from "pg-cursor";
import type pg from "pg";
import type { DataSource } from "typeorm";

const PAGE_ROWS = 2000;

export async function* cursorPages<T>(dataSource: DataSource, sql: string, params: unknown[]): AsyncGenerator<T[]> {
  const runner = dataSource.createQueryRunner("slave");
  await runner.connect();
  // TypeORM's Postgres runner holds its pg client here once connected.
  const client = (runner as unknown as { databaseConnection: pg.PoolClient }).databaseConnection;
  const cursor = client.query(new Cursor<T>(sql, params));
  try {
    for (;;) {
      const rows = await cursor.read(PAGE_ROWS);
      if (rows.length === 0) return;
      yield rows;
    }
  } finally {
    await cursor.close();
    await runner.release();
  }
}

/** Calls `onRow` for every row, in order. */
export async function streamRows<T>(dataSource: DataSource, sql: string, params: unknown[], onRow: (row: T) => void): Promise<void> {
  for await (const page of cursorPages<T>(dataSource, sql, params)) for (const row of page) onRow(row);
}
