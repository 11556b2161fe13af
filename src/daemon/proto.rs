//! The control socket's protocol (version 1, specified in docs/formats.md): the client sends one JSON
//! line, with its standard input, output and error passed along as file descriptors (SCM_RIGHTS); the
//! daemon runs the command with them and answers with one JSON line holding the exit status.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

/// The protocol version this code speaks.
pub const VERSION: u32 = 1;
/// Longest request line accepted.
const MAX_REQUEST: usize = 1 << 20;

/// A request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version.
    pub v: u32,
    /// `run` (a CLI command, with three descriptors) or `ping`.
    pub op: String,
    /// The command line, program name first.
    #[serde(default)]
    pub argv: Vec<String>,
    /// The client's working folder (relative paths in `argv` are relative to it).
    #[serde(default)]
    pub cwd: PathBuf,
    /// A password the client read for the command (NOISEFS_PASSWORD or a prompt).
    #[serde(default)]
    pub password: Option<String>,
    /// The command's link when the client read it from its standard input, a file or its environment
    /// (the argument then says `-`, `file:PATH` or `env:NAME`). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The command's exit status (0 for a ping).
    pub exit: i32,
    /// The daemon's process id.
    pub pid: u32,
    /// Why the request itself failed (malformed, wrong version), if it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// Sends `req` with descriptors `fds` over `stream`.
pub fn send(stream: &UnixStream, req: &Request, fds: &[RawFd]) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&line)],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    // A short send leaves the rest for an ordinary write (the descriptors went with the first byte).
    (&*stream).write_all(&line[sent..])
}

/// Receives a request and the descriptors that came with it.
pub fn recv(stream: &UnixStream) -> std::io::Result<(Request, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: the kernel just installed these descriptors in this process for us; we
                    // are their only owner.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        (msg.bytes, fds)
    };
    let mut line = buf[..n].to_vec();
    if !line.contains(&b'\n') {
        let mut rest = BufReader::new(stream.take(MAX_REQUEST as u64));
        rest.read_until(b'\n', &mut line)?;
    }
    let req = serde_json::from_slice(line.trim_ascii_end()).map_err(std::io::Error::other)?;
    Ok((req, fds))
}

/// Writes a response line.
pub fn reply(stream: &UnixStream, resp: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(resp)?;
    line.push(b'\n');
    (&*stream).write_all(&line)
}

/// Reads a response line.
pub fn read_reply(stream: &UnixStream) -> std::io::Result<Response> {
    let mut line = Vec::new();
    BufReader::new(stream).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection without an answer (did it stop?)",
        ));
    }
    serde_json::from_slice(line.trim_ascii_end()).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn requests_carry_descriptors_and_fixed_vectors_hold() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, w) = UnixStream::pair().unwrap();
        let req = Request {
            v: VERSION,
            op: "run".into(),
            argv: vec!["noisefs".into(), "status".into()],
            cwd: "/tmp".into(),
            password: None,
            link: None,
        };
        send(&a, &req, &[w.as_fd().as_raw_fd()]).unwrap();
        let (got, fds) = recv(&b).unwrap();
        assert_eq!(got, req);
        assert_eq!(fds.len(), 1);
        // The received descriptor is the same socket: what we write to it comes out of `r`.
        let mut passed = std::fs::File::from(fds.into_iter().next().unwrap());
        passed.write_all(b"hi").unwrap();
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"hi");

        reply(
            &b,
            &Response {
                exit: 3,
                pid: 9,
                error: None,
            },
        )
        .unwrap();
        assert_eq!(read_reply(&a).unwrap().exit, 3);
        drop(b);
        assert!(read_reply(&a).is_err());

        // The documented wire form (docs/formats.md, "Control socket").
        let line = serde_json::to_string(&req).unwrap();
        assert_eq!(
            line,
            r#"{"v":1,"op":"run","argv":["noisefs","status"],"cwd":"/tmp","password":null}"#
        );
        let resp: Response = serde_json::from_str(r#"{"exit":0,"pid":42}"#).unwrap();
        assert_eq!(
            resp,
            Response {
                exit: 0,
                pid: 42,
                error: None
            }
        );

        // A long request arrives whole.
        let (a, b) = UnixStream::pair().unwrap();
        let mut big = req.clone();
        big.argv = vec!["x".repeat(200_000)];
        let t = std::thread::spawn(move || send(&a, &big, &[]).unwrap());
        let (got, fds) = recv(&b).unwrap();
        t.join().unwrap();
        assert_eq!((got.argv[0].len(), fds.len()), (200_000, 0));
    }
}
