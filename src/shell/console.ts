// The operator console: a read-only page on the HTTP endpoint, behind DMUC_CONSOLE_TOKEN, rendered
// on the server from the live service state (no script, so it works behind any proxy and needs no
// build): the rooms with their occupants and last activity, the DMUC2 links with their state, and the
// remote rooms served as a replica. /console/api/state gives the same as JSON.
//
// Sign-in: /console?token=TOKEN sets an HttpOnly, SameSite=Strict cookie and redirects to /console,
// so the token leaves the address bar; scripts send "Authorization: Bearer TOKEN".
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServiceState } from "../core/service.js";
import { summarise, type RoomSummary } from "../../plugins/admin-commands.js";
import { send, type Handler } from "./http.js";

const COOKIE = "dmuc_console";
const REFRESH_SECONDS = 10;

export interface ConsoleSource {
  domain: string;
  version: string;
  startedAt: Date;
  state(): ServiceState;
  notReady(): Promise<string[]>;
}

interface LinkRow {
  room: string;
  peer: string;
  domain: string;
  role: "primary" | "replica";
  state: string;
  since: string | null;
  lastHeard: string | null;
}

export interface ConsoleState {
  domain: string;
  version: string;
  startedAt: string;
  problems: string[];
  rooms: (RoomSummary & { nicks: string[] })[];
  links: LinkRow[];
}

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined || ms === 0 ? null : new Date(ms).toISOString());

async function snapshot(source: ConsoleSource): Promise<ConsoleState> {
  const state = source.state();
  const rooms = [...state.rooms.values()]
    .map((room) => ({ ...summarise(room), nicks: [...room.occupants.keys()].sort((a, b) => a.localeCompare(b)) }))
    .sort((a, b) => (b.lastActivity ?? "").localeCompare(a.lastActivity ?? "") || a.jid.localeCompare(b.jid));
  const links: LinkRow[] = [];
  for (const [room, replicas] of state.dmuc.links) {
    for (const link of replicas.values()) {
      links.push({ room, peer: link.replicaJid, domain: link.domain, role: "primary", state: link.state, since: iso(link.splitSince), lastHeard: iso(link.lastHeard) });
    }
  }
  for (const room of state.dmuc.replicated.values()) {
    links.push({
      room: room.roomJid,
      peer: room.primaryJid,
      domain: room.primaryJid.split("@")[1] ?? "",
      role: "replica",
      state: room.splitSince === null ? "active" : "split",
      since: iso(room.splitSince),
      lastHeard: iso(room.lastHeard),
    });
  }
  links.sort((a, b) => a.room.localeCompare(b.room) || a.peer.localeCompare(b.peer));
  return { domain: source.domain, version: source.version, startedAt: source.startedAt.toISOString(), problems: await source.notReady(), rooms, links };
}

// ---------------------------------------------------------------------------------------------
// Rendering

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function ago(isoTime: string | null, now: number): string {
  if (!isoTime) return '<span class="muted">never</span>';
  const seconds = Math.max(0, Math.round((now - Date.parse(isoTime)) / 1000));
  const text = seconds < 60 ? `${seconds} s ago` : seconds < 3600 ? `${Math.round(seconds / 60)} min ago` : seconds < 86400 ? `${Math.round(seconds / 3600)} h ago` : `${Math.round(seconds / 86400)} d ago`;
  return `<time datetime="${escape(isoTime)}" title="${escape(isoTime)}">${text}</time>`;
}

const badge = (text: string, kind: string) => `<span class="badge ${kind}">${escape(text)}</span>`;

