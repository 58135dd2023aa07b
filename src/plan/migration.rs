//! Which Jobs migrate a database, and in which phase. OpenStack services name their schema steps in the
//! command (`keystone-manage db_sync --contract`, `glance-manage db expand`, `nova-manage api_db sync`,
//! `neutron-db-manage upgrade --expand`): the job's name and command are what the plan has to go by.

use serde::Serialize;

/// What a migration Job does to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MigrationKind {
    /// A plain schema sync (`db_sync`, `db sync`, `upgrade head`): old and new code may not share it.
    Sync,
    /// The expand phase of a rolling upgrade: additive, the running release keeps working.
    Expand,
    /// Data migrations between expand and contract (`--migrate`, `online_data_migrations`).
    Migrate,
    /// The contract phase: removes what only the previous release used. Not reversible without a restore.
    Contract,
}

/// Words that make a job a migration, checked on its name and command, lowercased, with `-` and `_` alike.
const SYNC_WORDS: &[&str] = &[
    "db_sync",
    "db sync",
    "dbsync",
    "api_db sync",
    "db-manage upgrade",
    "upgrade head",
];

pub fn classify(name: &str, command: &str) -> Option<MigrationKind> {
    let text = format!("{name} {command}").to_ascii_lowercase().replace('-', "_");
    let has = |word: &str| text.contains(&word.replace('-', "_"));
    if has("contract") {
        Some(MigrationKind::Contract)
    } else if has("expand") {
        Some(MigrationKind::Expand)
    } else if has("online_data_migrations") || has("--migrate") || has("db migrate") {
        Some(MigrationKind::Migrate)
    } else if SYNC_WORDS.iter().any(|w| has(w)) {
        Some(MigrationKind::Sync)
    } else {
        None
    }
}

impl MigrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationKind::Sync => "schema sync",
            MigrationKind::Expand => "expand",
            MigrationKind::Migrate => "data migration",
            MigrationKind::Contract => "contract",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openstack_schema_commands_are_recognised() {
        let rows: &[(&str, &str, Option<MigrationKind>)] = &[
            ("db-sync", "keystone-manage db_sync", Some(MigrationKind::Sync)),
            ("db-sync", "nova-manage api_db sync", Some(MigrationKind::Sync)),
            (
                "schema",
                "neutron-db-manage upgrade heads",
                Some(MigrationKind::Sync),
            ),
            (
                "db-expand",
                "keystone-manage db_sync --expand",
                Some(MigrationKind::Expand),
            ),
            (
                "db-migrate",
                "keystone-manage db_sync --migrate",
                Some(MigrationKind::Migrate),
            ),
            (
                "online",
                "nova-manage db online_data_migrations",
                Some(MigrationKind::Migrate),
            ),
            (
                "db-contract",
                "glance-manage db contract",
                Some(MigrationKind::Contract),
            ),
            (
                "fernet-setup",
                "keystone-manage fernet_setup --keystone-user keystone",
                None,
            ),
            ("bootstrap", "keystone-manage bootstrap", None),
            ("discover-hosts", "nova-manage cell_v2 discover_hosts", None),
        ];
        for (name, command, want) in rows {
            assert_eq!(classify(name, command), *want, "{name}: {command}");
        }
    }
}
