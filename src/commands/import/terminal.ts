// The import command on a terminal: the owner's password asked without echo, and a progress bar.
import { createInterface } from "node:readline";
import { Writable } from "node:stream";

/** Reads a line from the terminal without echoing it; rejects when stdin is not a terminal. */
export async function askPassword(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) throw new Error("no password: set DMUC_IMPORT_PASSWORD or run on a terminal");
  process.stderr.write(prompt);
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
  const rl = createInterface({ input: process.stdin, output: silent, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question("", resolve));
  } finally {
    rl.close();
    process.stderr.write("\n");
  }
}

/** A one-line progress bar on stderr when it is a terminal; nothing otherwise. */
export function progressBar(): ((done: number, total: number | undefined) => void) & { finish(): void } {
  const tty = process.stderr.isTTY === true;
  const width = 30;
  const draw = (done: number, total: number | undefined) => {
    if (!tty) return;
    if (total === undefined || total === 0) {
      process.stderr.write(`\rmessages: ${done}`);
      return;
    }
    const filled = Math.min(width, Math.round((done / total) * width));
    process.stderr.write(`\r[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total} messages`);
  };
  return Object.assign(draw, { finish: () => tty && process.stderr.write("\n") });
}
