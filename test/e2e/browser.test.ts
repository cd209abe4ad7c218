// A real browser client (issue 10): Converse.js (npm converse.js) in headless Chromium (Debian's
// /usr/bin/chromium, driven with puppeteer-core), served from localhost, connected over websocket to a
// test Prosody (mod_websocket on a random port), joins a room on the gateway where an xmpp.js user has
// already talked; the page shows those earlier messages, read through XEP-0313 MAM (Converse joins with
// maxstanzas='0' when the room announces MAM), with a message a moderator retracted before (XEP-0425
// tombstone) shown as removed; a message typed in the page reaches the xmpp.js user, the user's answer
// shows in the page, and a moderator's retraction of a live message replaces it in the page.
//
//   npx tsc -p . && node --test dist/test/e2e/browser.test.js
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import puppeteer, { type Browser } from "puppeteer-core";
import { removeDirSync } from "../support/cleanup.js";
import { freePort } from "../support/ports.js";
import { startStack, type Stack } from "../support/gateway.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const DOMAIN = "conference.localhost";
const WAIT_MS = 30_000;
const CONVERSE_DIST = dirname(createRequire(import.meta.url).resolve("converse.js/dist/converse.min.js"));

const TYPES: Record<string, string> = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".mp3": "audio/mpeg",
  ".ogg": "audio/ogg",
};

/** The page: Converse.js logging in as `jid` over `websocketUrl` and joining `room` as `nick`. */
function page(websocketUrl: string, jid: string, room: string, nick: string): string {
  const options = {
    assets_path: "/dist/",
    websocket_url: websocketUrl,
    discover_connection_methods: false,
    jid,
    password: "password",
    auto_login: true,
    auto_reconnect: false,
    view_mode: "fullscreen",
    auto_join_rooms: [{ jid: room, nick }],
    muc_show_logs_before_join: true,
    play_sounds: false,
    show_send_button: false,
    i18n: "en",
    loglevel: process.env.BROWSER_DEBUG ? "debug" : "warn",
  };
  return `<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script></head><body class="converse-fullscreen">
<script type="module">converse.initialize(${JSON.stringify(options)});</script></body></html>`;
}

