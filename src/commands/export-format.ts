// Writing exported rows as a table (for people), JSON, NDJSON or CSV (for tools), a page at a time:
// nothing is buffered beyond one page, and writes wait for the output to drain. CSV is written
// here rather than with a library: quoting per RFC 4180 is a few lines.
import { createHmac } from "node:crypto";
import type { Writable } from "node:stream";

export const FORMATS = ["table", "json", "ndjson", "csv"] as const;
export type Format = (typeof FORMATS)[number];

/** One exported row: its columns in order, as plain values. */
export type ExportRow = Record<string, string | number | boolean | null | object>;

export interface RowWriter {
  page(rows: ExportRow[]): Promise<void>;
  end(): Promise<void>;
}

async function write(out: Writable, text: string): Promise<void> {
  if (text === "" || out.write(text)) return;
  await new Promise<void>((resolve) => out.once("drain", resolve));
}

const cell = (value: unknown): string => (value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value));

function csvField(value: unknown): string {
  const text = cell(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * A table for a terminal: column widths come from the first page (later longer values overflow),
 * and `table` columns that hold JSON are shown compact at the end of the line.
 */
function tableWriter(out: Writable, columns: readonly string[]): RowWriter {
  let widths: number[] | undefined;
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths![i]!))).join("  ").trimEnd() + "\n";
  return {
    async page(rows) {
      const cells = rows.map((r) => columns.map((c) => cell(r[c])));
      if (!widths) {
        widths = columns.map((c, i) => Math.min(48, Math.max(c.length, ...cells.map((row) => row[i]!.length))));
        await write(out, line(columns.map((c) => c.toUpperCase())));
      }
      await write(out, cells.map(line).join(""));
    },
    async end() {
      if (!widths) await write(out, "no rows\n");
    },
  };
}

export function rowWriter(format: Format, out: Writable, columns: readonly string[], tableColumns: readonly string[] = columns): RowWriter {
  switch (format) {
    case "table":
      return tableWriter(out, tableColumns);
    case "ndjson":
      return { page: (rows) => write(out, rows.map((r) => JSON.stringify(r) + "\n").join("")), end: async () => undefined };
    case "csv": {
      let header = false;
      return {
        async page(rows) {
          const head = header ? "" : columns.join(",") + "\r\n";
          header = true;
          await write(out, head + rows.map((r) => columns.map((c) => csvField(r[c])).join(",") + "\r\n").join(""));
        },
        end: async () => (header ? undefined : write(out, columns.join(",") + "\r\n")),
      };
    }
    case "json": {
      let first = true;
      return {
        async page(rows) {
          const text = rows.map((r) => {
            const item = (first ? "[\n" : ",\n") + JSON.stringify(r);
            first = false;
            return item;
          });
          await write(out, text.join(""));
        },
        end: () => write(out, first ? "[]\n" : "\n]\n"),
      };
    }
  }
}

/**
 * Replaces real JIDs by stable pseudonyms (DMUC_PSEUDONYMISE_EXPORTS): HMAC-SHA256 under the
 * component secret, so that one user has the same pseudonym in every export of this service.
 * The domain stays; the local part and the resource are replaced.
 */
export class Pseudonymiser {
  constructor(private readonly key: string | null) {}

  get enabled(): boolean {
    return this.key !== null;
  }

  jid(value: string | null): string | null {
    if (this.key === null || value === null) return value;
    const at = value.indexOf("@");
    if (at < 0) return value; // a server or component, not a person
    const slash = value.indexOf("/", at);
    const bare = slash < 0 ? value : value.slice(0, slash);
    const domain = bare.slice(at + 1);
    const tag = (text: string) => createHmac("sha256", this.key!).update(text).digest("hex").slice(0, 12);
    return `u-${tag(bare.toLowerCase())}@${domain}${slash < 0 ? "" : `/r-${tag(bare.toLowerCase() + value.slice(slash))}`}`;
  }

  /** The JID-valued fields of audit details: jid, to, and anything named ...Jid. */
  details(details: Record<string, unknown>): Record<string, unknown> {
    if (this.key === null) return details;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(details)) out[k] = typeof v === "string" && (k === "jid" || k === "to" || /Jid$/.test(k)) ? this.jid(v) : v;
    return out;
  }
}
