import { MigrationInterface, QueryRunner } from "typeorm";

export class ArchiveFlag1796195950637 implements MigrationInterface {
    name = 'ArchiveFlag1796195950637'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "history_messages" ADD "archived" boolean NOT NULL DEFAULT true`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "history_messages" DROP COLUMN "archived"`);
    }

}
