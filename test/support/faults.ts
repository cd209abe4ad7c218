// The faults a federation of real servers can suffer, each injected at once, without waiting for any
// gateway to notice (RULES.md: faults are unannounced), and healed on request:
//
//   bounce   `server` is partitioned from every other server; what either side sends across bounces
//            with remote-server-timeout (mod_s2s_netsplit; the s2s links stay up)
//   drop     the same partition, but the network swallows the stanzas: no error anywhere
//   reset    every s2s TCP connection of `server` is reset in the kernel (ss -K); nothing to heal
//   freeze   `server`'s Prosody gets SIGSTOP (its connections stay open, nothing moves); heal: SIGCONT
//   restart  `server`'s Prosody is stopped (users and component disconnected); heal: started again
//   kill     `server`'s gateway gets SIGKILL; heal: started again on the same database
//
// inject() returns once the fault is in place (a Prosody stopped, the blocks acknowledged by both
// ends); it never looks at a gateway's log.
import type { Federation } from "./federation.js";

export type FaultKind = "bounce" | "drop" | "reset" | "freeze" | "restart" | "kill";

export const FAULT_KINDS: readonly FaultKind[] = ["bounce", "drop", "reset", "freeze", "restart", "kill"];

export interface FaultSpec {
  kind: FaultKind;
  /** The server cut off, reset, frozen or restarted, or whose gateway is killed. */
  server: string;
}

export interface InjectedFault {
  readonly spec: FaultSpec;
  /** e.g. "bounce: vesa cut off from avalon, oulubox, eris (remote-server-timeout)". */
  readonly description: string;
  /** Undoes the fault (idempotent); returns once the server or gateway is back (Prosody's word, not the gateway's). */
  heal(): Promise<void>;
}

export function describeFault(spec: FaultSpec): string {
  return `${spec.kind} ${spec.server}`;
}

export async function injectFault(fed: Federation, spec: FaultSpec): Promise<InjectedFault> {
  const { kind, server } = spec;
  fed.server(server); // throws for an unknown name
  let healing: Promise<void> | undefined;
  const fault = (description: string, heal: () => Promise<void>): InjectedFault => ({
    spec,
    description,
    heal: () => (healing ??= heal()),
  });
  switch (kind) {
    case "bounce":
    case "drop": {
      const peers = fed.servers.map((s) => s.name).filter((n) => n !== server);
      await fed.partition(server, peers, kind);
      const how = kind === "bounce" ? "what crosses bounces with remote-server-timeout" : "what crosses is dropped silently";
      return fault(`${server} cut off from ${peers.join(", ")}: ${how}`, () => fed.unpartition(server, peers));
    }
    case "reset": {
      const n = await fed.resetS2s(server);
      if (n === 0) throw new Error(`reset ${server}: it had no s2s connection to reset`);
      return fault(`${n} s2s TCP connection(s) of ${server} reset`, async () => undefined);
    }
    case "freeze":
      fed.freeze(server);
      return fault(`${server}'s Prosody stopped with SIGSTOP`, async () => fed.thaw(server));
    case "restart":
      await fed.stopProsody(server);
      return fault(`${server}'s Prosody stopped`, () => fed.startProsody(server));
    case "kill":
      await fed.killGateway(server);
      return fault(`${server}'s gateway killed with SIGKILL`, async () => {
        await fed.startGateway(server);
      });
  }
}
