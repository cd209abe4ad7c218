// The operator console during a real DMUC2 split (issue 13): two Prosody servers federated over s2s,
// a gateway on each, a room on avalon with a user behind oulubox's replica. oulubox is cut off from
// avalon without warning (what crosses is dropped silently, mod_s2s_netsplit) while both sides talk;
// the console of each gateway, in headless Chromium, shows the link as split, and after the heal as
// active again with a last netjoin; /metrics counts the split link, the stanzas resent while they went
// unacknowledged, and the netjoin. Default link timings; every wait is
// bounded and only looks at what operators and users see (pages, metrics, messages).
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { removeDirSync } from "../support/cleanup.js";
import type { TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";
import { injectFault, type InjectedFault } from "../support/faults.js";
import { freePort } from "../support/ports.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
// Both consoles are on 127.0.0.1 (other ports): cookies do not tell ports apart, so one token.
const TOKEN = "console-token-for-the-split-test";
const ROOM = "wallops@dmuc.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
/** Bound of every wait for something to show: a split link is probed after 5 s, then 10, 20... */
const WAIT_MS = 90_000;

interface LinkView {
  state: string | null;
  /** The whole links table, for the failure message. */
  table: string;
  text: string;
  splitCard: string;
}

/** The console's row for one link (data-room, data-peer), freshly loaded, and the "links split" card. */
async function viewLink(page: Page, base: string, room: string, peer: string): Promise<LinkView> {
  await page.goto(`${base}/console`, { waitUntil: "load", timeout: 30_000 });
  const row = await page.$(`#links tr[data-room="${room}"][data-peer="${peer}"]`);
  const splitCard = await page.$$eval(".card", (cards) => cards.map((c) => (c as unknown as { innerText: string }).innerText).find((t) => /links split/i.test(t)) ?? "");
  const table = (await page.$eval("#links", (el) => (el as unknown as { innerText: string }).innerText).catch(() => "")) || (await page.content());
  if (!row) return { state: null, text: "", splitCard, table };
  return {
    table,
    state: await row.evaluate((el) => el.getAttribute("data-state")),
    text: await row.evaluate((el) => (el as unknown as { innerText: string }).innerText),
    splitCard,
  };
}

/** Reloads the console until the link's row satisfies `check`, at most WAIT_MS; returns the last view. */
async function waitForLink(page: Page, base: string, room: string, peer: string, check: (view: LinkView) => boolean): Promise<LinkView> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const view = await viewLink(page, base, room, peer);
    if (check(view) || Date.now() > deadline) return view;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The "Last netjoin" cell once there was one: when, and how long it took. */
const NETJOINED = /\d+ (s|min) ago in \d+(\.\d)? (s|min)/;

function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

const isRoomMessage = (body: string) => (el: { name: string; attrs: Record<string, string>; getChildText(n: string): string | null }) =>
  el.name === "message" && el.attrs.type === "groupchat" && (el.attrs.from ?? "").startsWith(`${ROOM}/`) && el.getChildText("body") === body;

describe("the console during a real DMUC2 split", () => {
  let fed: Federation;
  let browser: Browser | undefined;
  /** One tab for the whole test: the console's cookie lives as long as the browser session. */
  let page: Page;
  let dir: string;
  let primaryBase: string;
  let replicaBase: string;
  let owner: TestClient;
  let wumpus: TestClient;
  let fault: InjectedFault | undefined;

  before(async () => {
    const [primaryPort, replicaPort] = [await freePort(), await freePort()];
    primaryBase = `http://127.0.0.1:${primaryPort}`;
    replicaBase = `http://127.0.0.1:${replicaPort}`;
    fed = await startFederation({
      servers: [
        { name: "avalon", gateway: true, env: { DMUC_HTTP: String(primaryPort), DMUC_CONSOLE_TOKEN: TOKEN } },
        { name: "oulubox", gateway: true, env: { DMUC_HTTP: String(replicaPort), DMUC_CONSOLE_TOKEN: TOKEN } },
      ],
    });
    dir = await mkdtemp(join(tmpdir(), "dmuc-console-split-"));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: join(dir, "profile"),
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
  });
  after(async () => {
    await fault?.heal();
    await browser?.close();
    await fed?.stop();
    if (dir) removeDirSync(dir, "console split test");
  });

  it("shows the room's link to oulubox's replica as active once its user entered", async () => {
    owner = await fed.connect("owner", "avalon");
    wumpus = await fed.connect("argl", "oulubox");
    for (const [client, nick] of [[owner, "Owner"], [wumpus, "Wumpus"]] as const) {
      await client.sendPresence();
      await client.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: MUC })));
      await client.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/${nick}` && !!el.getChild("x", MUC_USER), 30_000);
      if (nick === "Owner") {
        const form = xml("x", { xmlns: "jabber:x:data", type: "submit" }, xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")));
        await owner.request(xml("iq", { type: "set", to: ROOM, id: "cfg" }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, form)), 30_000);
      }
    }
    await owner.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "before the split")));
    await wumpus.waitFor(isRoomMessage("before the split"), 30_000);

    for (const base of [primaryBase, replicaBase]) await page.goto(`${base}/console?token=${TOKEN}`, { waitUntil: "load", timeout: 30_000 });
    const primary = await waitForLink(page, primaryBase, ROOM, REPLICA, (v) => v.state === "active");
    assert.equal(primary.state, "active", primary.table);
    assert.match(primary.text, /dmuc\.oulubox\.test/);
    const replica = await waitForLink(page, replicaBase, ROOM, ROOM, (v) => v.state === "active");
    assert.equal(replica.state, "active", replica.table);
    assert.match(replica.text, /primary/);
  });

  it("shows the link as split on both sides during an unannounced s2s cut while both sides talk", async () => {
    fault = await injectFault(fed, { kind: "drop", server: "oulubox" });
    await owner.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "the owner talks into the split")));
    await wumpus.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "Wumpus talks into the split")));

    const primary = await waitForLink(page, primaryBase, ROOM, REPLICA, (v) => v.state === "split");
    assert.equal(primary.state, "split", primary.table);
    assert.match(primary.text, /split\s+since \d+ s ago/);
    assert.match(primary.text, /[1-9]\d* messages? to catch up at netjoin/, "the owner's message waits for the netjoin");
    assert.match(primary.splitCard, /^1\b/);
    const shot = join(dir, "split.png");
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.CONSOLE_SPLIT_SCREENSHOT) copyFileSync(shot, process.env.CONSOLE_SPLIT_SCREENSHOT);
    const replica = await waitForLink(page, replicaBase, ROOM, ROOM, (v) => v.state === "split");
    assert.equal(replica.state, "split", replica.table);
    assert.match(replica.text, /split\s+since/);

    const metrics = await (await fetch(`${primaryBase}/metrics`)).text();
    assert.equal(sample(metrics, "dmuc_links", '{state="split"}'), 1);
    assert.equal(sample(metrics, "dmuc_link_ends", '{role="primary",state="split"}'), 1);
    // The owner's message went unacknowledged into the silence: sent again before the link split.
    assert.ok(sample(metrics, "dmuc_link_resent_total")! >= 1, "the primary resent");
    assert.ok(sample(metrics, "dmuc_link_split_backlog", `{role="primary",room="${ROOM}",peer="${REPLICA}"}`)! >= 1);
    const replicaMetrics = await (await fetch(`${replicaBase}/metrics`)).text();
    assert.equal(sample(replicaMetrics, "dmuc_replicated_rooms", '{state="split"}'), 1);
    assert.ok(sample(replicaMetrics, "dmuc_link_resent_total")! >= 1, "the replica resent Wumpus's message");
  });

  it("shows the link active again after the heal, with its netjoin, once both sides have each other's messages", async () => {
    await fault!.heal();
    await owner.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "after the heal")));
    await wumpus.waitFor(isRoomMessage("the owner talks into the split"), WAIT_MS);
    await owner.waitFor(isRoomMessage("Wumpus talks into the split"), WAIT_MS);
    await wumpus.waitFor(isRoomMessage("after the heal"), WAIT_MS);

    const primary = await waitForLink(page, primaryBase, ROOM, REPLICA, (v) => v.state === "active" && NETJOINED.test(v.text));
    assert.equal(primary.state, "active", primary.table);
    assert.match(primary.text, NETJOINED, "the last netjoin, when and how long");
    assert.match(primary.splitCard, /^0\b/);
    const replica = await waitForLink(page, replicaBase, ROOM, ROOM, (v) => v.state === "active" && NETJOINED.test(v.text));
    assert.equal(replica.state, "active", replica.table);
    assert.match(replica.text, NETJOINED);

    const primaryMetrics = await (await fetch(`${primaryBase}/metrics`)).text();
    assert.equal(sample(primaryMetrics, "dmuc_links", '{state="split"}'), 0);
    assert.equal(sample(primaryMetrics, "dmuc_netjoin_duration_seconds_count", '{role="primary"}'), 1);
    assert.equal(sample(primaryMetrics, "dmuc_split_duration_seconds_count", '{role="primary"}'), 1);
    const replicaMetrics = await (await fetch(`${replicaBase}/metrics`)).text();
    assert.equal(sample(replicaMetrics, "dmuc_netjoin_duration_seconds_count", '{role="replica"}'), 1);
    assert.equal(sample(replicaMetrics, "dmuc_replicated_rooms", '{state="split"}'), 0);
  });
});
