import { Check, Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from "typeorm";
import { CONSTRAINTS, oneOf } from "./constraints.js";

/** primary: this gateway hosts the room. replica: a DMUC2 (XEP-0282) replica of a room hosted elsewhere. */
export type RoomRole = "primary" | "replica";
export const ROOM_ROLES = ["primary", "replica"] as const satisfies readonly RoomRole[];

/** Room configuration, owned by the feature plugins (name, description, persistent, members-only, password...). */
export type RoomConfig = Record<string, unknown>;

const C = CONSTRAINTS.rooms;

@Entity({ name: "rooms" })
@Unique(C.jidKey, ["jid"])
@Check(C.roleCheck, oneOf("role", ROOM_ROLES))
export class Room {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  /** Bare room JID, lowercased. */
  @Column({ name: "jid", type: "text" })
  jid!: string;

  @Column({ name: "role", type: "text" })
  role!: RoomRole;

  /** For replicas: the component JID of the primary. */
  @Column({ name: "primary_jid", type: "text", nullable: true })
  primaryJid!: string | null;

  @Column({ name: "config", type: "jsonb", default: () => "'{}'" })
  config!: RoomConfig;

  @Column({ name: "subject", type: "text", nullable: true })
  subject!: string | null;

  @Column({ name: "subject_nick", type: "text", nullable: true })
  subjectNick!: string | null;

  @Column({ name: "subject_changed_at", type: "timestamptz", nullable: true })
  subjectChangedAt!: Date | null;

  /**
   * The room's key for XEP-0421 occupant-ids (HMAC of the bare JID): stable across restarts and visits,
   * unlinkable between rooms. Rows from before it existed get a random one.
   */
  @Column({ name: "occupant_id_secret", type: "text", default: () => "md5(random()::text || clock_timestamp()::text) || md5(gen_random_uuid()::text)" })
  occupantIdSecret!: string;

  /** A newly reserved room that its owner has not configured yet (XEP-0045 §10.1.3). */
  @Column({ name: "locked", type: "boolean", default: false })
  locked!: boolean;

  @CreateDateColumn({ name: "created_at", type: "timestamptz" })
  createdAt!: Date;

  @UpdateDateColumn({ name: "updated_at", type: "timestamptz" })
  updatedAt!: Date;
}
