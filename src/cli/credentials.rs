//! The Git credential flags, one definition for `keelson run` and the one-shot commands. Secrets are only
//! ever read from files (mounted Secrets) or, for one-shot commands, from `KEELSON_GIT_TOKEN`: never from a
//! flag value, which would show in process listings.

use std::path::PathBuf;

use crate::source::{GitCredentials, Secret, SourceError};

/// Environment variable holding an HTTP(S) token itself (rather than a file); one-shot commands only.
pub const TOKEN_ENV: &str = "KEELSON_GIT_TOKEN";

/// How to authenticate to the Git remote. Holds file names and the user name, nothing secret.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CredentialArgs {
    /// HTTP(S) user name (default with a token: x-access-token).
    #[arg(long, value_name = "USER", env = "KEELSON_GIT_USERNAME")]
    pub git_username: Option<String>,
    /// File holding the HTTP(S) user name.
    #[arg(
        long,
        value_name = "FILE",
        env = "KEELSON_GIT_USERNAME_FILE",
        conflicts_with = "git_username"
    )]
    pub git_username_file: Option<PathBuf>,
    /// File holding an HTTP(S) token (sent as the password).
    #[arg(
        long,
        value_name = "FILE",
        env = "KEELSON_GIT_TOKEN_FILE",
        conflicts_with = "git_password_file"
    )]
    pub git_token_file: Option<PathBuf>,
    /// File holding the HTTP(S) password.
    #[arg(long, value_name = "FILE", env = "KEELSON_GIT_PASSWORD_FILE")]
    pub git_password_file: Option<PathBuf>,
    /// SSH private key file.
    #[arg(long, value_name = "FILE", env = "KEELSON_SSH_KEY_FILE")]
    pub ssh_key_file: Option<PathBuf>,
    /// File holding the SSH key's passphrase.
    #[arg(long, value_name = "FILE", env = "KEELSON_SSH_PASSPHRASE_FILE")]
    pub ssh_passphrase_file: Option<PathBuf>,
    /// known_hosts file for SSH servers (default ~/.ssh/known_hosts); also spelled --ssh-known-hosts, and
    /// KEELSON_SSH_KNOWN_HOSTS.
    #[arg(
        long,
        value_name = "FILE",
        env = "KEELSON_SSH_KNOWN_HOSTS_FILE",
        visible_alias = "ssh-known-hosts"
    )]
    pub ssh_known_hosts_file: Option<PathBuf>,
}

impl CredentialArgs {
    /// The credentials, with their files read. `token_env` lets `KEELSON_GIT_TOKEN` stand in for a token
    /// file (one-shot commands); the daemon reads files only.
    pub fn credentials(&self, token_env: bool) -> Result<GitCredentials, SourceError> {
        let read = |file: &Option<PathBuf>| file.as_deref().map(Secret::from_file).transpose();
        let password = match (read(&self.git_token_file)?, read(&self.git_password_file)?) {
            (Some(token), _) => Some(token),
            (None, Some(password)) => Some(password),
            (None, None) if token_env => std::env::var(TOKEN_ENV)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new),
            (None, None) => None,
        };
        let username = match read(&self.git_username_file)? {
            Some(user) => Some(user.expose().trim().to_string()),
            None => self.git_username.clone(),
        };
        let known_hosts = self.ssh_known_hosts_file.clone().or_else(|| {
            std::env::var_os("KEELSON_SSH_KNOWN_HOSTS")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        Ok(GitCredentials {
            username,
            password,
            ssh_key: self.ssh_key_file.clone(),
            ssh_passphrase: read(&self.ssh_passphrase_file)?,
            known_hosts,
            insecure_skip_host_key_check: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        credentials: CredentialArgs,
    }

    #[test]
    fn files_are_read_and_every_spelling_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        let password = dir.path().join("password");
        std::fs::write(&user, "deploy-bot\n").unwrap();
        std::fs::write(&password, "s3cret").unwrap();
        let args = |extra: &[&std::ffi::OsStr]| {
            let mut args: Vec<&std::ffi::OsStr> = vec!["k".as_ref()];
            args.extend(extra);
            Cmd::try_parse_from(args)
        };
        let cmd = args(&[
            "--git-username-file".as_ref(),
            user.as_os_str(),
            "--git-password-file".as_ref(),
            password.as_os_str(),
            "--ssh-known-hosts".as_ref(),
            "/etc/kh".as_ref(),
        ])
        .unwrap();
        let credentials = cmd.credentials.credentials(false).unwrap();
        assert_eq!(credentials.username.as_deref(), Some("deploy-bot"));
        assert_eq!(credentials.password.as_ref().map(|p| p.expose()), Some("s3cret"));
        assert_eq!(credentials.known_hosts, Some(PathBuf::from("/etc/kh")));
        assert!(!format!("{cmd:?}").contains("s3cret"));

        let cmd = args(&["--git-token-file".as_ref(), password.as_os_str()]).unwrap();
        let credentials = cmd.credentials.credentials(false).unwrap();
        assert_eq!(credentials.password.as_ref().map(|p| p.expose()), Some("s3cret"));
        assert!(
            args(&[
                "--git-username".as_ref(),
                "a".as_ref(),
                "--git-username-file".as_ref(),
                "/f".as_ref()
            ])
            .is_err()
        );
        assert!(
            args(&[
                "--git-token-file".as_ref(),
                "/a".as_ref(),
                "--git-password-file".as_ref(),
                "/b".as_ref()
            ])
            .is_err()
        );
        let missing = args(&["--git-token-file".as_ref(), dir.path().join("absent").as_os_str()]).unwrap();
        assert!(
            missing.credentials.credentials(false).is_err(),
            "a missing file is an error"
        );
    }
}
