//! The daemon owns the repository and serves the CLI over its socket; commands behave the same through
//! it (output, errors, exit status, relative paths, standard input) and fall back to opening the
//! repository when it stops.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{pseudo_random, Env};

#[test]
fn commands_go_through_the_daemon_and_status_shows_it() {
    let env = Env::new(Some("4K"));
    let data = pseudo_random(100_000, 3);
    std::fs::write(env.path("f.bin"), &data).unwrap();
    let d = env.daemon();
    let pid = d.child.id();
    let sock = env.repo().join("daemon.sock");
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["daemon"]["running"], true, "{status}");
    assert_eq!(status["daemon"]["pid"], pid);
    assert_eq!(status["stores"][0]["state"], "closed");
    assert!(env.ok(&["status"]).contains(&format!("running (pid {pid}")));

    // A relative path is the client's, and the output comes back on the client's stdout.
    let link = env.ok(&["put", "f.bin"]).trim().to_string();
    assert_eq!(env.run(&["cat", &link]).stdout, data);
    // Standard input is the client's too.
    let mut child = env
        .cmd(&["put", "-", "--name", "in.txt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"from stdin").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let link2 = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(env.run(&["cat", &link2]).stdout, b"from stdin");
    // Errors keep their message and exit status; argument errors too.
    let err = env.fails(&["cat", "noisefs://nonsense"]);
    assert!(err.contains("invalid link"), "{err}");
    let out = env.run(&["tree", "ls", "/missing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such file"));
    let out = env.run(&["repo", "verify"]);
    assert!(out.status.success());
    // Password commands: the client reads the password and passes it along.
    let out = env.with_password(&["put", "--password", "f.bin"], "pw");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let locked = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(env.with_password(&["cat", &locked], "pw").stdout, data);
    // A second daemon is refused, naming the first one.
    let second = env.run(&["daemon"]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains(&pid.to_string()));
    // The tree through the daemon.
    env.ok(&["tree", "mkdir", "-p", "/a/b"]);
    env.ok(&["tree", "import", "f.bin", "/a/b"]);
    env.ok(&["tree", "mv", "/a/b/f.bin", "/a/g.bin"]);
    let ls = env.ok(&["tree", "ls", "/a"]);
    assert!(ls.contains("g.bin") && ls.contains("b/"), "{ls}");

    d.stop();
    assert!(!sock.exists(), "the socket is removed on a clean stop");
    // Without a daemon the same commands open the repository themselves.
    assert!(env.ok(&["status"]).contains("not running"));
    assert_eq!(env.run(&["cat", &link]).stdout, data);
    env.ok(&["tree", "export", "/a/g.bin", "out.bin"]);
    assert_eq!(std::fs::read(env.path("out.bin")).unwrap(), data);
}

#[test]
fn share_and_receive_round_trip_through_the_tree() {
    let env = Env::new(Some("4K"));
    std::fs::create_dir_all(env.path("src/sub")).unwrap();
    std::fs::write(env.path("src/small.txt"), b"tiny").unwrap();
    std::fs::write(env.path("src/sub/big.bin"), pseudo_random(50_000, 9)).unwrap();
    std::fs::write(env.path("src/empty"), b"").unwrap();
    std::os::unix::fs::symlink("small.txt", env.path("src/ln")).unwrap();
    env.ok(&["tree", "import", "src", "/"]);
    let link = env.ok(&["share", "/src"]).trim().to_string();
    // The shared link is an ordinary link: `get` materializes it.
    env.ok(&["get", &link, "-o", "got"]);
    let diff = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(env.path("src"))
        .arg(env.path("got"))
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));

    // A folder put with `put` (inline small files) is received into the tree and exported equal.
    let put_link = env.put(&env.path("src"));
    let r: serde_json::Value =
        serde_json::from_str(&env.ok(&["receive", "--now", "--json", &put_link, "/inbox/copy"])).unwrap();
    assert_eq!(
        (r["files"].as_u64(), r["target"].as_str()),
        (Some(3), Some("/inbox/copy"))
    );
    env.ok(&["tree", "export", "/inbox/copy", "exported"]);
    let diff = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(env.path("src"))
        .arg(env.path("exported"))
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    // Into an existing folder keeps the shared name; over an existing entry is refused.
    env.ok(&["receive", &put_link, "/inbox"]);
    assert!(env.ok(&["tree", "ls", "/inbox"]).contains("src/"));
    assert!(env.fails(&["receive", &put_link, "/inbox"]).contains("exists"));
    // A single file, password-protected.
    let out = env.with_password(&["share", "--password", "/src/sub/big.bin"], "pw");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let locked = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(locked.contains("#argon2id."));
    let out = env.with_password(&["receive", &locked, "/big-again.bin"], "pw");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.ok(&["tree", "export", "/big-again.bin", "big-again"]);
    assert_eq!(
        std::fs::read(env.path("big-again")).unwrap(),
        pseudo_random(50_000, 9)
    );
    // gc keeps everything the tree holds.
    env.ok(&["gc"]);
    env.ok(&["tree", "export", "/src", "after-gc"]);
    let diff = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(env.path("src"))
        .arg(env.path("after-gc"))
        .output()
        .unwrap();
    assert!(diff.status.success());
    // Removing from the tree.
    assert!(env.fails(&["tree", "rm", "/src"]).contains("-r"));
    env.ok(&["tree", "rm", "-r", "/src"]);
    assert!(!env.ok(&["tree", "ls", "/"]).contains("src"));
}

