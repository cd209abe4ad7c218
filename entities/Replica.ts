import { Check, Column, CreateDateColumn, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from "typeorm";
import { CONSTRAINTS, oneOf } from "./constraints.js";
import { Room } from "./Room.js";

export type ReplicaState = "negotiating" | "active" | "split" | "closed";
export const REPLICA_STATES = ["negotiating", "active", "split", "closed"] as const satisfies readonly ReplicaState[];

const C = CONSTRAINTS.replicas;

/**
 * A DMUC2 (XEP-0282) link of a room: on the primary, one row per replica; on a replica, its own link
 * to the primary.
 */
@Entity({ name: "replicas" })
@Unique(C.roomReplicaJidKey, ["roomId", "replicaJid"])
@Check(C.stateCheck, oneOf("state", REPLICA_STATES))
export class Replica {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  @Column({ name: "room_id", type: "bigint" })
  roomId!: string;

  @ManyToOne(() => Room, { nullable: false, onDelete: "CASCADE" })
  @JoinColumn({ name: "room_id", foreignKeyConstraintName: C.roomFkey })
  room?: Room;

  /** The replica component's JID, e.g. dmuc.vesa.example. */
  @Column({ name: "replica_jid", type: "text" })
  replicaJid!: string;

  /** The user domain the replica serves. */
  @Column({ name: "served_domain", type: "text" })
  servedDomain!: string;

  @Column({ name: "state", type: "text" })
  state!: ReplicaState;

  @Column({ name: "keepalive_seconds", type: "integer" })
  keepaliveSeconds!: number;

  @Column({ name: "history_limit", type: "integer", nullable: true })
  historyLimit!: number | null;

  @Column({ name: "last_seen_at", type: "timestamptz", nullable: true })
  lastSeenAt!: Date | null;

  @Column({ name: "split_since", type: "timestamptz", nullable: true })
  splitSince!: Date | null;

  @CreateDateColumn({ name: "created_at", type: "timestamptz" })
  createdAt!: Date;

  @UpdateDateColumn({ name: "updated_at", type: "timestamptz" })
  updatedAt!: Date;
}
