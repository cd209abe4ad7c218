// JIDs (RFC 7622) parsed into typed values at the edge. Addresses from the network are untrusted:
// anything that does not parse is rejected with jid-malformed by the caller.

export interface Jid {
  readonly local: string | null;
  readonly domain: string;
  readonly resource: string | null;
}

const MAX_PART_BYTES = 1023;
// Characters RFC 7622 forbids in a localpart, plus whitespace and controls.
const FORBIDDEN_LOCAL = /["&'/:<>@\s\p{Cc}]/u;
const FORBIDDEN_DOMAIN = /[\s\p{Cc}@/"&'<>\\]/u;
const CONTROL = /\p{Cc}/u;

function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function validPart(s: string): boolean {
  return s.length > 0 && byteLength(s) <= MAX_PART_BYTES;
}

/** Parses and normalises (case of local and domain parts, Unicode NFC) a JID; null when malformed. */
export function parseJid(input: string | undefined | null): Jid | null {
  if (typeof input !== "string" || input.length === 0 || input.length > 3071) return null;
  const slash = input.indexOf("/");
  const head = slash === -1 ? input : input.slice(0, slash);
  const resource = slash === -1 ? null : input.slice(slash + 1).normalize("NFC");
  const at = head.indexOf("@");
  const local = at === -1 ? null : head.slice(0, at).normalize("NFKC").toLowerCase();
  let domain = (at === -1 ? head : head.slice(at + 1)).normalize("NFKC").toLowerCase();
  if (domain.endsWith(".")) domain = domain.slice(0, -1);

  if (!validPart(domain) || FORBIDDEN_DOMAIN.test(domain) || domain.startsWith(".") || domain.includes("..")) return null;
  if (local !== null && (!validPart(local) || FORBIDDEN_LOCAL.test(local))) return null;
  if (resource !== null && (!validPart(resource) || CONTROL.test(resource))) return null;
  return { local, domain, resource };
}

export function parseBareJid(input: string): Jid | null {
  const jid = parseJid(input);
  return jid && jid.resource === null && jid.local !== null ? jid : null;
}

export function jidToString(jid: Jid): string {
  const head = jid.local === null ? jid.domain : `${jid.local}@${jid.domain}`;
  return jid.resource === null ? head : `${head}/${jid.resource}`;
}

export function bareJid(jid: Jid): Jid {
  return { local: jid.local, domain: jid.domain, resource: null };
}

export function bareString(jid: Jid): string {
  return jid.local === null ? jid.domain : `${jid.local}@${jid.domain}`;
}

export function withResource(jid: Jid, resource: string): Jid {
  return { local: jid.local, domain: jid.domain, resource };
}

export function sameJid(a: Jid, b: Jid): boolean {
  return a.local === b.local && a.domain === b.domain && a.resource === b.resource;
}
