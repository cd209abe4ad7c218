import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, Unique } from "typeorm";
import { CONSTRAINTS } from "./constraints.js";

/**
 * Known kinds of audit events (docs/AUDIT.md lists their details); plugins may add others, so the
 * column is not constrained.
 */
export type AuditKind =
  | "room.created"
  | "room.destroyed"
  | "config.changed"
  | "subject.changed"
  | "occupant.entered"
  | "occupant.left"
  | "occupant.entry_refused"
  | "nick.changed"
  | "role.changed"
  | "affiliation.changed"
  | "occupant.kicked"
  | "occupant.banned"
  | "invitation.sent"
  | "invitation.declined"
  | "registration.refused"
  | "message"
  | "retention.purged"
  | "link.created"
  | "link.split"
  | "link.healed";

const C = CONSTRAINTS.auditEvents;

/**
 * The audit trail. room_jid is deliberately not a foreign key: the trail outlives the rooms. Each
 * room's rows form a hash chain (seq, prev_hash, hash; src/core/audit-chain.ts); rows written before
 * the chain existed have none.
 */
@Entity({ name: "audit_events" })
@Unique(C.roomJidSeqKey, ["roomJid", "seq"])
@Index(C.kindAtIdx, ["kind", "at"])
@Index(C.actorJidAtIdx, ["actorJid", "at"])
@Index(C.subjectJidAtIdx, ["subjectJid", "at"])
@Index(C.atIdx, ["at"])
export class AuditEvent {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  @CreateDateColumn({ name: "at", type: "timestamptz" })
  at!: Date;

  /** The room, or the service's domain for events about no room. */
  @Column({ name: "room_jid", type: "text", nullable: true })
  roomJid!: string | null;

  /** The bare JID of who acted; null when the room or the gateway itself acted. */
  @Column({ name: "actor_jid", type: "text", nullable: true })
  actorJid!: string | null;

  /** The bare JID the event is about (the occupant who entered, the user kicked or banned...). */
  @Column({ name: "subject_jid", type: "text", nullable: true })
  subjectJid!: string | null;

  @Column({ name: "kind", type: "text" })
  kind!: AuditKind | (string & {});

  @Column({ name: "details", type: "jsonb", default: () => "'{}'" })
  details!: Record<string, unknown>;

  /** Position in the room's chain, from 1. */
  @Column({ name: "seq", type: "bigint", nullable: true })
  seq!: string | null;

  /** SHA-256 (hex) of the previous row of the room's chain; 64 zeros for the first. */
  @Column({ name: "prev_hash", type: "text", nullable: true })
  prevHash!: string | null;

  /** SHA-256 (hex) of this row's canonical form, which includes prev_hash. */
  @Column({ name: "hash", type: "text", nullable: true })
  hash!: string | null;
}
