// The operator console: read-only pages on the HTTP endpoint, behind DMUC_CONSOLE_TOKEN, rendered
// on the server (no script, so it works behind any proxy and needs no build). The overview, from the
// live service state: the rooms with their occupants and last activity, the DMUC2 links (as primary
// and as replica) with their state, lag and last netjoin. The audit search (/console/audit): the
// audit trail by room, JID, kind and time, paged, newest first, from the queries of `dmuc-gateway
// audit`. /console/api/state and /console/api/audit give the same as JSON.
//
// Sign-in: /console?token=TOKEN sets an HttpOnly, SameSite=Strict cookie and redirects to /console,
// so the token leaves the address bar; scripts send "Authorization: Bearer TOKEN".
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServiceState } from "../core/service.js";
import { summarise, type RoomSummary } from "../../plugins/admin-commands.js";
import { send, type Handler } from "./http.js";
import { linkEnds, type LinkRole, type NetjoinRecord } from "./link-watch.js";
// Loaded when the audit search is first used: class-validator takes about a second to load, which
// the gateway's start (≤ 3 s, test/e2e/package.test.ts) should not pay.
import type { AuditPage, AuditSearch, AuditSearchParams } from "./audit-search.js";
import type { ExportRow } from "../commands/export-format.js";

const COOKIE = "dmuc_console";
const REFRESH_SECONDS = 10;

export interface ConsoleSource {
  domain: string;
  version: string;
  startedAt: Date;
  state(): ServiceState;
  notReady(): Promise<string[]>;
  lastNetjoin(role: LinkRole, room: string, peer: string): NetjoinRecord | undefined;
  searchAudit(search: AuditSearch): Promise<AuditPage>;
  now?(): number;
}

