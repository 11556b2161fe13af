//! A mount's life: open the repository, start the engine and the control socket, mount, serve until
//! SIGINT/SIGTERM or an unmount, then unmount and leave the queued work persisted.

use std::path::PathBuf;

use anyhow::{bail, Context};
use fuser::{Config, MountOption, SessionACL};
use noisefs::descriptor::Link;
use noisefs::engine::Engine;
use noisefs::node::Node;
use noisefs::{sync, tree};

use crate::fs::NoiseFs;

/// Where received links are kept in the tree when a link is mounted.
pub const LINKS_FOLDER: &str = "/.noisefs-links";

/// What to mount and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository folder.
    pub repo: PathBuf,
    pub mountpoint: PathBuf,
    pub read_only: bool,
    /// A tree folder to show as the root, or a `noisefs://` link to show (read-only).
    pub root: Option<String>,
    /// FUSE worker threads.
    pub threads: usize,
}

/// Mounts and serves until unmounted. `ready` is told once the mount is up (or why it failed), so a
/// backgrounded helper can report to the shell that started it.
pub fn run(opts: Options, ready: &mut dyn FnMut(Result<(), String>)) -> anyhow::Result<()> {
    let result = prepare(&opts);
    let (rt, node, root, read_only) = match result {
        Ok(v) => v,
        Err(e) => {
            ready(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    let engine = node.engine().clone();
    let search = match engine.search() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "search index unavailable: /.search stays empty");
            None
        }
    };
    let fs = NoiseFs::new(
        engine.tree().clone(),
        rt.handle().clone(),
        root,
        read_only,
        search,
    );
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("noisefs:{}", opts.repo.display())),
        MountOption::Subtype("noisefs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        if read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    config.acl = SessionACL::Owner;
    config.n_threads = Some(opts.threads.max(1));
    // One /dev/fuse descriptor per worker thread: no thundering herd on a shared one.
    config.clone_fd = true;
    let mut session = match fuser::Session::new(fs, &opts.mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!(
                "cannot mount on {}: {e} (is it already mounted, or busy?)",
                opts.mountpoint.display()
            );
            ready(Err(msg.clone()));
            bail!(msg);
        }
    };
    let mut unmounter = session.unmount_callable();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let fuse = std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            let r = session.run();
            let _ = done_tx.send(());
            r
        })
        .context("cannot start the FUSE session thread")?;
    tracing::info!(mountpoint = %opts.mountpoint.display(), read_only, "mounted");
    ready(Ok(()));

    let served = rt.block_on(async {
        let stop = async move {
            let signal = match noisefs::node::shutdown_signal() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch for signals");
                    let _ = done_rx.await;
                    return;
                }
            };
            tokio::select! {
                () = signal => tracing::info!("signal received: unmounting"),
                _ = done_rx => tracing::info!("unmounted by the kernel"),
            }
        };
        node.run(stop).await
    });
    if let Err(e) = unmounter.unmount() {
        tracing::debug!(error = %e, "unmount after the session ended");
    }
    match fuse.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the FUSE session ended with an error"),
        Err(_) => tracing::warn!("the FUSE session thread panicked"),
    }
    served?;
    Ok(())
}

type Prepared = (tokio::runtime::Runtime, Node, u64, bool);

/// Checks the mount point, opens the repository and finds the root to show.
fn prepare(opts: &Options) -> anyhow::Result<Prepared> {
    let meta = std::fs::metadata(&opts.mountpoint).with_context(|| {
        format!(
            "mount point {} does not exist; create it first",
            opts.mountpoint.display()
        )
    })?;
    if !meta.is_dir() {
        bail!("mount point {} is not a folder", opts.mountpoint.display());
    }
    let mut entries = std::fs::read_dir(&opts.mountpoint).with_context(|| {
        format!(
            "cannot read mount point {} (is it a stale mount? try `noisefs unmount`)",
            opts.mountpoint.display()
        )
    })?;
    if entries.next().is_some() {
        bail!(
            "mount point {} is not empty; mount on an empty folder",
            opts.mountpoint.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (node, root, read_only) = rt.block_on(async {
        let node = Node::open(&opts.repo)?;
        let (root, forced_ro) = find_root(node.engine(), opts.root.as_deref()).await?;
        anyhow::Ok((node, root, opts.read_only || forced_ro))
    })?;
    Ok((rt, node, root, read_only))
}

/// The tree inode to show as the root, and whether it must be read-only (a link).
async fn find_root(engine: &Engine, root: Option<&str>) -> anyhow::Result<(u64, bool)> {
    let t = engine.tree();
    let Some(root) = root else {
        return Ok((tree::ROOT, false));
    };
    if !root.starts_with(noisefs::descriptor::SCHEME) {
        let ino = t
            .resolve(root)
            .with_context(|| format!("no tree folder {root} to mount"))?;
        if t.getattr(ino)?.kind != tree::Kind::Dir {
            bail!("{root} is not a folder; mount a folder");
        }
        return Ok((ino, false));
    }
    // A link: received once into a hidden tree folder, then shown read-only.
    let link: Link = root.parse()?;
    let dir = format!("{LINKS_FOLDER}/{}", link.root);
    let ino = match t.resolve(&dir) {
        Ok(ino) => ino,
        Err(_) => {
            let password = std::env::var("NOISEFS_PASSWORD").ok();
            let opened = noisefs::transfer::open(engine.repo().store(), &link, password.as_deref())
                .await
                .context("cannot open the link")?;
            let is_dir = matches!(opened.meta, noisefs::descriptor::Meta::Dir { .. });
            let holder = sync::mkdir_p(t, &dir)?;
            let hold = engine.repo().hold().await;
            let into = if is_dir {
                format!("{dir}/content")
            } else {
                dir.clone()
            };
            if let Err(e) = noisefs::share::receive(engine, &hold, opened, Some(&into), false).await {
                // Nothing half-received stays behind to be served as complete by the next mount.
                let (up, name) = dir.rsplit_once('/').unwrap_or(("", &dir));
                let _ = t.resolve(up).and_then(|up| t.rmdir(up, name));
                return Err(e).context("cannot receive the link");
            }
            if is_dir {
                t.resolve(&into)?
            } else {
                holder
            }
        }
    };
    let ino = match t.resolve(&format!("{dir}/content")) {
        Ok(content) => content,
        Err(_) => ino,
    };
    Ok((ino, true))
}
