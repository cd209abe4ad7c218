import { Column, CreateDateColumn, Entity, Generated, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique } from "typeorm";
import { CONSTRAINTS } from "./constraints.js";
import { Room } from "./Room.js";

const C = CONSTRAINTS.historyMessages;

/**
 * A groupchat message as broadcast by the room, for history on join, DMUC2 replays and auditors. It
 * outlives its room (retention, not deletion): room_id is cleared when the room row goes, room_jid stays.
 */
@Entity({ name: "history_messages" })
@Unique(C.roomStanzaIdKey, ["roomId", "stanzaId"])
@Index(C.roomSentAtIdx, ["roomId", "sentAt", "id"])
@Index(C.roomSeqIdx, ["roomId", "seq"])
@Index(C.roomJidSentAtIdx, ["roomJid", "sentAt", "id"])
export class HistoryMessage {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  /** The living room row; null once the room is destroyed. */
  @Column({ name: "room_id", type: "bigint", nullable: true })
  roomId!: string | null;

  @ManyToOne(() => Room, { nullable: true, onDelete: "SET NULL" })
  @JoinColumn({ name: "room_id", foreignKeyConstraintName: C.roomFkey })
  room?: Room;

  /** The room's bare JID: its identity for auditors after the room is gone. */
  @Column({ name: "room_jid", type: "text" })
  roomJid!: string;

  /** XEP-0359 stanza id assigned by the room; unique per room so that replays are idempotent. */
  @Column({ name: "stanza_id", type: "text" })
  stanzaId!: string;

  /** XEP-0359 origin id given by the sender. */
  @Column({ name: "origin_id", type: "text", nullable: true })
  originId!: string | null;

  /** XEP-0421 occupant id of the sender. */
  @Column({ name: "occupant_id", type: "text", nullable: true })
  occupantId!: string | null;

  @Column({ name: "nick", type: "text" })
  nick!: string;

  /** The sender's real JID, for admins and audit. */
  @Column({ name: "sender_jid", type: "text", nullable: true })
  senderJid!: string | null;

  @Column({ name: "body", type: "text", nullable: true })
  body!: string | null;

  /** The message as broadcast (XML), to replay with its extensions. */
  @Column({ name: "stanza", type: "text" })
  stanza!: string;

  /**
   * Whether the message is in the room's XEP-0313 archive: false when it was sent while the room had
   * archiving turned off (muc#roomconfig_enablearchiving); such rows only serve the join history.
   */
  @Column({ name: "archived", type: "boolean", default: true })
  archived!: boolean;

  /** The room's time of the message. */
  @Column({ name: "sent_at", type: "timestamptz" })
  sentAt!: Date;

  /**
   * The room's order: rows are inserted in the order the room broadcast them (the order occupants
   * saw), and take increasing values of this sequence. Times cannot order them: messages of one batch
   * share one time. Read history ORDER BY seq.
   */
  @Column({ name: "seq", type: "bigint" })
  @Generated("increment")
  seq!: string;

  @CreateDateColumn({ name: "stored_at", type: "timestamptz" })
  storedAt!: Date;
}
