//! Commit metadata for status and plans, including whether a commit is a `git revert`.

use super::CommitInfo;

/// The sha a `git revert` commit names: `git revert` writes `This reverts commit <sha>.` into the message.
/// The last such line wins, because a revert of a revert quotes the earlier message above its own line.
pub fn parse_revert(message: &str) -> Option<String> {
    message.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix("This reverts commit ")?;
        let sha: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        // Abbreviated shas are allowed by hand-written messages; fewer than 7 digits is not a sha.
        let after = &rest[sha.len()..];
        let well_ended =
            after.is_empty() || after.starts_with('.') || after.starts_with(',') || after.starts_with(' ');
        ((7..=64).contains(&sha.len()) && well_ended).then(|| sha.to_ascii_lowercase())
    })
}

/// The trailers of a commit message (`Signed-off-by: ...`, `Keelson-Allow-Downgrade: nova`), in order, keys as
/// written. Like Git, trailers are the message's last paragraph, never its subject, and only when every line
/// of it is a `Key: value` trailer or the indented continuation of one: a `Key: value` line inside prose
/// is not a trailer, so it cannot allow anything by accident.
pub fn parse_trailers(message: &str) -> Vec<(String, String)> {
    let paragraphs: Vec<&str> = message
        .split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .collect();
    let [_, .., last] = paragraphs.as_slice() else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for line in last.lines() {
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                None => return Vec::new(),
            }
        }
        let Some((key, value)) = line.split_once(':') else {
            return Vec::new();
        };
        let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !key_ok {
            return Vec::new();
        }
        out.push((key.to_string(), value.trim().to_string()));
    }
    out
}

/// Reads the metadata of a commit object.
pub(crate) fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    let subject = message.lines().next().unwrap_or("").trim().to_string();
    let author = commit.author();
    CommitInfo {
        sha: commit.id().to_string(),
        subject,
        reverts: parse_revert(&message),
        message,
        author_name: String::from_utf8_lossy(author.name_bytes()).into_owned(),
        author_email: String::from_utf8_lossy(author.email_bytes()).into_owned(),
        time: author.when().seconds(),
        parents: commit.parent_ids().map(|id| id.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_the_last_paragraph_only() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let rows: Vec<(&str, Vec<(String, String)>)> = vec![
            (
                "Revert \"Nova 2025.2\"\n\nThis reverts commit abc1234.\n\nKeelson-Allow-Downgrade: nova\nSigned-off-by: A <a@b>\n",
                pairs(&[("Keelson-Allow-Downgrade", "nova"), ("Signed-off-by", "A <a@b>")]),
            ),
            (
                "Subject\n\nkeelson-allow-downgrade:  nova, glance \n  keystone\n\n\n",
                pairs(&[("keelson-allow-downgrade", "nova, glance keystone")]),
            ),
            ("Keelson-Allow-Downgrade: nova", vec![]),
            ("Subject\n\nKeelson-Allow-Downgrade: nova\n\nMore prose.", vec![]),
            (
                "Subject\n\nWe may later say\nKeelson-Allow-Downgrade: nova",
                vec![],
            ),
            ("Subject\n\nBad Key: nova", vec![]),
            ("Subject\n\n  indented: first", vec![]),
            ("", vec![]),
        ];
        for (message, want) in rows {
            assert_eq!(parse_trailers(message), want, "{message:?}");
        }
    }

    #[test]
    fn finds_the_reverted_sha() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let rows: &[(&str, Option<&str>)] = &[
            (
                "Revert \"Add nova\"\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.\n",
                Some(sha),
            ),
            (
                "Revert\n\nThis reverts commit 0123456789ABCDEF0123456789ABCDEF01234567.",
                Some(sha),
            ),
            (
                "Revert\n\n  This reverts commit 0123456789abcdef0123456789abcdef01234567, reversing\nchanges",
                Some(sha),
            ),
            ("Revert\n\nThis reverts commit abc1234.", Some("abc1234")),
            (
                "Reapply\n\nThis reverts commit 1111111111111111111111111111111111111111.\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.",
                Some(sha),
            ),
            ("Add nova", None),
            ("This reverts commit abc.", None),
            ("This reverts commit xyz1234567", None),
            ("This reverts commit 0123456789abcdefg", None),
            ("Mention: this reverts commit 0123456789abcdef in passing", None),
            ("", None),
        ];
        for (message, want) in rows {
            assert_eq!(parse_revert(message).as_deref(), *want, "{message:?}");
        }
    }
}
