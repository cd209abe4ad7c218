// The one TypeORM DataSource definition of the gateway.
//
// The gateway calls createDataSource(url) (src/db/database.ts). The default export exists for the TypeORM
// CLI, which loads the compiled file:
//   npx tsc -p . && DATABASE_URL=postgres://... npx typeorm migration:generate -d dist/ormconfig.js entities/migrations/Name
// The CLI accepts exactly one exported DataSource instance, so nothing else here may be a DataSource.
import "reflect-metadata";
import { DataSource } from "typeorm";
import { ENTITIES } from "./entities/index.js";
import { MIGRATIONS } from "./entities/migrations/index.js";

/** Where TypeORM records the applied migrations. */
export const MIGRATIONS_TABLE = "typeorm_migrations";

/** Used only when DATABASE_URL is unset at import time; nothing connects to it unless the CLI is run so. */
const PLACEHOLDER_URL = "postgres://dmuc@127.0.0.1:5432/dmuc";

export function createDataSource(url: string): DataSource {
  return new DataSource({
    type: "postgres",
    url,
    entities: [...ENTITIES],
    migrations: [...MIGRATIONS],
    migrationsTableName: MIGRATIONS_TABLE,
    synchronize: false,
    migrationsRun: false,
    logging: false,
    applicationName: "dmuc-gateway",
    // Without it an unreachable (filtered) host makes the first connection hang for minutes.
    connectTimeoutMS: 10_000,
  });
}

const dataSource = createDataSource(process.env.DATABASE_URL || PLACEHOLDER_URL);
export default dataSource;
