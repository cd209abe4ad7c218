// Names of the database constraints and indexes, in PostgreSQL's own naming style
// (<table>_pkey, <table>_<columns>_key, <table>_<column>_fkey, <table>_<column>_check, <table>_<columns>_idx).
// The entities use them so that the generated migration has readable names instead of TypeORM's hashes,
// and the code that maps a database error to an XMPP error can test `error.constraint` against them.
//
// Beware: TypeORM's migration:generate compares CHECK constraints by name only. When the values of a
// check change (a new affiliation, a new replica state...), give the check a new name here (e.g. a
// "_v2" suffix) so that the generated migration drops and recreates it, or write that migration by hand.

export const CONSTRAINTS = {
  rooms: {
    pkey: "rooms_pkey",
    jidKey: "rooms_jid_key",
    roleCheck: "rooms_role_check",
  },
  roomAffiliations: {
    pkey: "room_affiliations_pkey",
    roomFkey: "room_affiliations_room_id_fkey",
    roomJidKey: "room_affiliations_room_id_jid_key",
    /** Partial unique index: a reserved nick belongs to one JID of the room. */
    roomNickKey: "room_affiliations_room_id_nick_key",
    affiliationCheck: "room_affiliations_affiliation_check",
  },
  occupants: {
    pkey: "occupants_pkey",
    roomFkey: "occupants_room_id_fkey",
    roomRealJidKey: "occupants_room_id_real_jid_key",
    roomNickIdx: "occupants_room_id_nick_idx",
    roleCheck: "occupants_role_check",
  },
  replicas: {
    pkey: "replicas_pkey",
    roomFkey: "replicas_room_id_fkey",
    roomReplicaJidKey: "replicas_room_id_replica_jid_key",
    stateCheck: "replicas_state_check",
  },
  historyMessages: {
    pkey: "history_messages_pkey",
    roomFkey: "history_messages_room_id_fkey",
    roomStanzaIdKey: "history_messages_room_id_stanza_id_key",
    roomSentAtIdx: "history_messages_room_id_sent_at_id_idx",
    roomSeqIdx: "history_messages_room_id_seq_idx",
    roomJidSentAtIdx: "history_messages_room_jid_sent_at_id_idx",
  },
  dmucLinkPositions: {
    pkey: "dmuc_link_positions_pkey",
    roomFkey: "dmuc_link_positions_room_id_fkey",
    roomPeerJidKey: "dmuc_link_positions_room_id_peer_jid_key",
  },
  dmucReplicaQueue: {
    pkey: "dmuc_replica_queue_pkey",
    roomFkey: "dmuc_replica_queue_room_id_fkey",
    roomIdIdx: "dmuc_replica_queue_room_id_id_idx",
  },
  roomTombstones: {
    pkey: "room_tombstones_pkey",
    expiresIdx: "room_tombstones_expires_at_idx",
  },
  auditEvents: {
    pkey: "audit_events_pkey",
    roomJidSeqKey: "audit_events_room_jid_seq_key",
    kindAtIdx: "audit_events_kind_at_idx",
    actorJidAtIdx: "audit_events_actor_jid_at_idx",
    subjectJidAtIdx: "audit_events_subject_jid_at_idx",
    atIdx: "audit_events_at_idx",
  },
} as const;

/** The SQL of a CHECK constraint that limits a text column to a list of values. */
export function oneOf(column: string, values: readonly string[]): string {
  return `"${column}" IN (${values.map((v) => `'${v.replaceAll("'", "''")}'`).join(", ")})`;
}