function roomRows(state: ConsoleState, now: number): string {
  if (state.rooms.length === 0) return `<tr><td colspan="4" class="empty">No rooms yet.</td></tr>`;
  return state.rooms
    .map((room) => {
      const [local] = room.jid.split("@");
      const flags = [
        room.persistent ? badge("persistent", "info") : badge("temporary", "plain"),
        room.public ? "" : badge("hidden", "plain"),
        room.membersOnly ? badge("members only", "plain") : "",
        room.passwordProtected ? badge("password", "plain") : "",
        room.locked ? badge("locked", "warn") : "",
      ].join(" ");
      const people = room.nicks.length === 0 ? '<span class="muted">nobody</span>' : room.nicks.map((n) => `<span class="nick">${escape(n)}</span>`).join(" ");
      return `<tr>
  <td><div class="room-name">${escape(room.name || local || room.jid)}</div><div class="jid">${escape(room.jid)}</div></td>
  <td><span class="count">${room.occupants}</span> ${people}</td>
  <td>${flags}</td>
  <td>${ago(room.lastActivity, now)}</td>
</tr>`;
    })
    .join("\n");
}

function linkRows(state: ConsoleState, now: number): string {
  if (state.links.length === 0) return `<tr><td colspan="4" class="empty">No DMUC2 links: every room is served directly.</td></tr>`;
  const kind = (s: string) => (s === "active" ? "ok" : s === "split" ? "bad" : "warn");
  return state.links
    .map(
      (link) => `<tr>
  <td><div class="jid">${escape(link.room)}</div></td>
  <td>${escape(link.role === "primary" ? "replica" : "primary")} <span class="jid">${escape(link.peer)}</span></td>
  <td>${badge(link.state, kind(link.state))}${link.since ? ` <span class="muted">since ${ago(link.since, now)}</span>` : ""}</td>
  <td>${ago(link.lastHeard, now)}</td>
</tr>`,
    )
    .join("\n");
}

const STYLE = `
:root { color-scheme: light; --bg: #f5f6f8; --card: #fff; --text: #1d2330; --muted: #6b7383; --line: #e3e6ec;
  --accent: #3b5bdb; --ok: #2b8a3e; --ok-bg: #e6f4ea; --bad: #c92a2a; --bad-bg: #fdecec; --warn: #a76200; --warn-bg: #fff4e0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; background: var(--bg); color: var(--text); }
header { background: #1d2330; color: #fff; padding: 18px 32px; display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; }
header h1 { font-size: 20px; margin: 0; font-weight: 600; }
header .domain { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; color: #c5cbe0; }
header .status { margin-left: auto; font-size: 14px; }
main { padding: 24px 32px 48px; max-width: 1200px; margin: 0 auto; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 16px; margin-bottom: 24px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px; }
.card .value { font-size: 28px; font-weight: 650; }
.card .label { color: var(--muted); font-size: 13px; text-transform: uppercase; letter-spacing: .04em; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; margin-bottom: 24px; overflow: hidden; }
section h2 { font-size: 16px; margin: 0; padding: 14px 18px; border-bottom: 1px solid var(--line); }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; padding: 10px 18px; background: #fafbfc; }
td { padding: 12px 18px; border-top: 1px solid var(--line); vertical-align: top; }
.room-name { font-weight: 600; }
.jid { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 13px; color: var(--muted); }
.count { display: inline-block; min-width: 22px; font-weight: 650; }
.nick { display: inline-block; background: #eef1fb; color: var(--accent); border-radius: 12px; padding: 1px 9px; margin: 1px 2px; font-size: 13px; }
.badge { display: inline-block; border-radius: 6px; padding: 1px 8px; font-size: 12px; font-weight: 600; }
.badge.ok { background: var(--ok-bg); color: var(--ok); } .badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.warn { background: var(--warn-bg); color: var(--warn); } .badge.info { background: #eef1fb; color: var(--accent); }
.badge.plain { background: #f0f1f4; color: var(--muted); }
.muted { color: var(--muted); }
.empty { color: var(--muted); text-align: center; padding: 28px; }
.problems { background: var(--bad-bg); color: var(--bad); border: 1px solid #f5c2c2; border-radius: 10px; padding: 12px 18px; margin-bottom: 24px; }
footer { color: var(--muted); font-size: 13px; text-align: center; }
`;

