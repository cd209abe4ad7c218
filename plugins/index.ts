// The plugins a gateway runs, in registration order (hook priorities decide the order of checks).
import type { Plugin } from "../src/core/service.js";
import { accessPlugin } from "./access.js";
import { auditPlugin } from "./audit.js";
import { adminPlugin } from "./admin.js";
import { discoPlugin } from "./disco.js";
import { dmucReplicaPlugin } from "./dmuc-replica.js";
import { dmucPrimaryPlugin } from "./dmuc-primary.js";
import { historyPlugin } from "./history.js";
import { DEFAULT_INPUT_LIMITS, inputLimitsPlugin, type InputLimits } from "./input-limits.js";
import { limitsPlugin, type LimitOptions } from "./limits.js";
import { livenessPlugin } from "./liveness.js";
import { lockPlugin } from "./lock.js";
import { mamPlugin } from "./mam.js";
import { retractionPlugin } from "./retraction.js";
import { occupantIqPlugin } from "./occupant-iq.js";
import { voiceRequestPlugin } from "./voice-request.js";
import { ownerPlugin } from "./owner.js";
import { passwordPlugin } from "./password.js";
import { pingPlugin } from "./ping.js";
import { roomDiscoPlugin } from "./room-disco.js";
import { roomSettingsPlugin } from "./room-settings.js";
import { roomCreationPlugin } from "./room-creation.js";
import { tombstonesPlugin } from "./tombstones.js";
import { invitePlugin } from "./invite.js";
import { registerPlugin } from "./register.js";
import { replicaLimitsPlugin } from "./replica-limits.js";
import { selfPingPlugin } from "./self-ping.js";
import { serviceAdminPlugin } from "./service-admin.js";

export interface PluginOptions extends LimitOptions {
  /** Characters of all the bodies of a message together (DMUC_MAX_BODY_CHARS). */
  maxBodyChars: number;
  /** The other input limits (DMUC_MAX_STANZA_BYTES, DMUC_MAX_DEPTH, ...); defaults when absent. */
  input?: Partial<Omit<InputLimits, "maxBodyChars">>;
  /** The most history messages a room keeps and sends on entering (DMUC_MAX_HISTORY_MESSAGES). */
  maxHistoryMessages: number;
  /** DMUC2 link timing (DMUC_KEEPALIVE, DMUC_LINK_TIMEOUT, DMUC_SPLIT_PING), in seconds; defaults when absent. */
  /** Seconds between two verifications of each occupant's session (DMUC_OCCUPANT_PING); 0: only after reconnecting. */
  occupantPingSeconds?: number;
  links?: { keepaliveSeconds: number; linkTimeoutSeconds: number; splitPingSeconds: number; splitAway: boolean; trustPrimaryEnter: boolean; splitEntry: boolean };
}

export function createPlugins(options: PluginOptions): Plugin[] {
  const input: InputLimits = { ...DEFAULT_INPUT_LIMITS, ...options.input, maxBodyChars: options.maxBodyChars };
  return [
    inputLimitsPlugin(input),
    replicaLimitsPlugin(input, options),
    discoPlugin,
    pingPlugin,
    roomDiscoPlugin,
    ownerPlugin,
    roomSettingsPlugin(options),
    roomCreationPlugin,
    tombstonesPlugin,
    lockPlugin,
    passwordPlugin,
    accessPlugin,
    adminPlugin,
    historyPlugin(options),
    mamPlugin(),
    retractionPlugin,
    limitsPlugin(options),
    registerPlugin,
    invitePlugin,
    selfPingPlugin,
    occupantIqPlugin,
    voiceRequestPlugin,
    serviceAdminPlugin,
    auditPlugin,
    livenessPlugin(options.occupantPingSeconds === undefined ? {} : { intervalSeconds: options.occupantPingSeconds }),
    dmucPrimaryPlugin({
      historyLimit: options.maxHistoryMessages,
      ...(options.links && {
        keepaliveSeconds: options.links.keepaliveSeconds,
        linkTimeoutMs: options.links.linkTimeoutSeconds * 1000,
        splitPingSeconds: options.links.splitPingSeconds,
        markAway: options.links.splitAway,
      }),
    }),
    dmucReplicaPlugin({
      maxHistoryMessages: options.maxHistoryMessages,
      ...(options.links && {
        linkTimeoutMs: options.links.linkTimeoutSeconds * 1000,
        splitPingMs: options.links.splitPingSeconds * 1000,
        trustPrimaryEnter: options.links.trustPrimaryEnter,
        splitAway: options.links.splitAway,
        splitEntry: options.links.splitEntry,
      }),
    }),
  ];
}
