//! Exit codes by class, what a script can tell from `$?` (documented in `noisefs --help` and
//! docs/cli.md): the class of the first NoiseFS error found in an error's chain.

use crate::Error;

/// Success.
pub const OK: u8 = 0;
/// Any failure not in a class below.
pub const FAILURE: u8 = 1;
/// Bad usage: arguments, options, a malformed link, block id or query (clap uses 2 too).
pub const USAGE: u8 = 2;
/// Partly done: some arguments or files were stored and others were not (each is reported).
pub const PARTIAL: u8 = 3;
/// Not found: no repository, no such tree path, local file or pin.
pub const NOT_FOUND: u8 = 4;
/// Wrong key or password (or a forged descriptor).
pub const WRONG_KEY: u8 = 5;
/// Missing or corrupt data: a block is not in the repository or does not match its id, a descriptor is
/// malformed or hostile.
pub const DATA: u8 = 6;
/// The repository is locked by another process that does not serve commands.
pub const LOCKED: u8 = 7;
/// Local I/O: permission denied, disk full, read-only filesystem, a device error.
pub const IO: u8 = 8;
/// Interrupted (Ctrl-C), as shells report SIGINT.
pub const INTERRUPTED: u8 = 130;

/// The table `--help` and docs/cli.md print.
pub const TABLE: &str = "Exit codes:
  0    success
  1    failure of another kind
  2    usage: bad arguments or options, a malformed link, block id or query
  3    partial: some arguments or files were stored, others not (each is reported)
  4    not found: no repository, tree path, local file or pin
  5    wrong key or password
  6    missing or corrupt data (a block not here or not matching its id, a malformed descriptor)
  7    the repository is locked by another process (see --retry-lock)
  8    local I/O: permission denied, disk full, read-only filesystem
  130  interrupted";

/// The exit code for a command that failed with `err`.
pub fn code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| {
            if let Some(e) = e.downcast_ref::<Error>() {
                Some(of(e))
            } else {
                e.downcast_ref::<std::io::Error>().map(io_class)
            }
        })
        .unwrap_or(FAILURE)
}

/// The class of one library error.
pub fn of(e: &Error) -> u8 {
    match e {
        Error::InvalidLink { .. }
        | Error::InvalidBlockId { .. }
        | Error::Query { .. }
        | Error::InvalidBlockSize(_) => USAGE,
        Error::NotInitialized { .. } | Error::NotPinned { .. } => NOT_FOUND,
        Error::Decrypt { .. } => WRONG_KEY,
        Error::MissingBlock { .. }
        | Error::CorruptBlock { .. }
        | Error::BlockSize { .. }
        | Error::Descriptor { .. }
        | Error::UnsafeName { .. } => DATA,
        Error::Locked { .. } => LOCKED,
        Error::Io { source, .. } => io_class(source),
        Error::Posix { errno, .. } => errno_class(*errno),
        Error::Exposed { .. } => IO,
        _ => FAILURE,
    }
}

fn io_class(e: &std::io::Error) -> u8 {
    e.raw_os_error().map_or_else(
        || match e.kind() {
            std::io::ErrorKind::NotFound => NOT_FOUND,
            std::io::ErrorKind::PermissionDenied => IO,
            _ => FAILURE,
        },
        errno_class,
    )
}

fn errno_class(errno: i32) -> u8 {
    match errno {
        libc::ENOENT | libc::ENOTDIR => NOT_FOUND,
        libc::EACCES
        | libc::EPERM
        | libc::ENOSPC
        | libc::EDQUOT
        | libc::EROFS
        | libc::EIO
        | libc::EFBIG
        | libc::ENAMETOOLONG => IO,
        _ => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockId;

    #[test]
    fn errors_map_to_their_class_through_context() {
        let id = BlockId::of(b"x");
        let cases: Vec<(anyhow::Error, u8)> = vec![
            (anyhow::anyhow!("plain"), FAILURE),
            (
                Error::InvalidLink {
                    input: "x".into(),
                    reason: "y".into(),
                }
                .into(),
                USAGE,
            ),
            (
                anyhow::Error::from(Error::NotInitialized { path: "/r".into() }).context("cannot open"),
                NOT_FOUND,
            ),
            (Error::Decrypt { id }.into(), WRONG_KEY),
            (Error::MissingBlock { id }.into(), DATA),
            (Error::CorruptBlock { id, actual: id }.into(), DATA),
            (
                Error::Locked {
                    path: "/r".into(),
                    pid: "1".into(),
                }
                .into(),
                LOCKED,
            ),
            (
                Error::io("/f", std::io::Error::from_raw_os_error(libc::ENOENT)).into(),
                NOT_FOUND,
            ),
            (
                Error::io("/f", std::io::Error::from_raw_os_error(libc::ENOSPC)).into(),
                IO,
            ),
            (Error::posix(libc::ENOENT, "/t").into(), NOT_FOUND),
            (Error::posix(libc::EEXIST, "/t").into(), FAILURE),
            (
                anyhow::Error::from(std::io::Error::from_raw_os_error(libc::EACCES)).context("reading"),
                IO,
            ),
            (
                std::io::Error::new(std::io::ErrorKind::NotFound, "gone").into(),
                NOT_FOUND,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(code(&err), want, "{err:#}");
        }
    }
}
