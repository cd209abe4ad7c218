import { MigrationInterface, QueryRunner } from "typeorm";

export class AuditTrail1796196082879 implements MigrationInterface {
    name = 'AuditTrail1796196082879'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "history_messages" DROP CONSTRAINT "history_messages_room_id_fkey"`);
        await queryRunner.query(`DROP INDEX "public"."audit_events_room_jid_at_idx"`);
        await queryRunner.query(`ALTER TABLE "audit_events" ADD "subject_jid" text`);
        await queryRunner.query(`ALTER TABLE "audit_events" ADD "seq" bigint`);
        await queryRunner.query(`ALTER TABLE "audit_events" ADD "prev_hash" text`);
        await queryRunner.query(`ALTER TABLE "audit_events" ADD "hash" text`);
        // Hand-edited: rows already stored take their room's JID before the column becomes NOT NULL.
        await queryRunner.query(`ALTER TABLE "history_messages" ADD "room_jid" text`);
        await queryRunner.query(`UPDATE "history_messages" h SET "room_jid" = r."jid" FROM "rooms" r WHERE r."id" = h."room_id"`);
        await queryRunner.query(`ALTER TABLE "history_messages" ALTER COLUMN "room_jid" SET NOT NULL`);
        await queryRunner.query(`DROP INDEX "public"."history_messages_room_id_sent_at_id_idx"`);
        await queryRunner.query(`ALTER TABLE "history_messages" DROP CONSTRAINT "history_messages_room_id_stanza_id_key"`);
        await queryRunner.query(`ALTER TABLE "history_messages" ALTER COLUMN "room_id" DROP NOT NULL`);
        await queryRunner.query(`CREATE INDEX "audit_events_at_idx" ON "audit_events"  ("at") `);
        await queryRunner.query(`CREATE INDEX "audit_events_subject_jid_at_idx" ON "audit_events"  ("subject_jid", "at") `);
        await queryRunner.query(`CREATE INDEX "audit_events_actor_jid_at_idx" ON "audit_events"  ("actor_jid", "at") `);
        await queryRunner.query(`CREATE INDEX "history_messages_room_jid_sent_at_id_idx" ON "history_messages"  ("room_jid", "sent_at", "id") `);
        await queryRunner.query(`CREATE INDEX "history_messages_room_id_sent_at_id_idx" ON "history_messages"  ("room_id", "sent_at", "id") `);
        await queryRunner.query(`ALTER TABLE "audit_events" ADD CONSTRAINT "audit_events_room_jid_seq_key" UNIQUE ("room_jid", "seq")`);
        await queryRunner.query(`ALTER TABLE "history_messages" ADD CONSTRAINT "history_messages_room_id_stanza_id_key" UNIQUE ("room_id", "stanza_id")`);
        await queryRunner.query(`ALTER TABLE "history_messages" ADD CONSTRAINT "history_messages_room_id_fkey" FOREIGN KEY ("room_id") REFERENCES "rooms"("id") ON DELETE SET NULL ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "history_messages" DROP CONSTRAINT "history_messages_room_id_fkey"`);
        await queryRunner.query(`ALTER TABLE "history_messages" DROP CONSTRAINT "history_messages_room_id_stanza_id_key"`);
        await queryRunner.query(`ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_room_jid_seq_key"`);
        await queryRunner.query(`DROP INDEX "public"."history_messages_room_id_sent_at_id_idx"`);
        await queryRunner.query(`DROP INDEX "public"."history_messages_room_jid_sent_at_id_idx"`);
        await queryRunner.query(`DROP INDEX "public"."audit_events_actor_jid_at_idx"`);
        await queryRunner.query(`DROP INDEX "public"."audit_events_subject_jid_at_idx"`);
        await queryRunner.query(`DROP INDEX "public"."audit_events_at_idx"`);
        // Hand-edited: messages of destroyed rooms cannot go back under the old NOT NULL room_id.
        await queryRunner.query(`DELETE FROM "history_messages" WHERE "room_id" IS NULL`);
        await queryRunner.query(`ALTER TABLE "history_messages" ALTER COLUMN "room_id" SET NOT NULL`);
        await queryRunner.query(`ALTER TABLE "history_messages" ADD CONSTRAINT "history_messages_room_id_stanza_id_key" UNIQUE ("room_id", "stanza_id")`);
        await queryRunner.query(`CREATE INDEX "history_messages_room_id_sent_at_id_idx" ON "history_messages" USING btree ("room_id", "sent_at", "id") `);
        await queryRunner.query(`ALTER TABLE "history_messages" DROP COLUMN "room_jid"`);
        await queryRunner.query(`ALTER TABLE "audit_events" DROP COLUMN "hash"`);
        await queryRunner.query(`ALTER TABLE "audit_events" DROP COLUMN "prev_hash"`);
        await queryRunner.query(`ALTER TABLE "audit_events" DROP COLUMN "seq"`);
        await queryRunner.query(`ALTER TABLE "audit_events" DROP COLUMN "subject_jid"`);
        await queryRunner.query(`CREATE INDEX "audit_events_room_jid_at_idx" ON "audit_events" USING btree ("room_jid", "at") `);
        await queryRunner.query(`ALTER TABLE "history_messages" ADD CONSTRAINT "history_messages_room_id_fkey" FOREIGN KEY ("room_id") REFERENCES "rooms"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    }

}
