// The operator's commands to a running gateway, over its database: `dmuc-gateway rooms ...` sends a
// NOTIFY on dmuc_admin; the gateway that holds the domain's lock (src/db/domain-lease.ts) LISTENs,
// runs the command in its own state (so it is effective at once: occupants are told, disco changes)
// and answers on dmuc_admin_reply, after the writes it caused are committed. A NOTIFY payload is at
// most 8000 bytes: answers go in numbered parts.
import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { AdminCommand, AdminResult } from "../../plugins/admin-commands.js";
import type { Logger } from "../log.js";

const REQUESTS = "dmuc_admin";
const REPLIES = "dmuc_admin_reply";
const PART_CHARS = 6000;

interface Request {
  id: string;
  domain: string;
  command: AdminCommand;
}

export type AdminReply = { ok: true; result: AdminResult } | { ok: false; error: string; kind?: string };

interface ReplyPart {
  id: string;
  part: number;
  parts: number;
  data: string;
}

const OPS = new Set(["rooms.list", "rooms.show", "rooms.create", "rooms.destroy", "occupants"]);

function parseRequest(payload: string): Request | null {
  try {
    const value = JSON.parse(payload) as Partial<Request>;
    if (typeof value.id !== "string" || typeof value.domain !== "string") return null;
    const command = value.command as { op?: unknown; room?: unknown } | undefined;
    if (!command || typeof command.op !== "string" || !OPS.has(command.op)) return null;
    if (command.op !== "rooms.list" && typeof command.room !== "string") return null;
    return value as Request;
  } catch {
    return null;
  }
}

/** The gateway's side: LISTENs on the lock connection and runs what comes for its domain. */
export async function serveAdminChannel(client: pg.Client, domain: string, run: (command: AdminCommand) => Promise<AdminReply>, log: Logger): Promise<void> {
  client.on("notification", (message) => {
    if (message.channel !== REQUESTS || !message.payload) return;
    const request = parseRequest(message.payload);
    if (!request) {
      log.warn("admin.bad_request", { payload: message.payload.slice(0, 200) });
      return;
    }
    if (request.domain !== domain) return;
    log.info("admin.command", { op: request.command.op, room: "room" in request.command ? request.command.room : undefined });
    void run(request.command)
      .catch((err: unknown): AdminReply => ({ ok: false, error: (err as Error).message }))
      .then((reply) => sendReply(client, request.id, reply))
      .catch((err: unknown) => log.warn("admin.reply_failed", { error: err }));
  });
  await client.query(`LISTEN ${REQUESTS}`);
}

async function sendReply(client: pg.Client, id: string, reply: AdminReply): Promise<void> {
  const data = JSON.stringify(reply);
  const parts = Math.max(1, Math.ceil(data.length / PART_CHARS));
  for (let part = 0; part < parts; part++) {
    const payload: ReplyPart = { id, part, parts, data: data.slice(part * PART_CHARS, (part + 1) * PART_CHARS) };
    await client.query("SELECT pg_notify($1, $2)", [REPLIES, JSON.stringify(payload)]);
  }
}

/** The command line's side: sends a command to the gateway of `domain` and waits for its answer. */
export async function askGateway(client: pg.Client, domain: string, command: AdminCommand, timeoutMs = 15_000): Promise<AdminReply> {
  const id = randomUUID();
  const parts: string[] = [];
  let received = 0;
  await client.query(`LISTEN ${REPLIES}`);
  const answer = new Promise<AdminReply>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off("notification", onNotification);
      reject(new Error(`the gateway serving ${domain} did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const onNotification = (message: pg.Notification) => {
      if (message.channel !== REPLIES || !message.payload) return;
      const part = JSON.parse(message.payload) as ReplyPart;
      if (part.id !== id) return;
      parts[part.part] = part.data;
      received++;
      if (received < part.parts) return;
      clearTimeout(timer);
      client.off("notification", onNotification);
      resolve(JSON.parse(parts.join("")) as AdminReply);
    };
    client.on("notification", onNotification);
  });
  answer.catch(() => undefined);
  const request: Request = { id, domain, command };
  await client.query("SELECT pg_notify($1, $2)", [REQUESTS, JSON.stringify(request)]);
  return answer;
}
