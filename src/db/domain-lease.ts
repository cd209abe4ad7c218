// One gateway per domain and database: a PostgreSQL session-level advisory lock held for the gateway's
// lifetime on a connection of its own. A second gateway for the same domain on the same database
// cannot take it and is refused with the first one's name; a gateway that dies (even SIGKILL) loses
// its session and with it the lock, so nothing stale is left behind.
//
// The same connection carries the operators' commands to the running gateway (LISTEN/NOTIFY, see
// src/shell/admin-channel.ts), so that `dmuc-gateway rooms ...` is effective at once.
import { hostname } from "node:os";
import pg from "pg";
import type { Logger } from "../log.js";

/** First half of the lock key: "dmuc"; the second half is a hash of the domain. */
const LOCK_CLASS = 0x646d7563;
const RETRY_MS = 1_000;

function domainKey(domain: string): number {
  // FNV-1a, 32 bits, as a signed int4 (pg_try_advisory_lock(int4, int4)).
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(domain.toLowerCase(), "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}

export class DomainTakenError extends Error {
  constructor(domain: string, holder: string) {
    super(
      `another gateway is serving ${domain} on this database (${holder}): stop it first. ` +
        `One gateway serves a domain; docs/ARCHITECTURE.md says how several processes can share one.`,
    );
    this.name = "DomainTakenError";
  }
}

/** Who holds the lock, as its application_name and start time tell; null when nobody does. */
export async function leaseHolder(client: pg.Client, domain: string): Promise<string | null> {
  const { rows } = await client.query<{ application_name: string; backend_start: Date; client_addr: string | null }>(
    `SELECT a.application_name, a.backend_start, a.client_addr
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.classid = $1::int::oid AND l.objid = $2::int::oid AND l.objsubid = 2 AND l.granted AND l.pid <> pg_backend_pid()`,
    [LOCK_CLASS, domainKey(domain)],
  );
  const row = rows[0];
  if (!row) return null;
  const name = row.application_name || "a client without a name";
  return `${name}${row.client_addr ? ` from ${row.client_addr}` : ""}, connected since ${row.backend_start.toISOString()}`;
}

/** Every gateway holding a domain lock on this database (any domain), described. */
export async function runningGateways(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ application_name: string; backend_start: Date }>(
    `SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.classid = $1::int::oid AND l.objsubid = 2 AND l.granted AND l.pid <> pg_backend_pid()`,
    [LOCK_CLASS],
  );
  return rows.map((r) => `${r.application_name || "a client without a name"}, connected since ${r.backend_start.toISOString()}`);
}

async function connect(url: string, role: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: `dmuc-gateway ${role} pid ${process.pid} on ${hostname()}`, keepAlive: true });
  await client.connect();
  return client;
}

async function tryLock(client: pg.Client, domain: string): Promise<boolean> {
  const { rows } = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1, $2) AS locked", [LOCK_CLASS, domainKey(domain)]);
  return rows[0]?.locked === true;
}

export interface LeaseEvents {
  /** The connection holding the lock broke and another gateway took the domain meanwhile. */
  onTaken(error: DomainTakenError): void;
  /** A (re)connected lock connection, to LISTEN on. */
  onConnected?(client: pg.Client): Promise<void> | void;
}

/** The lock of a domain held by this process; reconnects and takes it again if the connection breaks. */
export class DomainLease {
  private closed = false;
  private retry: NodeJS.Timeout | null = null;

  private constructor(
    private client: pg.Client,
    private readonly url: string,
    private readonly domain: string,
    private readonly role: string,
    private readonly log: Logger,
    private readonly events: LeaseEvents | undefined,
  ) {
    this.watch(client);
  }

  /** Takes the lock of `domain` or throws DomainTakenError naming the holder. */
  static async acquire(url: string, domain: string, role: string, log: Logger, events?: LeaseEvents): Promise<DomainLease> {
    const client = await connect(url, role);
    client.on("error", () => undefined); // reported through 'end' by watch()
    try {
      if (!(await tryLock(client, domain))) throw new DomainTakenError(domain, (await leaseHolder(client, domain)) ?? "it has just stopped; try again");
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    const lease = new DomainLease(client, url, domain, role, log, events);
    await events?.onConnected?.(client);
    return lease;
  }

  get connection(): pg.Client {
    return this.client;
  }

  async release(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    // Ending the session releases the lock.
    await this.client.end().catch(() => undefined);
  }

  private watch(client: pg.Client): void {
    client.on("error", (err) => this.log.warn("gateway.lease_error", { error: err }));
    client.once("end", () => {
      if (this.closed || client !== this.client) return;
      this.log.warn("gateway.lease_lost", { domain: this.domain, reason: "the database connection holding the domain lock closed" });
      this.scheduleReacquire();
    });
  }

  private scheduleReacquire(): void {
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.reacquire();
    }, RETRY_MS);
  }

  private async reacquire(): Promise<void> {
    if (this.closed) return;
    let client: pg.Client | undefined;
    try {
      client = await connect(this.url, this.role);
      client.on("error", () => undefined);
      if (!(await tryLock(client, this.domain))) {
        const holder = (await leaseHolder(client, this.domain)) ?? "unknown";
        await client.end().catch(() => undefined);
        this.closed = true;
        this.events?.onTaken(new DomainTakenError(this.domain, holder));
        return;
      }
    } catch (err) {
      await client?.end().catch(() => undefined);
      this.log.debug("gateway.lease_retry", { error: err });
      this.scheduleReacquire();
      return;
    }
    this.client = client;
    this.watch(client);
    this.log.info("gateway.lease_regained", { domain: this.domain });
    await this.events?.onConnected?.(client);
  }
}
