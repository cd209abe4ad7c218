// The plugins a gateway runs, in registration order (hook priorities decide the order of checks).
import type { Plugin } from "../src/core/service.js";
import { accessPlugin } from "./access.js";
import { adminPlugin } from "./admin.js";
import { discoPlugin } from "./disco.js";
import { dmucReplicaPlugin } from "./dmuc-replica.js";
import { dmucPrimaryPlugin } from "./dmuc-primary.js";
import { historyPlugin } from "./history.js";
import { limitsPlugin, type LimitOptions } from "./limits.js";
import { livenessPlugin } from "./liveness.js";
import { lockPlugin } from "./lock.js";
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
import { selfPingPlugin } from "./self-ping.js";
import { serviceAdminPlugin } from "./service-admin.js";

export interface PluginOptions extends LimitOptions {
  /** The most history messages a room keeps and sends on entering (DMUC_MAX_HISTORY_MESSAGES). */
  maxHistoryMessages: number;
  /** DMUC2 link timing (DMUC_KEEPALIVE, DMUC_LINK_TIMEOUT, DMUC_SPLIT_PING), in seconds; defaults when absent. */
  /** Seconds between two verifications of each occupant's session (DMUC_OCCUPANT_PING); 0: only after reconnecting. */
  occupantPingSeconds?: number;
  links?: { keepaliveSeconds: number; linkTimeoutSeconds: number; splitPingSeconds: number; splitAway: boolean; trustPrimaryEnter: boolean; splitEntry: boolean };
}

export function createPlugins(options: PluginOptions): Plugin[] {
  return [
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
    limitsPlugin(options),
    registerPlugin,
    invitePlugin,
    selfPingPlugin,
    occupantIqPlugin,
    voiceRequestPlugin,
    serviceAdminPlugin,
    livenessPlugin(options.occupantPingSeconds === undefined ? {} : { intervalSeconds: options.occupantPingSeconds }),
    dmucPrimaryPlugin({
      historyLimit: options.maxHistoryMessages,
      ...(options.links && {
        keepaliveSeconds: options.links.keepaliveSeconds,
        queryTimeoutMs: options.links.linkTimeoutSeconds * 1000,
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
