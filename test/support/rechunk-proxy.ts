// A TCP proxy that cuts the byte stream towards its client inside multi-byte UTF-8 characters: every
// 2-, 3- and 4-byte character is split, and the cut moves through every inner byte position in turn
// (per character length), so that over a few occurrences each character straddles a read at each of
// its byte positions. Pieces are written one at a time with a pause between them, so that they arrive
// as separate reads at the other end. The other direction is passed through untouched.
//
// It stands between Prosody's component port and the gateway in the UTF-8 test (issue 16 point 1).
import { createServer, connect, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface RechunkProxy {
  /** xmpp://127.0.0.1:PORT, to give the gateway instead of the server's component port. */
  readonly service: string;
  /** How many pieces were written that ended inside a character (a lower bound of split reads). */
  readonly cuts: number;
  stop(): Promise<void>;
}

/** Length of the UTF-8 sequence a lead byte starts (0 for a continuation byte). */
function sequenceLength(byte: number): number {
  if (byte < 0x80) return 1;
  if (byte < 0xc0) return 0;
  if (byte < 0xe0) return 2;
  if (byte < 0xf0) return 3;
  return 4;
}

/** Splits `data` at one inner byte of each multi-byte character; `turn` says which inner byte. */
export function cutInsideCharacters(data: Buffer, turn: Map<number, number>): Buffer[] {
  const pieces: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    const length = sequenceLength(data[i]!);
    if (length < 2 || i + length > data.length) continue;
    const k = turn.get(length) ?? 0;
    turn.set(length, (k + 1) % (length - 1));
    const cut = i + 1 + k; // 1 .. length-1 bytes into the character
    pieces.push(data.subarray(start, cut));
    start = cut;
    i += length - 1;
  }
  pieces.push(data.subarray(start));
  return pieces.filter((p) => p.length > 0);
}

export async function startRechunkProxy(target: { host: string; port: number }, pauseMs = 3): Promise<RechunkProxy> {
  const sockets = new Set<Socket>();
  let cuts = 0;
  const server: Server = createServer((client) => {
    const upstream = connect(target);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    const turn = new Map<number, number>();
    let queue = Promise.resolve();
    client.pipe(upstream);
    upstream.on("data", (data: Buffer) => {
      const pieces = cutInsideCharacters(data, turn);
      queue = queue.then(async () => {
        for (const [index, piece] of pieces.entries()) {
          if (client.destroyed) return;
          client.write(piece);
          if (index < pieces.length - 1) {
            cuts += 1;
            await sleep(pauseMs);
          }
        }
      });
    });
    const close = (): void => {
      void queue.then(() => client.end());
      upstream.destroy();
    };
    upstream.on("close", close);
    upstream.on("error", close);
    client.on("close", () => upstream.destroy());
    client.on("error", () => upstream.destroy());
    for (const s of [client, upstream]) s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    service: `xmpp://127.0.0.1:${port}`,
    get cuts() {
      return cuts;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
