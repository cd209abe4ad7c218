// Issue 16 point 4: "anyone can make a replica". A stranger server (a raw component on a real Prosody
// standing in for a hostile server) sends the replica 1,000 <replicate/> for rooms none of its users
// entered, over real s2s, plus fake room state with history and fake broadcasts. Nothing is stored,
// every request is answered with an error, and afterwards the replica sends the stranger nothing (no
// keepalives to fake primaries); its CPU time and memory are reported.
//
//   npx tsc -p . && node --test dist/test/e2e/replica-strangers.test.js
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import pg from "pg";
import { randomBytes } from "node:crypto";
import { startFederation, type Federation } from "../support/federation.js";
import { TestComponent } from "../support/raw-component.js";

const DMUC = "urn:xmpp:tmp:dmuc:0";
const STRANGER = "chat.mallory.test";
const REPLICA = "dmuc.oulubox.test";
const FAKE_ROOMS = 1000;
const WAIT_MS = 180_000;
const QUIET_MS = 15_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
/** User and system CPU time of a process, in seconds (clock ticks of 1/100 s). */
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const condition = (el: Element) => el.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas")?.name;

describe("a stranger server sends a replica 1,000 <replicate/> over s2s", () => {
  let fed: Federation;
  let stranger: TestComponent;
  const secret = randomBytes(12).toString("hex");
  before(async () => {
    fed = await startFederation({
      servers: [
        { name: "oulubox", gateway: true },
        { name: "mallory", gateway: false, rawComponent: { domain: STRANGER, secret } },
      ],
    });
    stranger = await TestComponent.connect(fed.server("mallory").prosody, STRANGER, secret);
  });
  after(async () => {
    await stranger?.stop();
    await fed?.stop();
  });

  it("stores nothing, answers every request with an error, and pings no fake primary afterwards", async (t) => {
    const oulubox = fed.server("oulubox");
    const gateway = oulubox.gateway!;
    // A user of the replica's server is online (in no room): the server module has someone to ask about.
    const user = await fed.connect("rubenro", "oulubox");
    await user.sendPresence();
    const rssBefore = rssMb(gateway.pid);
    const cpuBefore = cpuSeconds(gateway.pid);

    for (let i = 0; i < FAKE_ROOMS; i++) {
      await stranger.send(xml("iq", { type: "set", id: `r${i}`, from: `room${i}@${STRANGER}`, to: REPLICA }, xml("replicate", { xmlns: DMUC, domain: "oulubox.test", keepalive: "5", history: "500" })));
    }
    // A fake room's state with history, and fake broadcasts, as if the replicate had been taken.
    for (let i = 0; i < 100; i++) {
      const history = xml("message", { from: `room${i}@${STRANGER}/eve`, type: "groupchat" }, xml("body", {}, `fake history ${i}`), xml("delay", { xmlns: "urn:xmpp:delay", from: `room${i}@${STRANGER}`, stamp: "2020-01-01T00:00:00Z" }));
      await stranger.send(xml("iq", { type: "set", id: `s${i}`, from: `room${i}@${STRANGER}`, to: REPLICA }, xml("state", { xmlns: DMUC, last: "true" }, history)));
      await stranger.send(xml("message", { from: `room${i}@${STRANGER}/eve`, to: REPLICA, type: "groupchat", id: `b${i}` }, xml("body", {}, `fake broadcast ${i}`)));
    }

    // Every request is answered, with an error.
    const answers = new Map<string, Element>();
    const wanted = [...Array.from({ length: FAKE_ROOMS }, (_, i) => `r${i}`), ...Array.from({ length: 100 }, (_, i) => `s${i}`)];
    const pending = new Set(wanted);
    while (pending.size > 0) {
      const answer = await stranger.waitFor((el) => el.name === "iq" && (el.attrs.type === "result" || el.attrs.type === "error") && pending.has(el.attrs.id ?? ""), WAIT_MS, `the answers (${pending.size} missing)`);
      pending.delete(answer.attrs.id!);
      answers.set(answer.attrs.id!, answer);
    }
    const kinds = new Map<string, number>();
    for (const answer of answers.values()) {
      const kind = `${answer.attrs.type}/${condition(answer) ?? "-"}`;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    assert.deepEqual([...kinds.keys()].filter((k) => !k.startsWith("error/")), [], `every answer is an error: ${JSON.stringify([...kinds])}`);
    assert.equal(answers.size, wanted.length);

    // Nothing is stored.
    const db = new pg.Client({ connectionString: oulubox.db!.url });
    await db.connect();
    try {
      for (const table of ["rooms", "history_messages", "occupants", "replicas"]) {
        const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
        assert.equal(Number(rows[0]!.n), 0, `rows in ${table}`);
      }
    } finally {
      await db.end();
    }

    // Afterwards the replica sends the stranger nothing: no keepalives, no probes of fake primaries.
    const unanswered = (await Promise.race([stranger.waitFor((el) => el.attrs.type !== "error" && el.attrs.type !== "result", QUIET_MS, "anything").catch(() => null), sleep(QUIET_MS + 1_000).then(() => null)])) as Element | null;
    assert.equal(unanswered, null, `the replica sent the stranger ${unanswered?.toString()}`);
    t.diagnostic(`answers: ${JSON.stringify(Object.fromEntries(kinds))}`);
    t.diagnostic(`replica gateway: RSS ${rssBefore.toFixed(0)} MB before, ${rssMb(gateway.pid).toFixed(0)} MB after; CPU ${(cpuSeconds(gateway.pid) - cpuBefore).toFixed(1)} s for the whole attack and the quiet ${QUIET_MS / 1000} s after`);
  });
});