export function renderConsole(state: ConsoleState, now = Date.now()): string {
  const occupants = state.rooms.reduce((n, r) => n + r.occupants, 0);
  const split = state.links.filter((l) => l.state === "split").length;
  const status = state.problems.length === 0 ? badge("ready", "ok") : badge("not ready", "bad");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<title>dmuc-gateway · ${escape(state.domain)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>dmuc-gateway</h1><span class="domain">${escape(state.domain)}</span><span class="status">${status} <span class="muted">version ${escape(state.version)}, started ${ago(state.startedAt, now)}</span></span></header>
<main>
${state.problems.length > 0 ? `<div class="problems">${state.problems.map(escape).join("<br>")}</div>` : ""}
<div class="cards">
  <div class="card"><div class="value">${state.rooms.length}</div><div class="label">Rooms</div></div>
  <div class="card"><div class="value">${occupants}</div><div class="label">Occupants</div></div>
  <div class="card"><div class="value">${state.links.length - split}</div><div class="label">DMUC2 links up</div></div>
  <div class="card"><div class="value">${split}</div><div class="label">DMUC2 links split</div></div>
</div>
<section id="rooms"><h2>Rooms</h2>
<table><thead><tr><th>Room</th><th>Occupants</th><th>Settings</th><th>Last activity</th></tr></thead>
<tbody>
${roomRows(state, now)}
</tbody></table></section>
<section id="links"><h2>DMUC2 links</h2>
<table><thead><tr><th>Room</th><th>Peer</th><th>State</th><th>Last heard</th></tr></thead>
<tbody>
${linkRows(state, now)}
</tbody></table></section>
<footer>Read-only. Refreshes every ${REFRESH_SECONDS} s. JSON: <span class="jid">/console/api/state</span></footer>
</main>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// Access

const digest = (text: string) => createHash("sha256").update(text).digest();

function tokenOf(request: IncomingMessage, url: URL): string | undefined {
  const auth = request.headers.authorization;
  if (auth?.startsWith("Bearer ")) return auth.slice(7).trim();
  const fromQuery = url.searchParams.get("token");
  if (fromQuery !== null) return fromQuery;
  const cookie = (request.headers.cookie ?? "").split(";").map((c) => c.trim()).find((c) => c.startsWith(`${COOKIE}=`));
  return cookie ? decodeURIComponent(cookie.slice(COOKIE.length + 1)) : undefined;
}

const HEADERS = { "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'", "referrer-policy": "no-referrer" };

/** The console's routes, guarded by the token. */
export function consoleRoutes(token: string, source: ConsoleSource): [string, Handler][] {
  const expected = digest(token);
  const allowed = (request: IncomingMessage, url: URL) => {
    const given = tokenOf(request, url);
    return given !== undefined && timingSafeEqual(digest(given), expected);
  };
  const refuse = (response: ServerResponse) =>
    send(response, 401, "text/html; charset=utf-8", `<!doctype html><title>dmuc-gateway console</title><p>Open this page with <code>?token=</code> and the console token (DMUC_CONSOLE_TOKEN).</p>`, {
      ...HEADERS,
      "www-authenticate": 'Bearer realm="dmuc-gateway console"',
    });
  return [
    [
      "/console",
      async (request, response, url) => {
        if (!allowed(request, url)) return refuse(response);
        if (url.searchParams.has("token")) {
          // Keep the token out of the address bar, the history and the logs of proxies.
          response.writeHead(303, { location: "/console", "set-cookie": `${COOKIE}=${encodeURIComponent(tokenOf(request, url)!)}; HttpOnly; SameSite=Strict; Path=/console`, ...HEADERS });
          response.end();
          return;
        }
        send(response, 200, "text/html; charset=utf-8", renderConsole(await snapshot(source)), HEADERS);
      },
    ],
    [
      "/console/api/state",
      async (request, response, url) => {
        if (!allowed(request, url)) return refuse(response);
        send(response, 200, "application/json", JSON.stringify(await snapshot(source), null, 2), HEADERS);
      },
    ],
  ];
}
