//! The file check on small option data in the generator's format.

use std::collections::BTreeSet;

use super::schema::tests::NOVA_LIKE;
use super::*;

const PLUGINS: &str = r#"
options:
  password:
    opts:
    - {name: auth-url, dest: auth_url, type: string value, default: null}
    - {name: username, dest: username, type: string value, default: null}
    - {name: password, dest: password, type: string value, default: null, secret: true}
    - {name: project-name, dest: project_name, type: string value, default: null}
  v3applicationcredential:
    opts:
    - {name: auth-url, dest: auth_url, type: string value, default: null}
    - {name: application_credential_id, dest: application_credential_id, type: string value, default: null}
"#;

const CINDER_LIKE: &str = r#"
options:
  DEFAULT:
    opts:
    - {name: enabled_backends, dest: enabled_backends, type: list value, default: null}
  backend_defaults:
    opts:
    - {name: volume_driver, dest: volume_driver, type: string value, default: cinder.volume.drivers.lvm.LVMVolumeDriver}
    - {name: volume_group, dest: volume_group, type: string value, default: cinder-volumes}
    - {name: target_port, dest: target_port, type: port value, default: 3260, min: 0, max: 65535}
"#;

const GLANCE_LIKE: &str = r#"
options:
  DEFAULT:
    opts:
    - {name: enabled_backends, dest: enabled_backends, type: dict value, default: null}
    - {name: config_source, dest: config_source, type: list value, default: []}
  file:
    opts:
    - {name: filesystem_store_datadir, dest: filesystem_store_datadir, type: string value, default: /var/lib/glance/images}
  glance.store.rbd.store:
    opts:
    - {name: rbd_store_pool, dest: rbd_store_pool, type: string value, default: images}
  sample_remote_file_source:
    dynamic_group_owner: config_source
    driver_option: driver
    driver_opts:
      remote_file: [uri]
    opts:
    - {name: driver, dest: driver, type: string value, default: null}
    - {name: uri, dest: uri, type: uri value, default: null}
"#;

fn schema(text: &str) -> Schema {
    schema::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

struct Run {
    schema: Schema,
    plugins: Option<Schema>,
    env: BTreeSet<(String, String)>,
}

impl Run {
    fn new(data: &str) -> Run {
        Run {
            schema: schema(data),
            plugins: Some(schema(PLUGINS)),
            env: BTreeSet::new(),
        }
    }

    fn env(mut self, group: &str, option: &str) -> Run {
        self.env.insert((group.into(), option.into()));
        self
    }

    fn check(&self, text: &str) -> Findings {
        check(&Input {
            path: "config/nova/nova.conf",
            text,
            schema: &self.schema,
            data_name: "nova.conf option data of 2025.1",
            auth_plugins: self.plugins.as_ref(),
            env: &self.env,
        })
    }

    /// `line: field: message` of every error.
    fn errors(&self, text: &str) -> Vec<String> {
        let findings = self.check(text);
        findings
            .errors
            .iter()
            .map(|d| format!("{}: {}: {}", d.line, d.field, d.message))
            .collect()
    }

    fn warnings(&self, text: &str) -> Vec<String> {
        let findings = self.check(text);
        findings
            .warnings
            .iter()
            .map(|d| format!("{}: {}: {}", d.line, d.field, d.message))
            .collect()
    }
}

fn nova() -> Run {
    Run::new(NOVA_LIKE)
}

#[track_caller]
fn assert_one(found: Vec<String>, fragments: &[&str]) {
    assert_eq!(found.len(), 1, "{found:#?}");
    for fragment in fragments {
        assert!(found[0].contains(fragment), "`{fragment}` not in {}", found[0]);
    }
}

#[test]
fn a_valid_file_has_no_findings() {
    let text = "[DEFAULT]\ndebug = True\nworkers = 4\nlisten_port = 8774\nmy_ip = 10.0.0.5\npci_alias = a\npci_alias = b\nlog_file = $state_path/nova.log\n\n[api]\nauth_strategy = keystone\n";
    assert_eq!(nova().check(text), Findings::default());
}

#[test]
fn findings_are_displayed_as_file_line_group_option() {
    let findings = nova().check("[DEFAULT]\nworkers = many\n");
    let shown: Vec<String> = findings.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["config/nova/nova.conf:2: [DEFAULT] workers: `many` is not an integer"]
    );
}

