import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from "typeorm";
import { CONSTRAINTS } from "./constraints.js";
import { Room } from "./Room.js";

const C = CONSTRAINTS.dmucReplicaQueue;

/**
 * A DMUC2 replica's user's stanza the primary has not acknowledged yet (docs/PROTOCOL.md "Durability"):
 * a submission on the link (with its stream and number), or a message sent during a split and kept for
 * the netjoin (no number yet). Deleted when the primary acknowledges it; in `id` order.
 */
@Entity({ name: "dmuc_replica_queue" })
@Index(C.roomIdIdx, ["roomId", "id"])
export class ReplicaQueueEntry {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  /** The replica's copy of the room (rooms row with role 'replica'). */
  @Column({ name: "room_id", type: "bigint" })
  roomId!: string;

  @ManyToOne(() => Room, { nullable: false, onDelete: "CASCADE" })
  @JoinColumn({ name: "room_id", foreignKeyConstraintName: C.roomFkey })
  room?: Room;

  /** The replica's stream and the stanza's number in it; null while it waits for the netjoin. */
  @Column({ name: "stream", type: "text", nullable: true })
  stream!: string | null;

  @Column({ name: "seq", type: "integer", nullable: true })
  seq!: number | null;

  /** The user's stanza as submitted (from the user's full JID, with its origin-id). */
  @Column({ name: "stanza", type: "text" })
  stanza!: string;

  /** When the user sent it: the primary takes a late message with this time. */
  @Column({ name: "sent_at", type: "timestamptz" })
  sentAt!: Date;

  @CreateDateColumn({ name: "created_at", type: "timestamptz" })
  createdAt!: Date;
}
