// Structured logging: one line per event on stderr (stdout is kept for command output).
// JSON when stderr is not a terminal, so that log collectors can read it; key=value for people.

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LogSink {
  write(line: string): void;
}

interface LoggerOptions {
  level: LogLevel;
  json: boolean;
  sink: LogSink;
  now: () => Date;
}

function plainValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === "string") return /[\s"=]/.test(value) || value === "" ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? "undefined";
}

function serialisable(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = value instanceof Error ? { message: value.message, name: value.name } : value;
  }
  return out;
}

class LineLogger implements Logger {
  constructor(
    private readonly options: LoggerOptions,
    private readonly context: LogFields,
  ) {}

  debug(event: string, fields?: LogFields): void {
    this.log("debug", event, fields);
  }
  info(event: string, fields?: LogFields): void {
    this.log("info", event, fields);
  }
  warn(event: string, fields?: LogFields): void {
    this.log("warn", event, fields);
  }
  error(event: string, fields?: LogFields): void {
    this.log("error", event, fields);
  }

  child(fields: LogFields): Logger {
    return new LineLogger(this.options, { ...this.context, ...fields });
  }

  private log(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this.options.level)) return;
    const all = { ...this.context, ...fields };
    const time = this.options.now().toISOString();
    if (this.options.json) {
      this.options.sink.write(JSON.stringify({ time, level, event, ...serialisable(all) }) + "\n");
      return;
    }
    const pairs = Object.entries(all)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${plainValue(value)}`);
    this.options.sink.write([time, level.toUpperCase().padEnd(5), event, ...pairs].join(" ") + "\n");
  }
}

export function createLogger(options: Partial<LoggerOptions> = {}): Logger {
  const sink = options.sink ?? process.stderr;
  return new LineLogger(
    {
      level: options.level ?? "info",
      json: options.json ?? !process.stderr.isTTY,
      sink,
      now: options.now ?? (() => new Date()),
    },
    {},
  );
}
