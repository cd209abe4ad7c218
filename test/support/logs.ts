// Line-oriented view of a server's log, shared by the Prosody and gateway helpers. Tests synchronise on
// what a server says it did ("component authenticated", "xmpp.online") instead of sleeping, which
// keeps them deterministic on a slow or busy machine.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";

const POLL_MS = 20;

export interface WaitForLogOptions {
  /** Only lines from this index on (see LineLog.mark()); default 0, the whole log. */
  from?: number;
  /** Gives up early (rejects) when aborted. */
  signal?: AbortSignal;
}

export class LineLog {
  /** Complete lines so far (an unterminated last line is held back until its newline arrives). */
  readonly lines: string[] = [];
  private partial = "";
  private readonly decoder = new StringDecoder("utf8");
  private fileOffset = 0;

  /**
   * @param name for error messages
   * @param file when given, lines are read from this file (which may not exist yet) on every check;
   *             otherwise the owner feeds them with push()
   * @param failure checked while waiting: a reason to stop waiting (e.g. "the process exited")
   */
  constructor(
    private readonly name: string,
    private readonly file?: string,
    private readonly failure?: () => string | undefined,
  ) {}

  push(chunk: Buffer | string): void {
    const text = this.partial + (typeof chunk === "string" ? chunk : this.decoder.write(chunk));
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    for (const line of parts) this.lines.push(line.endsWith("\r") ? line.slice(0, -1) : line);
  }

  /** Takes in an unterminated last line (the writer is gone). */
  end(): void {
    this.refresh();
    this.push(this.decoder.end() + "\n");
    if (this.lines.at(-1) === "") this.lines.pop();
  }

  /** Reads what was appended to the file since the last call. */
  refresh(): void {
    if (!this.file) return;
    let fd: number;
    try {
      fd = openSync(this.file, "r");
    } catch {
      return; // not created yet
    }
    try {
      const size = fstatSync(fd).size;
      while (this.fileOffset < size) {
        const buffer = Buffer.alloc(Math.min(size - this.fileOffset, 1 << 20));
        const n = readSync(fd, buffer, 0, buffer.length, this.fileOffset);
        if (n === 0) break;
        this.fileOffset += n;
        this.push(buffer.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
  }

  /** The index the next line will have: pass it as `from` to wait only for what comes after now. */
  mark(): number {
    this.refresh();
    return this.lines.length;
  }

  text(): string {
    this.refresh();
    return this.lines.join("\n") + (this.partial ? "\n" + this.partial : "");
  }

  tail(n = 30): string {
    this.refresh();
    return [...this.lines.slice(-n), ...(this.partial ? [this.partial] : [])].join("\n");
  }

  /** Resolves with the match of the first line (from `from` on) that matches `regex`. */
  waitFor(regex: RegExp, timeoutMs: number, options: WaitForLogOptions = {}): Promise<RegExpExecArray> {
    return this.waitForLine(
      (line) => {
        regex.lastIndex = 0;
        return regex.exec(line) ?? undefined;
      },
      String(regex),
      timeoutMs,
      options,
    );
  }

  /** Resolves with the first non-undefined result of `test` on the lines from `from` on. */
  waitForLine<T>(test: (line: string) => T | undefined, what: string, timeoutMs: number, options: WaitForLogOptions = {}): Promise<T> {
    let index = options.from ?? 0;
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | undefined, found?: T) => {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve(found as T);
      };
      const fail = (why: string) => finish(new Error(`${why} while waiting for ${what} in ${this.name}; its last lines:\n${this.tail()}`));
      const check = (): void => {
        this.refresh();
        for (; index < this.lines.length; index++) {
          const found = test(this.lines[index]!);
          if (found !== undefined) return finish(undefined, found);
        }
        const failure = this.failure?.();
        if (failure) fail(failure);
      };
      const onAbort = () => fail("aborted");
      const poll = setInterval(check, POLL_MS);
      const timer = setTimeout(() => {
        check(); // a last look, so that a line written just now still counts
        fail(`timed out after ${timeoutMs} ms`);
      }, timeoutMs);
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      check();
    });
  }
}
