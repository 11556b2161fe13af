//! Where a command reads and writes: this process's standard streams, or the client's streams passed to
//! the daemon over its socket. Also its working folder and password, which come from the client too.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A shared, cloneable writer.
#[derive(Clone)]
pub struct Out(Arc<Mutex<Box<dyn Write + Send>>>);

impl Out {
    pub fn new(w: impl Write + Send + 'static) -> Out {
        Out(Arc::new(Mutex::new(Box::new(w))))
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// A command's streams and surroundings.
pub struct Io {
    pub out: Out,
    pub err: Out,
    input: Mutex<Option<Box<dyn Read + Send>>>,
    /// The folder relative paths are relative to.
    pub cwd: PathBuf,
    /// A password given by the client (daemon mode).
    pub password: Option<String>,
    /// Whether progress bars may be drawn (this process's own terminal).
    pub bars: bool,
    /// Set when the command runs inside the daemon.
    pub daemon: Option<crate::daemon::Info>,
}

impl Io {
    /// This process's standard streams.
    pub fn stdio() -> Io {
        Io {
            out: Out::new(std::io::stdout()),
            err: Out::new(std::io::stderr()),
            input: Mutex::new(Some(Box::new(std::io::stdin()))),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            password: None,
            bars: std::io::stderr().is_terminal(),
            daemon: None,
        }
    }

    /// A client's streams (stdin, stdout, stderr descriptors), in the daemon.
    pub fn passed(
        fds: Vec<OwnedFd>,
        cwd: PathBuf,
        password: Option<String>,
        daemon: crate::daemon::Info,
    ) -> Io {
        let mut files = fds.into_iter().map(std::fs::File::from);
        let (input, out, err) = (files.next(), files.next(), files.next());
        Io {
            out: Out::new(out.map_or_else(
                || Box::new(std::io::sink()) as Box<dyn Write + Send>,
                |f| Box::new(f),
            )),
            err: Out::new(err.map_or_else(
                || Box::new(std::io::sink()) as Box<dyn Write + Send>,
                |f| Box::new(f),
            )),
            input: Mutex::new(input.map(|f| Box::new(f) as Box<dyn Read + Send>)),
            cwd,
            password,
            bars: false,
            daemon: Some(daemon),
        }
    }

    /// Takes standard input (once).
    pub fn take_input(&self) -> Option<Box<dyn Read + Send>> {
        self.input.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// `p` made absolute against the command's working folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || p.as_os_str() == "-" {
            p.to_path_buf()
        } else {
            self.cwd.join(p)
        }
    }
}

/// The link an argument stands for: `-` (the first line of standard input), `file:PATH` (the first line
/// of that file) or `env:NAME` (that environment variable), so a key never has to be on a command line,
/// where every user of the machine reads it in `/proc/PID/cmdline`; anything else is the link as given.
/// `None` when `arg` is an ordinary link.
pub fn link_source(arg: &str, stdin: &mut dyn Read) -> anyhow::Result<Option<String>> {
    use anyhow::Context as _;
    let text = if arg == "-" {
        let mut s = String::new();
        stdin
            .take(64 * 1024)
            .read_to_string(&mut s)
            .context("cannot read a link from standard input")?;
        s
    } else if let Some(path) = arg.strip_prefix("file:") {
        std::fs::read_to_string(path).with_context(|| format!("cannot read a link from {path}"))?
    } else if let Some(name) = arg.strip_prefix("env:") {
        std::env::var(name).with_context(|| format!("no link in environment variable {name}"))?
    } else {
        return Ok(None);
    };
    let link = text.lines().map(str::trim).find(|l| !l.is_empty());
    match link {
        Some(l) => Ok(Some(l.to_string())),
        None => anyhow::bail!("no link in {arg} (expected a line noisefs://...)"),
    }
}