/** Serves the page and Converse's dist directory on 127.0.0.1. */
async function servePage(html: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { "content-type": TYPES[".html"]! }).end(html);
      return;
    }
    const file = normalize(join(CONVERSE_DIST, path.replace(/^\/dist\//, "/")));
    if (!file.startsWith(CONVERSE_DIST) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    readFile(file).then(
      (data) => res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(data),
      () => res.writeHead(500).end(),
    );
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${port}/` };
}

describe("Converse.js in headless Chromium, over websocket to Prosody, in a room of the gateway", () => {
  let stack: Stack;
  let browser: Browser | undefined;
  let web: Server | undefined;
  let profile: string | undefined;
  let httpPort: number;

  before(async () => {
    httpPort = await freePort();
    stack = await startStack({
      prosody: {
        extraModules: ["websocket"],
        extraConfig: [
          `http_ports = { ${httpPort} }`,
          `http_interfaces = { "127.0.0.1" }`,
          // plain ws:// on loopback: Prosody would otherwise refuse PLAIN over an "insecure" websocket
          "consider_websocket_secure = true",
          "cross_domain_websocket = true",
        ].join("\n"),
      },
    });
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    web?.close();
    if (profile) removeDirSync(profile, "chromium profile");
    await stack?.stop();
  });

  it("shows the room's earlier messages from MAM, sends and receives messages, and shows a moderator's retraction", async () => {
    const room = `browser-${randomBytes(4).toString("hex")}@${DOMAIN}`;
    const bob = await stack.connect("bob", "xmppjs");
    await bob.send(xml("presence", { to: `${room}/Bob` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    await bob.waitFor((el) => el.name === "message" && el.getChild("subject") !== undefined, WAIT_MS, "the subject after creating the room");
    const form = xml("x", { xmlns: "jabber:x:data", type: "submit" }, xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")));
    await bob.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, form)), WAIT_MS);

    // Bob talks before Alice comes; one of his messages is retracted by him as the room's moderator.
    const say = async (id: string, body: string): Promise<string> => {
      await bob.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, body)));
      const echo = await bob.waitFor((el) => el.name === "message" && el.attrs.from === `${room}/Bob` && el.attrs.id === id, WAIT_MS, `the echo of ${id}`);
      return echo.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.id as string;
    };
    const moderate = (stanzaId: string) =>
      bob.request(
        xml("iq", { type: "set", to: room }, xml("moderate", { xmlns: "urn:xmpp:message-moderate:1", id: stanzaId }, xml("retract", { xmlns: "urn:xmpp:message-retract:1" }), xml("reason", {}, "off topic"))),
        WAIT_MS,
      );
    await say("earlier-1", "Earlier message number one");
    const offTopic = await say("earlier-2", "An off-topic remark from before");
    await say("earlier-3", "Earlier message number three");
    await moderate(offTopic);

    const served = await servePage(page(`ws://127.0.0.1:${httpPort}/xmpp-websocket`, "alice@localhost", room, "Alice"));
    web = served.server;
    profile = await mkdtemp(join(tmpdir(), "dmuc-chromium-"));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        `--user-data-dir=${profile}`,
      ],
    });
    const tab = await browser.newPage();
    // What the page sends over its websocket: to check that the history came from MAM, not the join.
    const sent: string[] = [];
    const devtools = await tab.createCDPSession();
    await devtools.send("Network.enable");
    devtools.on("Network.webSocketFrameSent", (frame) => sent.push(frame.response.payloadData));
    const problems: string[] = [];
    tab.on("pageerror", (err) => problems.push(String(err)));
    tab.on("console", (msg) => {
      if (process.env.BROWSER_DEBUG) console.error(`[page] ${msg.type()} ${msg.text()}`);
    });
    await tab.goto(served.url);

    // Alice entered: Bob, in the room, sees her presence.
    const entered = await bob.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/Alice` && el.attrs.type === undefined, WAIT_MS, "Alice's presence in the room");
    assert.equal(entered.getChild("x", "http://jabber.org/protocol/muc#user")?.getChild("item")?.attrs.role, "participant");

    // The page shows the earlier messages, the retracted one as removed by the moderator, without its text.
    await tab.waitForFunction(
      `document.body.innerText.includes("Earlier message number one") && document.body.innerText.includes("Earlier message number three")`,
      { timeout: WAIT_MS },
    );
    await tab.waitForFunction(`document.body.innerText.includes("Bob has removed a message")`, { timeout: WAIT_MS });
    const shown = await tab.evaluate(`document.body.innerText`) as string;
    assert.ok(!shown.includes("An off-topic remark from before"), "the retracted message's text is not shown");
    assert.ok(shown.indexOf("Earlier message number one") < shown.indexOf("Earlier message number three"), "in the room's order");
    // Converse asked for no join history and read the archive of the room.
    const joinPresence = sent.find((frame) => frame.includes("http://jabber.org/protocol/muc") && frame.includes(`${room}/Alice`));
    assert.match(joinPresence ?? "", /<history maxstanzas=["']0["']/, "joined without history");
    assert.ok(sent.some((frame) => frame.includes("urn:xmpp:mam:2") && frame.includes(`to="${room}"`)), "queried the room's archive");

    // She types a message in the page; Bob receives it from her occupant JID.
    const textarea = await tab.waitForSelector("textarea.chat-textarea", { timeout: WAIT_MS });
    await textarea!.type("Hello from the browser");
    await textarea!.press("Enter");
    const fromAlice: Element = await bob.waitFor(
      (el) => el.name === "message" && el.attrs.type === "groupchat" && el.attrs.from === `${room}/Alice` && el.getChildText("body") === "Hello from the browser",
      WAIT_MS,
      "Alice's message",
    );
    assert.ok(fromAlice.getChild("stanza-id", "urn:xmpp:sid:0"), "stamped by the room");

    // Bob answers; the page shows it.
    await bob.send(xml("message", { to: room, type: "groupchat", id: "from-bob" }, xml("body", {}, "Hello from xmpp.js")));
    await tab.waitForFunction(`document.body.innerText.includes("Hello from xmpp.js")`, { timeout: WAIT_MS });

    // Bob, as moderator, retracts a live message: the page replaces it with the notice.
    const live = await say("live-1", "A live remark to be removed");
    await tab.waitForFunction(`document.body.innerText.includes("A live remark to be removed")`, { timeout: WAIT_MS });
    await moderate(live);
    await tab.waitForFunction(`!document.body.innerText.includes("A live remark to be removed")`, { timeout: WAIT_MS });
    const pageText = await tab.evaluate(`document.body.innerText`) as string;
    assert.equal(pageText.split("Bob has removed a message").length - 1, 2, "both retractions are shown");
    assert.deepEqual(problems, [], "no errors in the page");
  });
});
