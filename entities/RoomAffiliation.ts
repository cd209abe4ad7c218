import { Check, Column, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from "typeorm";
import { CONSTRAINTS, oneOf } from "./constraints.js";
import { Room } from "./Room.js";

export type Affiliation = "owner" | "admin" | "member" | "outcast";
export const AFFILIATIONS = ["owner", "admin", "member", "outcast"] as const satisfies readonly Affiliation[];

const C = CONSTRAINTS.roomAffiliations;

/** A stored affiliation (XEP-0045 §5.2); "none" is the absence of a row. */
@Entity({ name: "room_affiliations" })
@Unique(C.roomJidKey, ["roomId", "jid"])
@Index(C.roomNickKey, ["roomId", "nick"], { unique: true, where: `"nick" IS NOT NULL` })
@Check(C.affiliationCheck, oneOf("affiliation", AFFILIATIONS))
export class RoomAffiliation {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  @Column({ name: "room_id", type: "bigint" })
  roomId!: string;

  @ManyToOne(() => Room, { nullable: false, onDelete: "CASCADE" })
  @JoinColumn({ name: "room_id", foreignKeyConstraintName: C.roomFkey })
  room?: Room;

  /** A bare JID, or a domain JID (affects every user of that domain). */
  @Column({ name: "jid", type: "text" })
  jid!: string;

  @Column({ name: "affiliation", type: "text" })
  affiliation!: Affiliation;

  @Column({ name: "reason", type: "text", nullable: true })
  reason!: string | null;

  /** Reserved nick (XEP-0045 §7.10); unique within the room. */
  @Column({ name: "nick", type: "text", nullable: true })
  nick!: string | null;

  @UpdateDateColumn({ name: "updated_at", type: "timestamptz" })
  updatedAt!: Date;
}
