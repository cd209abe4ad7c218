import { MigrationInterface, QueryRunner } from "typeorm";

export class ClientsOccupantIdsTombstones1796198207035 implements MigrationInterface {
    name = 'ClientsOccupantIdsTombstones1796198207035'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "room_tombstones" ("jid" text NOT NULL, "reason" text, "alternate_venue" text, "destroyed_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT "room_tombstones_pkey" PRIMARY KEY ("jid"))`);
        await queryRunner.query(`CREATE INDEX "room_tombstones_expires_at_idx" ON "room_tombstones"  ("expires_at") `);
        await queryRunner.query(`ALTER TABLE "rooms" ADD "occupant_id_secret" text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text) || md5(gen_random_uuid()::text)`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "rooms" DROP COLUMN "occupant_id_secret"`);
        await queryRunner.query(`DROP INDEX "public"."room_tombstones_expires_at_idx"`);
        await queryRunner.query(`DROP TABLE "room_tombstones"`);
    }

}
