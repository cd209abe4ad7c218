// Room nicknames are JID resources: they must pass resourceprep (RFC 3920 Appendix B, the RFC 3454 stringprep
// profile) in its strict form, as Prosody's MUC requires: code points unassigned in Unicode 3.2 are refused.
// The tables (Unicode 3.2, RFC 3454) are generated into stringprep-tables.ts by scripts/gen-stringprep-tables.py.
// NFKC is String.prototype.normalize, which follows the runtime's (newer) Unicode version rather than 3.2; for
// code points assigned in 3.2 the results agree (normalisation stability), and everything newer is refused as
// unassigned anyway.
import { A1, B1, C12, C21, C22, C3, C4, C5, C6, C7, C8, C9, D1, D2 } from "./stringprep-tables.js";

/** The longest prepared nick, in UTF-8 bytes (RFC 3920 §3.1: a resource is at most 1023 bytes). */
export const MAX_NICK_BYTES = 1023;

/** Whether code point cp lies in a table of sorted inclusive ranges [s0, e0, s1, e1, ...] (binary search). */
export function inTable(table: readonly number[], cp: number): boolean {
  let lo = 0;
  let hi = table.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (cp < table[2 * mid]!) hi = mid - 1;
    else if (cp > table[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/** The union of several range tables, as one sorted table of disjoint ranges. */
function union(...tables: readonly (readonly number[])[]): readonly number[] {
  const pairs: [number, number][] = [];
  for (const t of tables) for (let i = 0; i < t.length; i += 2) pairs.push([t[i]!, t[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [s, e] of pairs) {
    const last = out.length - 1;
    if (last >= 1 && s <= out[last]! + 1) out[last] = Math.max(out[last]!, e);
    else out.push(s, e);
  }
  return out;
}

/** Resourceprep's prohibited output (RFC 3920 Appendix B.5): C.1.2, C.2.1, C.2.2, C.3-C.9. */
const PROHIBITED = union(C12, C21, C22, C3, C4, C5, C6, C7, C8, C9);

function codePoints(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0)!);
  return out;
}

/** RFC 3454 §6: strings with RandALCat characters hold no LCat one and begin and end with RandALCat. */
function bidiOk(cps: readonly number[]): boolean {
  let hasRandAL = false;
  let hasL = false;
  for (const cp of cps) {
    if (inTable(D1, cp)) hasRandAL = true;
    else if (inTable(D2, cp)) hasL = true;
  }
  if (!hasRandAL) return true;
  if (hasL) return false;
  return inTable(D1, cps[0]!) && inTable(D1, cps[cps.length - 1]!);
}

/**
 * Strict resourceprep of a nickname (RFC 3920 Appendix B with unassigned code points prohibited).
 * Returns the prepared nick, or null when it fails or is empty or longer than 1023 bytes once prepared.
 */
export function prepareNick(raw: string): string | null {
  // 1. Map: table B.1 to nothing (resourceprep does no case folding).
  let mapped = "";
  for (const ch of raw) {
    const cp = ch.codePointAt(0)!;
    if (inTable(B1, cp)) continue;
    // Unassigned (A.1) in the input: checked before NFKC so that a newer runtime's normalisation of code points
    // Unicode 3.2 did not have cannot turn them into acceptable ones.
    if (inTable(A1, cp)) return null;
    mapped += ch;
  }
  // 2. Normalise: NFKC.
  const nick = mapped.normalize("NFKC");
  // Empty, or only ASCII spaces (which resourceprep allows), is no nickname.
  if (nick.trim().length === 0) return null;
  const cps = codePoints(nick);
  // 3. Prohibit (a lone surrogate comes out of the string iterator as itself, and C.5 catches it).
  if (cps.some((cp) => inTable(PROHIBITED, cp))) return null;
  // 4. Bidi (C.8 is in PROHIBITED already).
  if (!bidiOk(cps)) return null;
  // Strict: unassigned code points are prohibited in the output too.
  if (cps.some((cp) => inTable(A1, cp))) return null;
  if (Buffer.byteLength(nick, "utf8") > MAX_NICK_BYTES) return null;
  return nick;
}
