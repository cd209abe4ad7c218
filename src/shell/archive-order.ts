// The order of a room's messages, in the one place every archive and history query takes it from.
// For now: the room's time, then the row id (insertion order) for messages of the same instant. When
// history_messages gains an explicit room order column, it replaces this list.
export const ARCHIVE_ORDER_COLUMNS: readonly string[] = ["sent_at", "id"];

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
