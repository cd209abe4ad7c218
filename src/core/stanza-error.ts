import type { ErrorCondition, ErrorType, StanzaErrorSpec } from "../xmpp/stanza.js";
import type { AuditRecord } from "./effects.js";

/**
 * Thrown by handlers to answer with an XMPP error; the engine turns it into the error reply. Any other
 * exception becomes internal-server-error, so that no stanza can take the process down.
 */
export class StanzaError extends Error {
  declare readonly spec: StanzaErrorSpec;
  /** A refusal auditors must see (a wrong password, a banned user): recorded although the stanza changes nothing. */
  audit?: AuditRecord;

  constructor(type: ErrorType, condition: ErrorCondition, text?: string, extra: Partial<StanzaErrorSpec> = {}) {
    // An answer, not a bug: no stack trace. Capturing one was a third of the cost of refusing a
    // flooded stanza (issue 16 point 7).
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(text ?? condition);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = "StanzaError";
    this.spec = { type, condition, text, ...extra };
  }
}

/** The same error, recording `record` in the audit trail when it is answered. */
export function withAudit(error: StanzaError, record: AuditRecord): StanzaError {
  const copy = new StanzaError(error.spec.type, error.spec.condition, error.spec.text, error.spec);
  copy.audit = record;
  return copy;
}

export const badRequest = (text?: string) => new StanzaError("modify", "bad-request", text);
export const forbidden = (text?: string) => new StanzaError("auth", "forbidden", text);
export const notAllowed = (text?: string) => new StanzaError("cancel", "not-allowed", text);
export const itemNotFound = (text?: string) => new StanzaError("cancel", "item-not-found", text);
export const serviceUnavailable = (text?: string) => new StanzaError("cancel", "service-unavailable", text);
export const featureNotImplemented = (text?: string) => new StanzaError("cancel", "feature-not-implemented", text);
export const notAcceptable = (text?: string) => new StanzaError("modify", "not-acceptable", text);
export const jidMalformed = (text?: string) => new StanzaError("modify", "jid-malformed", text);
