// The operator console in a real browser (Debian's chromium, headless, driven by puppeteer-core): the
// page opens with the token, lists a room this test created with its occupant, and is refused without.
import assert from "node:assert/strict";
import { copyFileSync, statSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import puppeteer, { type Browser } from "puppeteer-core";
import { removeDirSync } from "../support/cleanup.js";
import type { TestClient } from "../support/client.js";
import { startGatewayProcess, startStack, type Stack } from "../support/gateway.js";
import { freePort } from "../support/ports.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const TOKEN = "console-token-for-the-test-0123";
const ROOM = "garden@conference.localhost";
const WAIT_MS = 15_000;

describe("the operator console", () => {
  let stack: Stack;
  let base: string;
  let alice: TestClient;
  let browser: Browser | undefined;
  let dir: string;

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    stack = await startStack({ env: { DMUC_HTTP: String(port), DMUC_CONSOLE_TOKEN: TOKEN } });
    const created = await startGatewayProcess({ env: stack.env, args: ["rooms", "create", "garden", "--name", "The garden"] });
    assert.equal((await created.waitForExit(30_000)).code, 0, created.readLog());
    await created.stop();
    alice = await stack.connect("alice");
    await alice.send(xml("presence", { to: `${ROOM}/Alice` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    await alice.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/Alice` && el.attrs.type !== "error", WAIT_MS);
    await alice.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "the roses are out")));
    await alice.waitFor((el) => el.name === "message" && el.getChildText("body") === "the roses are out", WAIT_MS);
    dir = await mkdtemp(join(tmpdir(), "dmuc-console-"));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: join(dir, "profile"),
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    if (dir) removeDirSync(dir, "console test");
  });

  it("refuses a visitor without the token", async () => {
    const response = await fetch(`${base}/console`);
    assert.equal(response.status, 401);
    assert.equal((await fetch(`${base}/console/api/state`, { headers: { authorization: "Bearer wrong-token-wrong-token" } })).status, 401);
  });

  it("opens with the token and lists the room, its occupant and its last activity", async () => {
    const page = await browser!.newPage();
    await page.setViewport({ width: 1200, height: 800 });
    const response = await page.goto(`${base}/console?token=${TOKEN}`, { waitUntil: "load", timeout: WAIT_MS });
    assert.equal(response?.status(), 200);
    assert.equal(new URL(page.url()).search, "", "the token is taken out of the address");
    const rooms = await page.$eval("#rooms", (el) => (el as unknown as { innerText: string }).innerText);
    assert.match(rooms, /The garden/);
    assert.match(rooms, /garden@conference\.localhost/);
    assert.match(rooms, /Alice/);
    assert.match(rooms, /persistent/);
    assert.match(rooms, /\d+ s ago/);
    const links = await page.$eval("#links", (el) => (el as unknown as { innerText: string }).innerText);
    assert.match(links, /No DMUC2 links/);
    const shot = join(dir, "console.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000);
    if (process.env.CONSOLE_SCREENSHOT) copyFileSync(shot, process.env.CONSOLE_SCREENSHOT);
    await page.close();
  });

  it("gives the same state as JSON to a script with the token", async () => {
    const response = await fetch(`${base}/console/api/state`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(response.status, 200);
    const state = (await response.json()) as { rooms: { jid: string; nicks: string[] }[] };
    assert.deepEqual(state.rooms.map((r) => [r.jid, r.nicks]), [[ROOM, ["Alice"]]]);
  });
});