#[test]
fn unknown_groups_are_reported_once_at_their_header() {
    let found = nova().errors("[DEFAULT]\n[apii]\nx = 1\ny = 2\n[apii]\nz = 3\n");
    assert_one(found, &["2: [apii]: unknown group", "(did you mean [api]?)"]);
}

#[test]
fn a_lower_case_default_section_is_not_the_default_group() {
    let found = nova().errors("[default]\ndebug = true\n");
    assert_one(found, &["[default]: unknown group", "did you mean [DEFAULT]"]);
}

#[test]
fn unknown_options_are_errors_with_a_suggestion() {
    assert_one(
        nova().errors("[DEFAULT]\nworkres = 4\n"),
        &[
            "2: [DEFAULT] workres: unknown option",
            "(removed or misspelt)",
            "did you mean `workers`",
        ],
    );
    assert_one(
        nova().errors("[api]\nmy_ip = 10.0.0.1\n"),
        &[
            "[api] my_ip: unknown option",
            "an option of that name is in [DEFAULT]",
        ],
    );
}

#[test]
fn command_line_spellings_are_refused_in_files() {
    assert_one(
        nova().errors("[neutron]\nauth_type = password\nauth-url = http://k:5000\n"),
        &["[neutron] auth-url", "reads this option from files as `auth_url`"],
    );
}

#[test]
fn deprecated_names_and_options_warn_and_do_not_block() {
    let text = "[DEFAULT]\nlogfile = /var/log/nova.log\nold_thing = x\n[api]\nold_limit = 10\n";
    let run = nova();
    assert!(run.errors(text).is_empty(), "{:?}", run.errors(text));
    let warnings = run.warnings(text);
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(warnings[0].contains("2: [DEFAULT] logfile: deprecated name: use [DEFAULT] log_file instead"));
    assert!(
        warnings[1]
            .contains("3: [DEFAULT] old_thing: deprecated for removal since 30.0.0: Nothing reads it.")
    );
    assert!(warnings[2].contains("5: [api] old_limit: deprecated name: use [api] max_limit instead"));
}

#[test]
fn a_group_whose_options_moved_warns_for_each_of_them() {
    let run = nova();
    let text = "[osapi_v21]\nproject_id_regex = [0-9a-f]+\nother = 1\n";
    assert_one(
        run.warnings(text),
        &["2: [osapi_v21] project_id_regex: deprecated name: use [api] project_id_regex"],
    );
    assert_one(run.errors(text), &["3: [osapi_v21] other: unknown option"]);
}

#[test]
fn a_deprecated_name_is_checked_against_its_replacement_type() {
    assert_one(
        nova().errors("[api]\nold_limit = lots\n"),
        &["[api] old_limit", "is not an integer"],
    );
}

#[test]
fn type_choice_and_bound_errors_name_the_line() {
    let text = "[DEFAULT]\ndebug = enabled\nworkers = 0\nlisten_port = 99999\nmy_ip = 10.0.0\nallocation_ratio = x\n[api]\nauth_strategy = ldap\n";
    let found = nova().errors(text);
    assert_eq!(found.len(), 6, "{found:#?}");
    assert!(found[0].starts_with("2: [DEFAULT] debug: `enabled` is not a boolean"));
    assert!(found[1].starts_with("3: [DEFAULT] workers: `0` is below the minimum 1"));
    assert!(found[2].starts_with("4: [DEFAULT] listen_port: `99999` is above the maximum 65535"));
    assert!(found[3].starts_with("5: [DEFAULT] my_ip: `10.0.0` is not an IP address or a host name"));
    assert!(found[4].starts_with("6: [DEFAULT] allocation_ratio: `x` is not a number"));
    assert!(found[5].starts_with("8: [api] auth_strategy: `ldap` is not one of `keystone`, `noauth2`"));
}