#[test]
fn the_daemon_log_names_no_keys_and_no_paths_at_info() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("secret-name.txt"), b"private").unwrap();
    let d = env.daemon();
    let link = env.put(&env.path("secret-name.txt"));
    env.ok(&["get", &link, "-o", "out-secret-name"]);
    env.ok(&["receive", &link, "/inbox/secret-name.txt"]);
    // The link can stay out of the command line: from standard input, a file or the environment.
    let mut c = env.cmd(&["cat", "-"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write as _;
    writeln!(child.stdin.take().unwrap(), "{link}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"private", "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(env.path("link.txt"), format!("\n  {link}\n")).unwrap();
    assert_eq!(
        env.ok(&["cat", &format!("file:{}", env.path("link.txt").display())]),
        "private"
    );
    let out = env
        .cmd(&["cat", "env:SECRET_LINK"])
        .env("SECRET_LINK", &link)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"private", "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env
        .fails(&["cat", "env:NO_SUCH_VARIABLE"])
        .contains("NO_SUCH_VARIABLE"));
    let log_path = d.log.clone();
    d.stop();
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("running a client's command"), "{log}");
    let key = link.split_once('#').unwrap().1;
    assert!(!log.contains(key), "the key is in the log: {log}");
    assert!(
        !log.contains("secret-name"),
        "a path is in the log at info: {log}"
    );
}

#[test]
fn a_client_that_goes_away_cancels_its_command() {
    use std::io::ErrorKind;
    use std::os::fd::AsRawFd;
    let env = Env::new(Some("4K"));
    let d = env.daemon();
    let (reader, mut writer) = std::io::pipe().unwrap();
    let mut client = env
        .cmd(&["put", "-", "--name", "endless.bin"])
        .stdin(reader)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // A blocking write of far more than a pipe holds returns once the daemon is reading.
    writer.write_all(&pseudo_random(1 << 20, 1)).unwrap();
    // SAFETY: kill with a valid pid and signal number has no memory effects.
    unsafe { libc::kill(client.id() as i32, libc::SIGINT) };
    let _ = client.wait();
    // The daemon drops the command and with it the read end: writes then fail with EPIPE. Without
    // cancellation it would read (and store) whatever comes, for ever.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let chunk = vec![7u8; 64 * 1024];
    common::wait_until("the daemon to drop the cancelled put", || loop {
        match writer.write(&chunk) {
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return true,
            Err(e) => panic!("write to the put's input: {e}"),
        }
    });
    drop(writer);
    let pins = env.ok(&["pin", "ls"]);
    assert!(
        !pins.contains("endless.bin"),
        "a cancelled put pinned nothing: {pins}"
    );
    // The daemon still serves.
    assert!(env.ok(&["status"]).contains("running"));
    d.stop();
}

#[test]
fn the_socket_serves_only_its_user_caps_connections_and_drops_idle_ones() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let env = Env::new(Some("4K"));
    let d = env.daemon();
    let sock = env.repo().join("daemon.sock");

    // Another user (here given the power to pass the socket's mode, which a stranger never has) is
    // refused by the daemon itself.
    if unsafe { libc::geteuid() } == 0 {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["--inh-caps=+dac_override", "--ambient-caps=+dac_override", "--"])
            .arg(env!("CARGO_BIN_EXE_noisefs"))
            .args(["pin", "ls"])
            .env("NOISEFS_HOME", env.repo())
            .current_dir(env.dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "another user's command ran: {err}");
        assert!(err.contains("refused") && err.contains("uid 65534"), "{err}");
        assert!(d.log_text().contains("uid 65534"), "{}", d.log_text());
    }

    // Idle connections: a few hundred hold at most the cap of threads; the one past the cap is told
    // the daemon is busy, and once the idle ones are dropped commands run again.
    let threads = || {
        let s = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    let before = threads();
    let idle: Vec<UnixStream> = (0..300).map(|_| UnixStream::connect(&sock).unwrap()).collect();
    let mut extra = UnixStream::connect(&sock).unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("busy"), "{answer}");
    let during = threads();
    assert!(
        during <= before + 64 + 4,
        "{during} threads for idle connections (from {before})"
    );
    // Each idle connection is closed by the daemon: reading it ends.
    for mut c in idle {
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    }
    common::wait_until("commands after the idle connections", || {
        env.run(&["status"]).status.success()
    });
    d.stop();
}

/// `daemon --detach` returns once the daemon serves commands, in a session of its own with a private
/// log in the repository; `daemon stop` ends it and returns once the repository is free; both say
/// plainly when there is nothing to do.
#[test]
fn a_detached_daemon_is_started_and_stopped_by_command() {
    let env = Env::new(None);
    let out = env.run(&["daemon", "stop"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no daemon is running"));

    let out = env.run(&["daemon", "--detach"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("daemon stop"), "{said}");
    // Serving already when --detach returned: status goes through it.
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["daemon"]["running"], true, "{status}");
    let pid = status["daemon"]["pid"].as_u64().unwrap() as i32;
    assert!(status["daemon"]["mountpoint"].is_null());
    // Its own session: a Ctrl-C at the terminal that started it does not reach it.
    assert_eq!(unsafe { libc::getsid(pid) }, pid);
    let log = env.repo().join("daemon.log");
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second one is refused, naming the first.
    let out = env.run(&["daemon", "--detach"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&pid.to_string()));

    std::fs::write(env.path("f.txt"), b"through the daemon").unwrap();
    let link = env.put(&env.path("f.txt"));
    let out = env.run(&["daemon", "stop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Gone, and the repository is free for a command of its own.
    // (Its parent exited, so it may linger as a zombie until an init reaps it: not running either.)
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit(')').next().unwrap_or_default().trim_start();
    assert!(
        state.is_empty() || state.starts_with('Z'),
        "the daemon still runs: {state}"
    );
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["daemon"]["running"], false);
    assert_eq!(env.ok(&["cat", &link]), "through the daemon");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("running a client's command"));
}
