// What a benchmark module exports and returns, and how the runner prints it. A benchmark is a module
// in bench/ that exports `name` and `run(options)`; bench/run.ts finds and runs them.

export interface BenchOptions {
  /** Small sizes: a smoke run that checks the benchmark works, not a measurement. */
  quick: boolean;
  /** Progress lines (stderr), so that a long run shows where it is. */
  log(message: string): void;
}

export type Cell = string | number | null | undefined;

export interface Table {
  title: string;
  columns: string[];
  rows: Cell[][];
}

export interface Report {
  /** One or more result tables. */
  tables: Table[];
  /** Settings and caveats that belong with the figures. */
  notes?: string[];
}

export interface BenchModule {
  name: string;
  run(options: BenchOptions): Promise<Report>;
  /** Runs before modules with a higher order (default 100), then by name. */
  order?: number;
  /** Modules that name the same shared rig run back to back and reuse it (see bench/lib/muc-rig.ts). */
  rig?: string;
}

/** A number for a table: fixed decimals below 100, thousands separated above. */
export function fmt(value: number | null | undefined, decimals = 1): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toFixed(decimals);
}

function cellText(cell: Cell): string {
  if (cell === null || cell === undefined) return "-";
  if (typeof cell === "number") return Number.isInteger(cell) ? cell.toLocaleString("en-US") : fmt(cell);
  return cell;
}

/** A Markdown table (readable as plain text too, and pasteable into RESULTS.md). */
export function renderTable(table: Table): string {
  const rows = table.rows.map((row) => table.columns.map((_, i) => cellText(row[i])));
  const widths = table.columns.map((c, i) => Math.max(c.length, 3, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [`**${table.title}**`, "", line(table.columns), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** Prints whatever a module returned: a Report, or (leniently) a single table or a list of rows. */
export function renderReport(name: string, report: unknown): string {
  const out: string[] = [`## ${name}`, ""];
  const r = report as Partial<Report> & Partial<Table> & { rows?: unknown };
  if (Array.isArray(r?.tables)) {
    for (const t of r.tables) out.push(renderTable(t), "");
  } else if (Array.isArray(r?.columns) && Array.isArray(r?.rows)) {
    out.push(renderTable({ title: r.title ?? name, columns: r.columns, rows: r.rows as Cell[][] }), "");
  } else if (Array.isArray(r?.rows) && r.rows.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
    const objects = r.rows as Record<string, Cell>[];
    const columns = [...new Set(objects.flatMap((o) => Object.keys(o)))];
    out.push(renderTable({ title: r.title ?? name, columns, rows: objects.map((o) => columns.map((c) => o[c])) }), "");
  } else {
    out.push("```", JSON.stringify(report, null, 2), "```", "");
  }
  for (const note of r?.notes ?? []) out.push(`- ${note}`);
  return out.join("\n").trimEnd() + "\n";
}
