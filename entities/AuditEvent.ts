import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from "typeorm";
import { CONSTRAINTS } from "./constraints.js";

/** Known kinds of audit events; others may be added by plugins, so the column is not constrained. */
export type AuditKind =
  | "room.created"
  | "room.destroyed"
  | "affiliation.changed"
  | "occupant.kicked"
  | "occupant.banned"
  | "config.changed"
  | "link.split"
  | "link.healed";

const C = CONSTRAINTS.auditEvents;

/** The audit trail. room_jid is deliberately not a foreign key: the trail outlives the rooms. */
@Entity({ name: "audit_events" })
@Index(C.roomJidAtIdx, ["roomJid", "at"])
@Index(C.kindAtIdx, ["kind", "at"])
export class AuditEvent {
  @PrimaryGeneratedColumn("identity", { name: "id", type: "bigint", generatedIdentity: "BY DEFAULT", primaryKeyConstraintName: C.pkey })
  id!: string;

  @CreateDateColumn({ name: "at", type: "timestamptz" })
  at!: Date;

  @Column({ name: "room_jid", type: "text", nullable: true })
  roomJid!: string | null;

  @Column({ name: "actor_jid", type: "text", nullable: true })
  actorJid!: string | null;

  @Column({ name: "kind", type: "text" })
  kind!: AuditKind | (string & {});

  @Column({ name: "details", type: "jsonb", default: () => "'{}'" })
  details!: Record<string, unknown>;
}
