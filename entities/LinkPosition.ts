import { Column, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from "typeorm";
import { CONSTRAINTS } from "./constraints.js";
import { Room } from "./Room.js";

const C = CONSTRAINTS.dmucLinkPositions;

/**
 * Where one end of a DMUC2 link stands in its two streams (docs/PROTOCOL.md "The reliable link",
 * "Durability"): on the primary, one row per room and replica; on a replica, one per replicated room.
 * Written in the same transaction as what moved it, so that a restarted gateway goes on where it was.
 */
@Entity({ name: "dmuc_link_positions" })
@Unique(C.roomPeerJidKey, ["roomId", "peerJid"])
export class LinkPosition {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  @Column({ name: "room_id", type: "bigint" })
  roomId!: string;

  @ManyToOne(() => Room, { nullable: false, onDelete: "CASCADE" })
  @JoinColumn({ name: "room_id", foreignKeyConstraintName: C.roomFkey })
  room?: Room;

  /** The other end: the replica's JID on the primary, the room's (primary's) JID on a replica. */
  @Column({ name: "peer_jid", type: "text" })
  peerJid!: string;

  /**
   * Our stream and the number its next stanza gets (a replica's submissions). Null on the primary: its
   * stream starts again after a restart, and the netjoin resends what the replica missed from the history.
   */
  @Column({ name: "out_stream", type: "text", nullable: true })
  outStream!: string | null;

  @Column({ name: "out_next_seq", type: "integer", nullable: true })
  outNextSeq!: number | null;

  /** The other side's stream we apply, and the last of its numbers applied here. */
  @Column({ name: "in_stream", type: "text", nullable: true })
  inStream!: string | null;

  @Column({ name: "in_applied", type: "integer", default: 0 })
  inApplied!: number;

  /** Replica: origin-ids of messages its users already saw by local continuation (not delivered again). */
  @Column({ name: "early_origin_ids", type: "text", array: true, default: () => "'{}'" })
  earlyOriginIds!: string[];

  /**
   * Replica: a netjoin's catch-up under way (null: none), read page by page: from the split's start
   * (catchup_since), after the last message read (catchup_after; null: none read yet).
   */
  @Column({ name: "catchup_since", type: "timestamptz", nullable: true })
  catchUpSince!: Date | null;

  @Column({ name: "catchup_after", type: "text", nullable: true })
  catchUpAfter!: string | null;

  @UpdateDateColumn({ name: "updated_at", type: "timestamptz" })
  updatedAt!: Date;
}
