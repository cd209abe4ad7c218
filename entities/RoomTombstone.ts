import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from "typeorm";
import { CONSTRAINTS } from "./constraints.js";

const C = CONSTRAINTS.roomTombstones;

/**
 * A destroyed persistent room, remembered for a while (Prosody's muc_tombstones): entering it is
 * answered with XEP-0045's <gone/> error and the new venue the owner gave, instead of creating it again.
 */
@Entity({ name: "room_tombstones" })
@Index(C.expiresIdx, ["expiresAt"])
export class RoomTombstone {
  /** Bare room JID, lowercased. */
  @PrimaryColumn({ name: "jid", type: "text", primaryKeyConstraintName: C.pkey })
  jid!: string;

  @Column({ name: "reason", type: "text", nullable: true })
  reason!: string | null;

  /** The alternate venue of the <destroy/> (XEP-0045 §10.9), a room JID. */
  @Column({ name: "alternate_venue", type: "text", nullable: true })
  alternateVenue!: string | null;

  @CreateDateColumn({ name: "destroyed_at", type: "timestamptz" })
  destroyedAt!: Date;

  @Column({ name: "expires_at", type: "timestamptz" })
  expiresAt!: Date;
}
