//! Bitswap over streams: length-prefixed frames (an unsigned varint, then the protobuf), read with a
//! size cap before anything is allocated; a writer task per peer that opens one stream and sends the
//! messages handed to it; and a server task per peer that answers its want list from the local blocks
//! through the [`crate::Blocks`] trait, within a bandwidth budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::mpsc;

use super::ledger::Ledger;
use super::message::{Message, Presence, WantType, MAX_MESSAGE};
use crate::varint;
use crate::Blocks;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the {1}-byte cap")]
    TooLarge(u64, usize),
    #[error("malformed frame length")]
    Length,
}

/// Reads one frame of at most [`MAX_MESSAGE`] bytes; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: futures::AsyncRead + Unpin>(r: &mut R) -> Result<Option<Bytes>, FrameError> {
    read_frame_capped(r, MAX_MESSAGE).await
}

/// Reads one frame of at most `cap` bytes (refused before anything is allocated); `Ok(None)` at a
/// clean end of stream.
pub async fn read_frame_capped<R: futures::AsyncRead + Unpin>(
    r: &mut R,
    cap: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut len_buf = Vec::with_capacity(10);
    loop {
        let mut b = [0u8; 1];
        match r.read(&mut b).await? {
            0 if len_buf.is_empty() => return Ok(None),
            0 => return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            _ => len_buf.push(b[0]),
        }
        if b[0] & 0x80 == 0 {
            break;
        }
        if len_buf.len() >= 10 {
            return Err(FrameError::Length);
        }
    }
    let (len, _) = varint::decode(&len_buf).ok_or(FrameError::Length)?;
    if len > cap as u64 {
        return Err(FrameError::TooLarge(len, cap));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(Bytes::from(buf)))
}

/// Writes one message as a frame.
pub async fn write_frame<W: futures::AsyncWrite + Unpin>(w: &mut W, msg: &Message) -> std::io::Result<()> {
    write_frames(w, std::slice::from_ref(msg)).await
}

/// Writes messages as frames, one after the other, and flushes once.
pub async fn write_frames<W: futures::AsyncWrite + Unpin>(
    w: &mut W,
    msgs: &[Message],
) -> std::io::Result<()> {
    for msg in msgs {
        w.write_all(&msg.frame()).await?;
    }
    w.flush().await
}

/// At most this many queued messages are written before one flush.
const WRITE_BATCH: usize = 64;

/// What a writer or server task tells the node.
#[derive(Debug)]
pub enum TaskEvent {
    /// The writer to this peer could not open or write its stream; its messages were dropped.
    WriterFailed(PeerId, String),
    /// The server of this peer has answered a block.
    Served { peer: PeerId, bytes: usize },
}

/// Sends the messages it receives to `peer` on one stream (opened on the first message, reopened once
/// after a failure), until its channel closes.
pub async fn writer(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut rx: mpsc::Receiver<Message>,
    events: mpsc::Sender<TaskEvent>,
) {
    let protocol = StreamProtocol::new(super::PROTOCOLS[0]);
    let mut stream = None;
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while let Some(msg) = rx.recv().await {
        // Whatever else is queued goes out with it, behind one flush.
        batch.clear();
        batch.push(msg);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut tries = 0;
        loop {
            if stream.is_none() {
                match control.open_stream(peer, protocol.clone()).await {
                    Ok(s) => stream = Some(s),
                    Err(e) => {
                        let _ = events.send(TaskEvent::WriterFailed(peer, e.to_string())).await;
                        return;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { break };
            match write_frames(s, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    stream = None;
                    tries += 1;
                    if tries > 1 {
                        let _ = events.send(TaskEvent::WriterFailed(peer, e.to_string())).await;
                        return;
                    }
                }
            }
        }
    }
    if let Some(mut s) = stream {
        let _ = s.close().await;
    }
}

/// How a server answers.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Wants kept per peer.
    pub ledger_cap: usize,
    /// Block bytes per message sent.
    pub batch_bytes: usize,
    /// Block bytes per second sent to one peer (0: no limit).
    pub bytes_per_sec: u64,
}

/// Answers `peer`'s want lists from `blocks`, sending replies through `out`, until its input closes
/// (or the writer goes away).
pub async fn server(
    peer: PeerId,
    blocks: Arc<dyn Blocks>,
    mut input: mpsc::Receiver<Message>,
    out: mpsc::Sender<Message>,
    events: mpsc::Sender<TaskEvent>,
    limits: ServeLimits,
) {
    let mut ledger = Ledger::new(limits.ledger_cap);
    let verified = blocks.verifies();
    let started = Instant::now();
    let mut sent: u64 = 0;
    loop {
        // Take every want list that arrived; wait for one when there is nothing to do.
        loop {
            let next = if ledger.is_empty() {
                input.recv().await
            } else {
                match input.try_recv() {
                    Ok(m) => Some(m),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            let Some(msg) = next else { return };
            let refused = ledger.apply(&msg.wantlist, msg.full);
            if refused > 0 {
                tracing::warn!(%peer, refused, total = ledger.refused, "peer wants more blocks than its want list holds; extra wants dropped");
            }
        }
        let mut reply = Message::default();
        let mut bytes = 0;
        while bytes < limits.batch_bytes {
            let Some(req) = ledger.pop() else { break };
            match req.want {
                WantType::Block => match blocks.get(&req.cid).await {
                    Some(data) if verified || req.cid.verifies(&data) => {
                        bytes += data.len();
                        ledger.sent(data.len());
                        reply.blocks.push((req.cid, data));
                    }
                    _ if req.send_dont_have => reply.presences.push((req.cid, Presence::DontHave)),
                    _ => {}
                },
                WantType::Have => {
                    if blocks.has(&req.cid).await {
                        reply.presences.push((req.cid, Presence::Have));
                    } else if req.send_dont_have {
                        reply.presences.push((req.cid, Presence::DontHave));
                    }
                }
            }
        }
        if reply.is_empty() {
            continue;
        }
        if out.send(reply).await.is_err() {
            return;
        }
        if bytes > 0 {
            let _ = events.try_send(TaskEvent::Served { peer, bytes });
        }
        sent += bytes as u64;
        if limits.bytes_per_sec > 0 {
            let due = Duration::from_secs_f64(sent as f64 / limits.bytes_per_sec as f64);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::Cid;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused_before_reading() {
        let msg = Message {
            presences: vec![(Cid::v1_of(0x55, b"x"), Presence::Have)],
            ..Message::default()
        };
        let mut buf = Vec::new();
        write_frame(&mut futures::io::Cursor::new(&mut buf), &msg)
            .await
            .unwrap();
        let mut r = futures::io::Cursor::new(buf.clone());
        let got = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!(Message::decode(&got).unwrap(), msg);
        assert!(read_frame(&mut r).await.unwrap().is_none());
        // Cut short.
        let mut r = futures::io::Cursor::new(buf[..buf.len() - 1].to_vec());
        assert!(matches!(read_frame(&mut r).await, Err(FrameError::Io(_))));
        let mut r = futures::io::Cursor::new(vec![0x80u8]);
        assert!(matches!(read_frame(&mut r).await, Err(FrameError::Io(_))));
        // 5 MiB announced: refused at once.
        let mut big = Vec::new();
        varint::encode(5 << 20, &mut big);
        let mut r = futures::io::Cursor::new(big);
        assert!(matches!(
            read_frame(&mut r).await,
            Err(FrameError::TooLarge(_, _))
        ));
        let mut r = futures::io::Cursor::new(vec![0xffu8; 12]);
        assert!(matches!(read_frame(&mut r).await, Err(FrameError::Length)));
    }
}
