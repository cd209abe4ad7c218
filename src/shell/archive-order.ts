// The order of a room's messages, in the one place every archive and history query takes it from.
// history_messages.seq: the order occupants saw (times alone cannot give it: messages of one batch
// share their time).
export const ARCHIVE_ORDER_COLUMNS: readonly string[] = ["seq"];

/** The order columns of rows aliased `alias`, for a SELECT list: `h.sent_at, h.id`. */
export function orderColumns(alias: string): string {
  return ARCHIVE_ORDER_COLUMNS.map((c) => `${alias}.${c}`).join(", ");
}

/** The order key of rows aliased `alias`, as a row value: `(h.sent_at, h.id)`, comparable with < and >. */
export function orderKey(alias: string): string {
  return `(${orderColumns(alias)})`;
}

/** An ORDER BY list for rows aliased `alias`, oldest first (ASC) or newest first (DESC). */
export function orderBy(alias: string, direction: "ASC" | "DESC"): string {
  return ARCHIVE_ORDER_COLUMNS.map((c) => `${alias}.${c} ${direction}`).join(", ");
}