#[test]
fn secret_values_stay_out_of_messages() {
    let text = "[neutron]\nmetadata_proxy_shared_secret = s3cr3t\nurl = $metadata_proxy_shared_secret\n";
    let found = nova().errors(text);
    assert_one(found.clone(), &["[neutron] url"]);
    assert!(!found[0].contains("s3cr3t"), "{found:?}");
}

#[test]
fn substitution_uses_the_file_then_the_default_and_refuses_unknown_names() {
    let run = nova();
    assert!(
        run.errors("[DEFAULT]\nstate_path = /srv\nlog_file = $state_path/x\n")
            .is_empty()
    );
    assert!(
        run.errors("[DEFAULT]\nlisten_port = ${DEFAULT.workers}\nworkers = 8\n")
            .is_empty()
    );
    let found = run.errors("[DEFAULT]\nworkers = $listen_port\nlisten_port = x\n");
    assert_eq!(
        found,
        [
            "2: [DEFAULT] workers: `x` is not an integer (after substitution of `$listen_port`)",
            "3: [DEFAULT] listen_port: `x` is not a port number",
        ]
    );
    assert_one(
        run.errors("[DEFAULT]\nworkers = $listen_port0\n"),
        &["[DEFAULT] workers", "`$listen_port0` refers to no option", "`$$`"],
    );
    assert_one(
        run.errors("[DEFAULT]\nworkers = $state_path\n"),
        &["`/var/lib/nova` is not an integer (after substitution of `$state_path`)"],
    );
    // Escapes and a lone dollar are literal.
    assert!(run.errors("[DEFAULT]\nlog_file = pa$$word\\$x $ 1$\n").is_empty());
}

#[test]
fn values_from_the_environment_or_computed_at_run_time_are_not_guessed() {
    let run = nova().env("DEFAULT", "STATE_PATH");
    assert!(run.errors("[DEFAULT]\nworkers = $state_path\n").is_empty());
    assert!(nova().errors("[DEFAULT]\nworkers = $pybasedir\n").is_empty());
    assert!(
        !nova()
            .errors("[DEFAULT]\npybasedir = /srv\nworkers = $pybasedir\n")
            .is_empty()
    );
}

#[test]
fn a_key_written_twice_warns_unless_the_option_is_multi_valued() {
    let run = nova();
    let text = "[DEFAULT]\nworkers = 1\npci_alias = a\npci_alias = b\nworkers = 2\n";
    assert_one(
        run.warnings(text),
        &["5: [DEFAULT] workers: set again (first at line 2)"],
    );
}

#[test]
fn auth_plugin_groups_take_the_options_of_the_plugin_auth_type_names() {
    let run = nova();
    let text = "[neutron]\nauth_type = password\nauth_url = http://k:5000\nusername = nova\nproject_name = service\n";
    assert!(run.errors(text).is_empty(), "{:?}", run.errors(text));
    assert_one(
        run.errors("[neutron]\nauth_type = password\nusernme = nova\n"),
        &[
            "[neutron] usernme",
            "keystoneauth1 plugin `password`",
            "did you mean `username`",
        ],
    );
    assert_one(
        run.errors("[neutron]\nauth_type = v3applicationcredential\nusername = nova\n"),
        &["[neutron] username", "plugin `v3applicationcredential`"],
    );
    assert_one(
        run.errors("[neutron]\nauth_type = kerberos\nusername = nova\n"),
        &["`kerberos`, which is no keystoneauth1 authentication plugin"],
    );
    assert_one(
        run.errors("[neutron]\nusername = nova\n"),
        &["[neutron] username", "sets no auth_type"],
    );
    // The plugin may be chosen in the environment.
    assert!(
        nova()
            .env("NEUTRON", "AUTH_TYPE")
            .errors("[neutron]\nusername = nova\n")
            .is_empty()
    );
    let without = Run {
        plugins: None,
        ..nova()
    };
    assert_one(
        without.errors("[neutron]\nauth_type = password\nusername = nova\n"),
        &["authPlugins"],
    );
}