export interface LinkRow {
  room: string;
  peer: string;
  domain: string;
  role: LinkRole;
  state: string;
  since: string | null;
  lastHeard: string | null;
  /** Stanzas on the link the other end has not acknowledged, and the age of the oldest sent (s). */
  unacked: number;
  oldestUnackedSeconds: number;
  /** While split: messages the netjoin will carry across. */
  splitBacklog: number;
  /** The last netjoin since the gateway started: when, and how long the merge took (s). */
  lastNetjoin: string | null;
  lastNetjoinSeconds: number | null;
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
  const now = source.now?.() ?? Date.now();
  const rooms = [...state.rooms.values()]
    .map((room) => ({ ...summarise(room), nicks: [...room.occupants.keys()].sort((a, b) => a.localeCompare(b)) }))
    .sort((a, b) => (b.lastActivity ?? "").localeCompare(a.lastActivity ?? "") || a.jid.localeCompare(b.jid));
  const links: LinkRow[] = linkEnds(state, now).map((end) => {
    const netjoin = source.lastNetjoin(end.role, end.room, end.peer);
    return {
      room: end.room,
      peer: end.peer,
      domain: end.domain,
      role: end.role,
      state: end.state,
      since: iso(end.splitSince),
      lastHeard: iso(end.lastHeard),
      unacked: end.unacked,
      oldestUnackedSeconds: end.oldestUnackedSeconds,
      splitBacklog: end.splitBacklog,
      lastNetjoin: iso(netjoin?.at),
      lastNetjoinSeconds: netjoin?.netjoinSeconds ?? null,
    };
  });
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

function seconds(value: number): string {
  return value < 10 ? `${value.toFixed(1)} s` : value < 120 ? `${Math.round(value)} s` : `${Math.round(value / 60)} min`;
}

function lagCell(link: LinkRow): string {
  const parts: string[] = [];
  if (link.state === "split") parts.push(`${link.splitBacklog} message${link.splitBacklog === 1 ? "" : "s"} to catch up at netjoin`);
  if (link.unacked > 0) {
    const oldest = link.oldestUnackedSeconds > 0 ? `, oldest sent ${seconds(link.oldestUnackedSeconds)} ago` : link.state === "split" ? ", held" : "";
    parts.push(`${link.unacked} unacknowledged${oldest}`);
  }
  if (parts.length === 0) return '<span class="lag muted">none</span>';
  return `<span class="lag">${parts.join("; ")}</span>`;
}

function netjoinCell(link: LinkRow, now: number): string {
  if (link.lastNetjoin === null) return '<span class="muted">none</span>';
  return `${ago(link.lastNetjoin, now)}${link.lastNetjoinSeconds === null ? "" : ` <span class="muted">in ${seconds(link.lastNetjoinSeconds)}</span>`}`;
}

function linkRows(state: ConsoleState, now: number): string {
  if (state.links.length === 0) return `<tr><td colspan="6" class="empty">No DMUC2 links: every room is served directly.</td></tr>`;
  const kind = (s: string) => (s === "active" ? "ok" : s === "split" ? "bad" : "warn");
  return state.links
    .map(
      (link) => `<tr data-room="${escape(link.room)}" data-peer="${escape(link.peer)}" data-role="${link.role}" data-state="${escape(link.state)}">
  <td><div class="jid">${escape(link.room)}</div></td>
  <td>${escape(link.role === "primary" ? "replica" : "primary")} <span class="jid">${escape(link.peer)}</span></td>
  <td class="state">${badge(link.state, kind(link.state))}${link.since ? ` <span class="muted">since ${ago(link.since, now)}</span>` : ""}</td>
  <td>${lagCell(link)}</td>
  <td class="netjoin">${netjoinCell(link, now)}</td>
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
header nav { display: flex; gap: 4px; margin-left: 16px; }
header nav a { color: #c5cbe0; text-decoration: none; padding: 3px 10px; border-radius: 6px; font-size: 14px; }
header nav a[aria-current] { background: #3a4256; color: #fff; }
.lag { font-size: 13px; }
form.search { display: flex; flex-wrap: wrap; gap: 12px 16px; align-items: flex-end; padding: 14px 18px; }
form.search label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; gap: 4px; }
form.search input { font: 14px ui-monospace, "SFMono-Regular", Menlo, monospace; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; min-width: 200px; }
form.search button { font: inherit; padding: 7px 18px; border: 0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
section .problems { margin: 0 18px 14px; }
.scroll { overflow-x: auto; }
#events td { overflow-wrap: anywhere; }
#events .badge { overflow-wrap: normal; white-space: nowrap; }
td.details { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; width: 34%; }
td.at { white-space: nowrap; font-size: 13px; }
.pager { display: flex; gap: 16px; justify-content: flex-end; padding: 12px 18px; border-top: 1px solid var(--line); }
.pager a { color: var(--accent); }
`;

interface Layout {
  title: string;
  domain: string;
  version: string;
  /** The navigation entry shown as current. */
  current: "overview" | "audit";
  /** Seconds between reloads; none for pages with a form. */
  refresh?: number;
  status?: string;
}

function layout(page: Layout, body: string): string {
  const nav = (href: string, key: Layout["current"], text: string) => `<a href="${href}"${page.current === key ? ' aria-current="page"' : ""}>${text}</a>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${page.refresh ? `<meta http-equiv="refresh" content="${page.refresh}">\n` : ""}<title>${escape(page.title)} · dmuc-gateway · ${escape(page.domain)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>dmuc-gateway</h1><span class="domain">${escape(page.domain)}</span><nav>${nav("/console", "overview", "Overview")}${nav("/console/audit", "audit", "Audit")}</nav><span class="status">${page.status ?? ""} <span class="muted">version ${escape(page.version)}</span></span></header>
<main>
${body}
</main>
</body>
</html>
`;
}

export function renderConsole(state: ConsoleState, now = Date.now()): string {
  const occupants = state.rooms.reduce((n, r) => n + r.occupants, 0);
  const split = state.links.filter((l) => l.state === "split").length;
  const status = `${state.problems.length === 0 ? badge("ready", "ok") : badge("not ready", "bad")} <span class="muted">started ${ago(state.startedAt, now)},</span>`;
  return layout(
    { title: "Overview", domain: state.domain, version: state.version, current: "overview", refresh: REFRESH_SECONDS, status },
    `${state.problems.length > 0 ? `<div class="problems">${state.problems.map(escape).join("<br>")}</div>` : ""}
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
<table><thead><tr><th>Room</th><th>Peer</th><th>State</th><th>Lag</th><th>Last netjoin</th><th>Last heard</th></tr></thead>
<tbody>
${linkRows(state, now)}
</tbody></table></section>
<footer>Read-only. Refreshes every ${REFRESH_SECONDS} s. JSON: <span class="jid">/console/api/state</span></footer>`,
  );
}

/** The audit search page: the form (filled with what was asked), then the page of events or the problems. */
export interface AuditView {
  domain: string;
  version: string;
  params: AuditSearchParams;
  errors: string[];
  page?: AuditPage;
}

function auditLink(params: AuditSearchParams, before?: string): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && key !== "before") query.set(key, String(value));
  if (before !== undefined) query.set("before", before);
  const text = query.toString();
  return `/console/audit${text ? `?${text}` : ""}`;
}

function cell(value: ExportRow[string]): string {
  if (value === null || value === undefined) return '<span class="muted">–</span>';
  return escape(typeof value === "object" ? JSON.stringify(value) : String(value));
}

/** An event's details, one field a line (nested values as JSON). */
function detailsCell(details: ExportRow[string]): string {
  if (details === null || typeof details !== "object" || Array.isArray(details)) return cell(details);
  const fields = Object.entries(details as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
  if (fields.length === 0) return '<span class="muted">–</span>';
  return fields.map(([k, v]) => `<div><span class="muted">${escape(k)}</span> ${escape(typeof v === "string" ? v : JSON.stringify(v))}</div>`).join("");
}

function auditRows(events: ExportRow[]): string {
  if (events.length === 0) return `<tr><td colspan="6" class="empty">No event matches.</td></tr>`;
  return events
    .map(
      (e) => `<tr data-id="${cell(e.id)}" data-kind="${cell(e.kind)}">
  <td class="at"><time datetime="${cell(e.at)}">${cell(String(e.at).replace("T", " ").replace(/\.\d+Z$/, "Z"))}</time></td>
  <td class="jid">${cell(e.room)}</td>
  <td>${badge(String(e.kind), "info")}</td>
  <td class="jid">${cell(e.actor)}</td>
  <td class="jid">${cell(e.subject)}</td>
  <td class="details">${detailsCell(e.details)}</td>
</tr>`,
    )
    .join("\n");
}

export function renderAudit(view: AuditView): string {
  const p = view.params;
  const field = (name: keyof AuditSearchParams, label: string, placeholder: string) =>
    `<label>${label}<input name="${name}" value="${escape(p[name] ?? "")}" placeholder="${escape(placeholder)}"></label>`;
  const pager = view.page
    ? `<div class="pager">${p.before !== undefined ? `<a href="${escape(auditLink(p))}" id="newest">Newest</a>` : ""}${view.page.next !== null ? `<a href="${escape(auditLink(p, view.page.next))}" id="older">Older events</a>` : ""}</div>`
    : "";
  return layout(
    { title: "Audit", domain: view.domain, version: view.version, current: "audit" },
    `<section id="search"><h2>Audit trail</h2>
<form method="get" action="/console/audit" class="search">
${field("room", "Room", "room@" + view.domain)}
${field("jid", "JID (actor or subject)", "user@example.org")}
${field("kind", "Event kinds", "occupant.entered, message")}
${field("since", "Since", "24h or 2026-12-01T10:00Z")}
${field("until", "Until", "2026-12-02")}
<button type="submit">Search</button>
</form>
${view.errors.length > 0 ? `<div class="problems" id="errors">${view.errors.map(escape).join("<br>")}</div>` : ""}
</section>
${
  view.page
    ? `<section id="events"><h2>Events, newest first</h2>
<div class="scroll"><table><thead><tr><th>Time</th><th>Room</th><th>Kind</th><th>Actor</th><th>Subject</th><th>Details</th></tr></thead>
<tbody>
${auditRows(view.page.events)}
</tbody></table></div>
${pager}</section>`
    : ""
}
<footer>Read-only. The events <span class="jid">dmuc-gateway audit</span> finds, newest first. JSON: <span class="jid">/console/api/audit</span></footer>`,
  );
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

const HEADERS = { "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'", "referrer-policy": "no-referrer" };

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
    [
      "/console/audit",
      async (request, response, url) => {
        if (!allowed(request, url)) return refuse(response);
        const view = { domain: source.domain, version: source.version };
        // The bare page shows the newest events, as the search with nothing filled in.
        const { parseAuditSearch } = await import("./audit-search.js");
        const parsed = parseAuditSearch(url.searchParams, new Date(source.now?.() ?? Date.now()));
        if (!("search" in parsed)) return send(response, 400, "text/html; charset=utf-8", renderAudit({ ...view, params: parsed.params, errors: parsed.errors }), HEADERS);
        const page = await source.searchAudit(parsed.search);
        send(response, 200, "text/html; charset=utf-8", renderAudit({ ...view, params: parsed.search.params, errors: [], page }), HEADERS);
      },
    ],
    [
      "/console/api/audit",
      async (request, response, url) => {
        if (!allowed(request, url)) return refuse(response);
        const { parseAuditSearch } = await import("./audit-search.js");
        const parsed = parseAuditSearch(url.searchParams, new Date(source.now?.() ?? Date.now()));
        if (!("search" in parsed)) return send(response, 400, "application/json", JSON.stringify({ errors: parsed.errors }, null, 2), HEADERS);
        send(response, 200, "application/json", JSON.stringify(await source.searchAudit(parsed.search), null, 2), HEADERS);
      },
    ],
  ];
}
