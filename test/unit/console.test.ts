import { test } from "node:test";
import assert from "node:assert/strict";
import { renderAudit, renderConsole, type ConsoleState, type LinkRow } from "../../src/shell/console.js";
import { AuditSearchParams, parseAuditSearch } from "../../src/shell/audit-search.js";

const NOW = Date.parse("2026-12-02T10:00:00Z");

const quiet = { unacked: 0, oldestUnackedSeconds: 0, splitBacklog: 0, lastNetjoin: null, lastNetjoinSeconds: null };
const link = (over: Partial<LinkRow>): LinkRow => ({ room: "wallops@conference.example.org", peer: "dmuc.oulubox.test", domain: "oulubox.test", role: "primary", state: "active", since: null, lastHeard: null, ...quiet, ...over });

const state = (over: Partial<ConsoleState> = {}): ConsoleState => ({
  domain: "conference.example.org",
  version: "0.1.0",
  startedAt: "2026-12-02T09:00:00Z",
  problems: [],
  rooms: [],
  links: [],
  ...over,
});

test("a split link is shown as split, with since when", () => {
  const html = renderConsole(
    state({
      links: [
        { room: "wallops@conference.example.org", peer: "dmuc.oulubox.test", domain: "oulubox.test", role: "primary", state: "split", since: "2026-12-02T09:58:00Z", lastHeard: "2026-12-02T09:57:30Z", ...quiet },
        { room: "wallops@conference.example.org", peer: "dmuc.avalon.test", domain: "avalon.test", role: "primary", state: "active", since: null, lastHeard: "2026-12-02T09:59:58Z", ...quiet },
      ],
    }),
    NOW,
  );
  assert.match(html, /<span class="badge bad">split<\/span> <span class="muted">since <time datetime="2026-12-02T09:58:00Z"[^>]*>2 min ago<\/time>/);
  assert.match(html, /<span class="badge ok">active<\/span>/);
  assert.match(html, /<div class="value">1<\/div><div class="label">DMUC2 links split<\/div>/);
});

test("names chosen by users are escaped, never markup", () => {
  const html = renderConsole(
    state({
      rooms: [
        { jid: "x@conference.example.org", name: "<script>alert(1)</script>", occupants: 1, nicks: ["<img src=x onerror=alert(2)>"], persistent: true, public: true, membersOnly: false, passwordProtected: false, locked: false, lastActivity: null },
      ],
    }),
    NOW,
  );
  assert.doesNotMatch(html, /<script>|<img/);
  assert.match(html, /&#60;script&#62;alert\(1\)&#60;\/script&#62;/);
});

test("a gateway that is not ready says why", () => {
  const html = renderConsole(state({ problems: ["xmpp: not connected"] }), NOW);
  assert.match(html, /<span class="badge bad">not ready<\/span>/);
  assert.match(html, /<div class="problems">xmpp: not connected<\/div>/);
});

test("a link's lag and last netjoin are shown with it", () => {
  const html = renderConsole(
    state({
      links: [
        link({ peer: "dmuc.eris.test", unacked: 3, oldestUnackedSeconds: 2.25, lastNetjoin: "2026-12-02T09:55:00Z", lastNetjoinSeconds: 0.4 }),
        link({ peer: "dmuc.vesa.test", state: "split", since: "2026-12-02T09:59:00Z", unacked: 2, splitBacklog: 4 }),
      ],
    }),
    NOW,
  );
  assert.match(html, /data-peer="dmuc.eris.test"[^]*?3 unacknowledged, oldest sent 2.3 s ago[^]*?<time datetime="2026-12-02T09:55:00Z"[^>]*>5 min ago<\/time> <span class="muted">in 0.4 s<\/span>/);
  assert.match(html, /data-peer="dmuc.vesa.test" data-role="primary" data-state="split"[^]*?4 messages to catch up at netjoin; 2 unacknowledged, held/);
});

test("the audit search takes the command's filters and refuses bad ones with a message each", () => {
  const now = new Date("2026-12-02T10:00:00Z");
  const ok = parseAuditSearch(new URLSearchParams({ room: "Wallops@Conference.example.org", jid: "alice@example.org", kind: "occupant.entered, message", since: "24h", until: "2026-12-02T09:00Z", before: "42", rows: "", token: "x" }), now);
  assert.ok("search" in ok);
  assert.deepEqual(ok.search.filter, {
    room: "wallops@conference.example.org",
    jid: "alice@example.org",
    kinds: ["occupant.entered", "message"],
    since: new Date("2026-12-01T10:00:00Z"),
    until: new Date("2026-12-02T09:00:00Z"),
  });
  assert.equal(ok.search.before, "42");
  assert.equal(ok.search.rows, 50);

  const bad = parseAuditSearch(new URLSearchParams({ room: "not a jid/x", jid: "@@", kind: "DROP TABLE", since: "yesterday", before: "1 OR 1=1", rows: "100000" }), now);
  assert.ok("errors" in bad);
  assert.deepEqual(bad.errors.sort(), [
    "before must be an event id",
    "jid must be a JID: user@server, user@server/resource for one session, or a server",
    "kind must be event kinds such as occupant.entered, separated by commas",
    "room must be a room's bare JID (room@service)",
    "rows must be a number from 1 to 500",
    "since must be an ISO 8601 time (2026-12-01 or 2026-12-01T10:00Z) or an age such as 90m, 24h, 7d",
  ]);
  const reversed = parseAuditSearch(new URLSearchParams({ since: "1h", until: "2h" }), now);
  assert.deepEqual("errors" in reversed && reversed.errors, ["since must be before until"]);
});

test("the audit page escapes what users wrote and keeps the filters in its paging links", () => {
  const params = Object.assign(new AuditSearchParams(), { room: "r@conference.example.org", kind: "message" });
  const html = renderAudit({
    domain: "conference.example.org",
    version: "0.1.0",
    params,
    errors: [],
    page: {
      events: [{ id: 7, at: "2026-12-02T09:00:00.000Z", room: "r@conference.example.org", kind: "message", actor: "a@example.org", subject: null, details: { nick: "<b>x</b>", jid: "a@example.org/phone" }, seq: 3, hash: "h" }],
      next: "7",
    },
  });
  assert.doesNotMatch(html, /<b>x/);
  assert.match(html, /<tr data-id="7" data-kind="message">/);
  assert.match(html, /<div><span class="muted">jid<\/span> a@example.org\/phone<\/div><div><span class="muted">nick<\/span> &#60;b&#62;x&#60;\/b&#62;<\/div>/);
  assert.match(html, /href="\/console\/audit\?room=r%40conference.example.org&#38;kind=message&#38;before=7" id="older"/);
  assert.match(html, /<input name="room" value="r@conference.example.org"/);
});
