//! Publisher keys: ed25519 keys kept in the repository's `publishers/` folder (one 32-byte seed per
//! file named after the pseudonym, mode 0600), made on first use. A publisher key is not the node's
//! peer id, so announcements name a pseudonym the user can keep or rotate (`--as NAME`).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use rand::RngCore;

use crate::error::IoContext;
use crate::{Error, Result};

/// The folder of publisher keys in a repository.
pub const DIR: &str = "publishers";
/// The pseudonym used when none is given.
pub const DEFAULT: &str = "default";

fn path_of(root: &Path, name: &str) -> Result<PathBuf> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !ok {
        return Err(Error::Unsupported {
            what: format!("publisher name {name:?}"),
            reason: "use letters, digits, `-`, `_`, `.` (up to 64, not starting with `.`)".into(),
        });
    }
    Ok(root.join(DIR).join(format!("{name}.key")))
}

/// The key of pseudonym `name` in the repository at `root`, made now if it does not exist.
pub fn key(root: &Path, name: &str) -> Result<SigningKey> {
    let path = path_of(root, name)?;
    match std::fs::read(&path) {
        Ok(seed) => {
            let seed: [u8; 32] = seed.try_into().map_err(|_| Error::Config {
                path: path.clone(),
                reason: "a publisher key file must hold 32 bytes; move it away to make a new key".into(),
            })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = root.join(DIR);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .at(&dir)?;
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .at(&path)?;
            f.write_all(&seed).at(&path)?;
            f.sync_all().at(&path)?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// The pseudonyms with keys in the repository at `root`.
pub fn names(root: &Path) -> Result<Vec<String>> {
    let dir = root.join(DIR);
    let mut out = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(rd) => {
            for e in rd {
                let e = e.at(&dir)?;
                if let Some(n) = e.file_name().to_str().and_then(|n| n.strip_suffix(".key")) {
                    out.push(n.to_string());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&dir, e)),
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_made_once_private_and_named_safely() {
        let d = tempfile::tempdir().unwrap();
        let a = key(d.path(), DEFAULT).unwrap();
        assert_eq!(key(d.path(), DEFAULT).unwrap().to_bytes(), a.to_bytes());
        assert_ne!(key(d.path(), "other").unwrap().to_bytes(), a.to_bytes());
        let file = d.path().join(DIR).join("default.key");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(d.path().join(DIR))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(names(d.path()).unwrap(), ["default", "other"]);
        for bad in ["", "../x", ".hidden", "a b", &"x".repeat(65)] {
            assert!(key(d.path(), bad).is_err(), "{bad:?}");
        }
        std::fs::write(&file, b"short").unwrap();
        assert!(key(d.path(), DEFAULT)
            .unwrap_err()
            .to_string()
            .contains("32 bytes"));
        assert!(names(&d.path().join("none")).unwrap().is_empty());
    }
}