#[test]
fn auth_section_moves_the_plugin_options_to_the_named_group() {
    let text = "[neutron]\nauth_section = creds\n[creds]\nauth_type = password\nusername = nova\n";
    assert!(nova().errors(text).is_empty(), "{:?}", nova().errors(text));
}

#[test]
fn cinder_backends_named_in_enabled_backends_take_the_backend_defaults() {
    let run = Run::new(CINDER_LIKE);
    let text = "[DEFAULT]\nenabled_backends = lvm-1, ceph\n[lvm-1]\nvolume_group = cinder-volumes\n[ceph]\ntarget_port = x\nvolume_grp = y\n[other]\nvolume_group = z\n";
    let found = run.errors(text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("8: [other]: unknown group"));
    assert!(found[1].starts_with("6: [ceph] target_port: `x` is not a port number"));
    assert!(found[2].contains("7: [ceph] volume_grp: unknown option"));
    assert!(found[2].contains("named by [DEFAULT] enabled_backends"));
    assert_eq!(dynamic_sections(text, &run.schema), ["ceph", "lvm-1"]);
}

#[test]
fn glance_stores_take_the_options_of_their_store_type() {
    let run = Run::new(GLANCE_LIKE);
    let text = "[DEFAULT]\nenabled_backends = local:file, fast:rbd\n[local]\nfilesystem_store_datadir = /srv\n[fast]\nrbd_store_pool = images\n[os_glance_staging_store]\nfilesystem_store_datadir = /staging\n";
    assert!(run.errors(text).is_empty(), "{:?}", run.errors(text));
    assert_one(
        run.errors("[DEFAULT]\nenabled_backends = s3:swiftish\n"),
        &["[DEFAULT] enabled_backends", "type `swiftish`"],
    );
    assert_one(
        run.errors("[DEFAULT]\nenabled_backends = local:file\n[local]\nrbd_store_pool = x\n"),
        &["[local] rbd_store_pool: unknown option"],
    );
}

#[test]
fn oslo_dynamic_groups_take_their_driver_options() {
    let text = "[DEFAULT]\nconfig_source = remote\n[remote]\ndriver = remote_file\nuri = http://conf.example/nova.conf\n";
    let run = Run::new(GLANCE_LIKE);
    assert!(run.errors(text).is_empty(), "{:?}", run.errors(text));
    assert_one(
        run.errors("[DEFAULT]\nconfig_source = remote\n[remote]\ndriver = remote_file\nuri = nowhere\n"),
        &["[remote] uri", "is not a URI"],
    );
}

#[test]
fn syntax_errors_block() {
    let found = nova().errors("debug = true\n[DEFAULT]\n  indented\n");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("1: .: `debug` is set before any [section]"));
    assert!(found[1].starts_with("3: .: unexpected continuation line"));
}

#[test]
fn release_series_come_from_kolla_tags() {
    assert_eq!(tag_series("2025.1-ubuntu-noble").as_deref(), Some("2025.1"));
    assert_eq!(tag_series("2024.2").as_deref(), Some("2024.2"));
    assert_eq!(tag_series("epoxy-rocky-9").as_deref(), Some("2025.1"));
    assert_eq!(tag_series("master-debian-bookworm").as_deref(), Some("master"));
    assert_eq!(tag_series("latest"), None);
    assert_eq!(tag_series("2025.1.3"), None);
    assert_eq!(
        image_series("registry.local:5000/kolla/nova-api:2025.2-ubuntu-noble@sha256:00").as_deref(),
        Some("2025.2")
    );
    assert_eq!(image_series("registry.local:5000/kolla/nova-api@sha256:00"), None);
    assert!(is_release("2025.1") && is_release("master") && !is_release("2025") && !is_release("epoxy"));
}

#[test]
fn environment_variables_map_to_options() {
    assert_eq!(
        env_option("OS_KEYSTONE_AUTHTOKEN__PASSWORD"),
        Some(("KEYSTONE_AUTHTOKEN".into(), "PASSWORD".into()))
    );
    assert_eq!(env_option("OS_AUTH_URL"), None);
    assert_eq!(env_option("KOLLA_CONFIG_STRATEGY"), None);
}
