// The operator console in a real browser (Debian's chromium, headless, driven by puppeteer-core): the
// page opens with the token, lists a room this test created with its occupant, and is refused without;
// its audit search finds what `dmuc-gateway audit` finds, a page at a time, and says what is wrong
// with a bad search. (The console during a real DMUC2 split: console-split.test.ts.)
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, statSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import puppeteer, { type Browser } from "puppeteer-core";
import { removeDirSync } from "../support/cleanup.js";
import type { TestClient } from "../support/client.js";
import { GATEWAY_MAIN, startGatewayProcess, startStack, type Stack } from "../support/gateway.js";
import { freePort } from "../support/ports.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const TOKEN = "console-token-for-the-test-0123";
const ROOM = "garden@conference.localhost";
const WAIT_MS = 15_000;

/** `dmuc-gateway ARGS` with the stack's settings: its exit code and stdout. */
function cli(stack: Stack, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [GATEWAY_MAIN, ...args], { env: { ...process.env, ...stack.env, DMUC_LOG_LEVEL: "error" } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const text = (el: unknown) => (el as { innerText: string }).innerText;

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

  it("searches the audit trail as the audit command does, a page at a time", async () => {
    const command = await cli(stack, "audit", "--room", ROOM, "--format", "json");
    assert.equal(command.code, 0, command.stderr);
    const trail = (JSON.parse(command.stdout) as { id: number; kind: string; actor: string | null }[]).reverse();
    const entered = trail.filter((e) => e.kind === "occupant.entered");
    assert.equal(entered.length, 1);

    const page = await browser!.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(`${base}/console?token=${TOKEN}`, { waitUntil: "load", timeout: WAIT_MS });
    await page.goto(`${base}/console/audit`, { waitUntil: "load", timeout: WAIT_MS });
    // Search by room and kind in the form, as a person would.
    await page.type("input[name=room]", ROOM);
    await page.type("input[name=kind]", "occupant.entered");
    await Promise.all([page.waitForNavigation({ waitUntil: "load", timeout: WAIT_MS }), page.click("form.search button")]);
    const found = await page.$$eval("#events tbody tr[data-id]", (rows) => rows.map((r) => [r.getAttribute("data-id"), r.getAttribute("data-kind"), (r as unknown as { innerText: string }).innerText]));
    assert.deepEqual(found.map(([id, kind]) => [Number(id), kind]), [[entered[0]!.id, "occupant.entered"]]);
    assert.match(found[0]![2]!, /alice@localhost/);
    assert.equal(await page.$eval("input[name=room]", (el) => (el as unknown as { value: string }).value), ROOM, "the form keeps the search");

    // The whole room's trail, two events a page, newest first: following "Older events" gives the
    // command's events in reverse, each once.
    await page.goto(`${base}/console/audit?room=${encodeURIComponent(ROOM)}&rows=2`, { waitUntil: "load", timeout: WAIT_MS });
    const seen: number[] = [];
    for (let pages = 0; pages < trail.length; pages++) {
      seen.push(...(await page.$$eval("#events tbody tr[data-id]", (rows) => rows.map((r) => Number(r.getAttribute("data-id"))))));
      const older = await page.$("#older");
      if (!older) break;
      await Promise.all([page.waitForNavigation({ waitUntil: "load", timeout: WAIT_MS }), older.click()]);
    }
    assert.deepEqual(seen, trail.map((e) => e.id));
    assert.ok(trail.length > 2, "more than one page");

    // A bad search: the page says what to fix, and shows no events.
    const bad = await page.goto(`${base}/console/audit?room=${encodeURIComponent(ROOM)}&since=last+tuesday`, { waitUntil: "load", timeout: WAIT_MS });
    assert.equal(bad?.status(), 400);
    assert.match(await page.$eval("#errors", text), /since must be an ISO 8601 time .* or an age such as 90m, 24h, 7d/);
    assert.equal(await page.$("#events"), null);
    const shot = join(dir, "audit.png");
    await page.goto(`${base}/console/audit?room=${encodeURIComponent(ROOM)}`, { waitUntil: "load", timeout: WAIT_MS });
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.CONSOLE_AUDIT_SCREENSHOT) copyFileSync(shot, process.env.CONSOLE_AUDIT_SCREENSHOT);
    await page.close();
  });

  it("gives the audit search as JSON, and refuses it without the token", async () => {
    const url = `${base}/console/api/audit?room=${encodeURIComponent(ROOM)}&kind=message`;
    assert.equal((await fetch(url)).status, 401);
    const response = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(response.status, 200);
    const page = (await response.json()) as { events: { kind: string; actor: string }[]; next: string | null };
    assert.deepEqual(page.events.map((e) => e.kind), ["message"]);
    assert.equal(page.next, null);
    const bad = await fetch(`${base}/console/api/audit?before=1;DROP`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { errors: ["before must be an event id"] });
  });
});
