// Every TypeORM entity of the gateway. The DataSource (ormconfig.ts) registers ENTITIES.
import { AuditEvent } from "./AuditEvent.js";
import { HistoryMessage } from "./HistoryMessage.js";
import { LinkPosition } from "./LinkPosition.js";
import { Occupant } from "./Occupant.js";
import { Replica } from "./Replica.js";
import { ReplicaQueueEntry } from "./ReplicaQueueEntry.js";
import { Room } from "./Room.js";
import { RoomAffiliation } from "./RoomAffiliation.js";
import { RoomTombstone } from "./RoomTombstone.js";

export { AuditEvent, type AuditKind } from "./AuditEvent.js";
export { HistoryMessage } from "./HistoryMessage.js";
export { LinkPosition } from "./LinkPosition.js";
export { Occupant, OCCUPANT_ROLES, type OccupantRole } from "./Occupant.js";
export { Replica, REPLICA_STATES, type ReplicaState } from "./Replica.js";
export { ReplicaQueueEntry } from "./ReplicaQueueEntry.js";
export { Room, ROOM_ROLES, type RoomConfig, type RoomRole } from "./Room.js";
export { RoomAffiliation, AFFILIATIONS, type Affiliation } from "./RoomAffiliation.js";
export { RoomTombstone } from "./RoomTombstone.js";
export { CONSTRAINTS } from "./constraints.js";

export const ENTITIES = [Room, RoomAffiliation, Occupant, Replica, HistoryMessage, AuditEvent, RoomTombstone, LinkPosition, ReplicaQueueEntry] as const;
