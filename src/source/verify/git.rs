//! Reading the signed bytes and the signature of a commit or tag out of a repository, and the verification
//! modes: `head` (the commit itself) and `tag` (an annotated tag at the commit), as Flux's `spec.verify` has.

use git2::{ErrorCode, ObjectType, Oid, Repository};

use super::{AllowedSigners, SignedObject, Signer, VerifyError, signature_start, verify};

/// What must be signed for a revision to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyMode {
    /// The commit itself (`git commit -S`).
    Head,
    /// An annotated tag pointing at the commit (`git tag -s`): the tag the ref names, else any tag at the
    /// commit. The commit needs no signature of its own.
    Tag,
}

fn short(oid: Oid) -> String {
    oid.to_string()[..12].to_string()
}

fn unreadable(object: String, e: &git2::Error) -> VerifyError {
    VerifyError::Malformed {
        object,
        reason: format!("cannot read it from the repository: {}", e.message()),
    }
}

/// A commit's signed bytes (the object without its `gpgsig` header) and signature.
pub fn commit_object(repo: &Repository, oid: Oid) -> Result<SignedObject, VerifyError> {
    let object = format!("commit {}", short(oid));
    let commit = repo
        .find_commit(oid)
        .map_err(|e| unreadable(object.clone(), &e))?;
    let time = commit.committer().when().seconds();
    match repo.extract_signature(&oid, None) {
        Ok((signature, payload)) => Ok(SignedObject {
            object,
            payload: payload.to_vec(),
            signature: Some(signature.to_vec()),
            time,
        }),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(SignedObject {
            object,
            payload: Vec::new(),
            signature: None,
            time,
        }),
        Err(e) => Err(unreadable(object, &e)),
    }
}

/// An annotated tag's signed bytes (everything before the signature block) and signature.
pub fn tag_object(repo: &Repository, oid: Oid) -> Result<SignedObject, VerifyError> {
    let tag = repo
        .find_tag(oid)
        .map_err(|e| unreadable(format!("tag {}", short(oid)), &e))?;
    let object = format!("tag {}", String::from_utf8_lossy(tag.name_bytes()));
    let time = tag.tagger().map(|t| t.when().seconds()).unwrap_or_default();
    let odb = repo.odb().map_err(|e| unreadable(object.clone(), &e))?;
    let raw = odb.read(oid).map_err(|e| unreadable(object.clone(), &e))?;
    let data = raw.data();
    Ok(match signature_start(data) {
        Some(start) => SignedObject {
            object,
            payload: data[..start].to_vec(),
            signature: Some(data[start..].to_vec()),
            time,
        },
        None => SignedObject {
            object,
            payload: data.to_vec(),
            signature: None,
            time,
        },
    })
}

/// Checks that `commit` may be applied: signed itself (`head`), or through a signed annotated tag (`tag`):
/// `tag` when the revision named one, else any tag in the repository that points at the commit.
pub fn verify_revision(
    repo: &Repository,
    commit: Oid,
    tag: Option<Oid>,
    mode: VerifyMode,
    allowed: &AllowedSigners,
) -> Result<Signer, VerifyError> {
    match mode {
        VerifyMode::Head => verify(&commit_object(repo, commit)?, allowed),
        VerifyMode::Tag => {
            let tags = match tag {
                Some(tag) => vec![tag],
                None => tags_at(repo, commit),
            };
            let mut first_error = None;
            for tag in tags {
                match verify(&tag_object(repo, tag)?, allowed) {
                    Ok(signer) => return Ok(signer),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            Err(first_error.unwrap_or_else(|| VerifyError::NoSignedTag {
                object: format!("commit {}", short(commit)),
                reason: "no annotated tag points at it (verification mode `tag`)".into(),
            }))
        }
    }
}

/// Annotated tags whose target peels to `commit`, in name order.
fn tags_at(repo: &Repository, commit: Oid) -> Vec<Oid> {
    let Ok(references) = repo.references_glob("refs/tags/*") else {
        return Vec::new();
    };
    let mut out: Vec<(String, Oid)> = references
        .flatten()
        .filter_map(|r| {
            let target = r.target()?;
            let object = repo.find_object(target, None).ok()?;
            if object.kind() != Some(ObjectType::Tag) {
                return None;
            }
            (object.peel_to_commit().ok()?.id() == commit)
                .then(|| (r.name().unwrap_or_default().to_string(), target))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, oid)| oid).collect()
}
