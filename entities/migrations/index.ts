// Every migration, oldest first. Listed explicitly (no globs) so that the compiled dist/ tree and the
// TypeORM CLI find the same set. Add each newly generated migration here.
import type { MigrationInterface } from "typeorm";
import { Initial1795622120469 } from "./1795622120469-Initial.js";
import { ArchiveFlag1796195950637 } from "./1796195950637-ArchiveFlag.js";
import { AuditTrail1796196082879 } from "./1796196082879-AuditTrail.js";
import { HistoryOrder1796196260607 } from "./1796196260607-HistoryOrder.js";
import { ClientsOccupantIdsTombstones1796198207035 } from "./1796198207035-ClientsOccupantIdsTombstones.js";
import { DmucLinkDurability1796209179757 } from "./1796209179757-DmucLinkDurability.js";

export const MIGRATIONS: (new () => MigrationInterface)[] = [Initial1795622120469, ArchiveFlag1796195950637, AuditTrail1796196082879, HistoryOrder1796196260607, ClientsOccupantIdsTombstones1796198207035, DmucLinkDurability1796209179757];
