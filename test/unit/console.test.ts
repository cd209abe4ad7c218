import { test } from "node:test";
import assert from "node:assert/strict";
import { renderConsole, type ConsoleState } from "../../src/shell/console.js";

const NOW = Date.parse("2026-12-02T10:00:00Z");

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
        { room: "wallops@conference.example.org", peer: "dmuc.oulubox.test", domain: "oulubox.test", role: "primary", state: "split", since: "2026-12-02T09:58:00Z", lastHeard: "2026-12-02T09:57:30Z" },
        { room: "wallops@conference.example.org", peer: "dmuc.avalon.test", domain: "avalon.test", role: "primary", state: "active", since: null, lastHeard: "2026-12-02T09:59:58Z" },
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
