//! `noisefs-mount`: the NoiseFS FUSE driver. [`fs`] adapts kernel requests to the tree; [`run`] owns a
//! mount's life: the repository, the engine and control socket (the mount process is the repository's
//! owner, so the CLI keeps working), mounting, and a clean unmount on a signal or when the kernel ends it.

pub mod announce;
pub mod fs;
pub mod run;
pub mod search;
pub mod virt;
