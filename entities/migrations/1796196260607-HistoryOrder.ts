import { MigrationInterface, QueryRunner } from "typeorm";

export class HistoryOrder1796196260607 implements MigrationInterface {
    name = 'HistoryOrder1796196260607'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "history_messages" ADD "seq" BIGSERIAL NOT NULL`);
        await queryRunner.query(`CREATE INDEX "history_messages_room_id_seq_idx" ON "history_messages"  ("room_id", "seq") `);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX "public"."history_messages_room_id_seq_idx"`);
        await queryRunner.query(`ALTER TABLE "history_messages" DROP COLUMN "seq"`);
    }

}
