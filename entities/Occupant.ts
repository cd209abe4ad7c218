import { Check, Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from "typeorm";
import { CONSTRAINTS, oneOf } from "./constraints.js";
import { Room } from "./Room.js";

export type OccupantRole = "moderator" | "participant" | "visitor";
export const OCCUPANT_ROLES = ["moderator", "participant", "visitor"] as const satisfies readonly OccupantRole[];

const C = CONSTRAINTS.occupants;

/** A live occupant session, stored so that a gateway restart restores it without kicking anyone. */
@Entity({ name: "occupants" })
@Unique(C.roomRealJidKey, ["roomId", "realJid"])
@Index(C.roomNickIdx, ["roomId", "nick"])
@Check(C.roleCheck, oneOf("role", OCCUPANT_ROLES))
export class Occupant {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  @Column({ name: "room_id", type: "bigint" })
  roomId!: string;

  @ManyToOne(() => Room, { nullable: false, onDelete: "CASCADE" })
  @JoinColumn({ name: "room_id", foreignKeyConstraintName: C.roomFkey })
  room?: Room;

  @Column({ name: "nick", type: "text" })
  nick!: string;

  /** Full JID of the session. */
  @Column({ name: "real_jid", type: "text" })
  realJid!: string;

  @Column({ name: "role", type: "text" })
  role!: OccupantRole;

  /** XEP-0421 occupant id. */
  @Column({ name: "occupant_id", type: "text" })
  occupantId!: string;

  /** The session's last presence stanza as XML, to rebroadcast after a restart. */
  @Column({ name: "presence", type: "text" })
  presence!: string;

  /** The DMUC2 replica through which this occupant is served; null for direct delivery. */
  @Column({ name: "replica_jid", type: "text", nullable: true })
  replicaJid!: string | null;

  @CreateDateColumn({ name: "joined_at", type: "timestamptz" })
  joinedAt!: Date;

  @UpdateDateColumn({ name: "updated_at", type: "timestamptz" })
  updatedAt!: Date;
}
