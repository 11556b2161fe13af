//! One-shot request and response on a stream of its own, for protocols that ask a peer once and
//! read one answer (announcements' catch-up uses it): the asker opens a stream on the protocol,
//! writes one length-prefixed frame (an unsigned varint, then the bytes), reads one back and closes.
//! Both sides cap the frame they read before allocating it, bound every exchange in time, and the
//! server answers a bounded number of requests at once; what the bytes mean is the caller's.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::bitswap::io::read_frame_capped;
use crate::{varint, NetError};

/// Requests a server answers at once; more wait for a slot (each is bounded in time).
pub const CONCURRENT: usize = 16;
/// How long a server waits for a request's bytes, and for the application's answer.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request received, waiting for [`Inbound::respond`]; dropping it closes the stream unanswered.
#[derive(Debug)]
pub struct Inbound {
    /// The peer that asked.
    pub peer: PeerId,
    pub data: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

impl Inbound {
    /// Sends `data` as the answer.
    pub fn respond(self, data: Vec<u8>) {
        let _ = self.reply.send(data);
    }
}

fn failed(protocol: &str, peer: PeerId, reason: impl std::fmt::Display) -> NetError {
    NetError::Request {
        protocol: protocol.to_string(),
        peer: peer.to_string(),
        reason: reason.to_string(),
    }
}

async fn write_frame(s: &mut libp2p::Stream, data: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(data.len() + 10);
    varint::encode(data.len() as u64, &mut frame);
    frame.extend_from_slice(data);
    s.write_all(&frame).await?;
    s.flush().await
}

/// Asks `peer` on `protocol`: sends `data`, returns the answer (at most `max_response` bytes), all
/// within `timeout`.
pub(crate) async fn ask(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    protocol: &'static str,
    data: Vec<u8>,
    max_response: usize,
    timeout: Duration,
) -> Result<Vec<u8>, NetError> {
    let exchange = async {
        let mut s = control
            .open_stream(peer, StreamProtocol::new(protocol))
            .await
            .map_err(|e| failed(protocol, peer, e))?;
        write_frame(&mut s, &data)
            .await
            .map_err(|e| failed(protocol, peer, e))?;
        let answer = read_frame_capped(&mut s, max_response)
            .await
            .map_err(|e| failed(protocol, peer, e))?
            .ok_or_else(|| failed(protocol, peer, "the peer closed the stream without an answer"))?;
        let _ = s.close().await;
        Ok(answer.to_vec())
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        failed(
            protocol,
            peer,
            format!("no answer within {:.1} s", timeout.as_secs_f64()),
        )
    })?
}

/// Serves `protocol`: every request (at most `max_request` bytes) comes out of the returned channel;
/// what the application sends to [`Inbound::respond`] goes back, cut to nothing if over
/// `max_response`. Fails when the protocol is already served.
pub(crate) fn serve(
    mut control: libp2p_stream::Control,
    protocol: &'static str,
    max_request: usize,
    max_response: usize,
) -> Result<mpsc::Receiver<Inbound>, NetError> {
    let mut streams = control
        .accept(StreamProtocol::new(protocol))
        .map_err(|e| NetError::Setup(format!("{protocol}: {e}")))?;
    let (tx, rx) = mpsc::channel(CONCURRENT);
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = streams.next().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let answered = tokio::time::timeout(SERVE_TIMEOUT, async {
                    let data = match read_frame_capped(&mut stream, max_request).await {
                        Ok(Some(d)) => d.to_vec(),
                        Ok(None) => return,
                        Err(e) => {
                            tracing::debug!(%peer, protocol, error = %e, "bad request");
                            return;
                        }
                    };
                    let (reply, answer) = oneshot::channel();
                    if tx.send(Inbound { peer, data, reply }).await.is_err() {
                        return;
                    }
                    let Ok(mut answer) = answer.await else { return };
                    if answer.len() > max_response {
                        tracing::warn!(%peer, protocol, bytes = answer.len(), "answer over the cap; sent empty");
                        answer.clear();
                    }
                    if write_frame(&mut stream, &answer).await.is_ok() {
                        let _ = stream.close().await;
                    }
                })
                .await;
                if answered.is_err() {
                    tracing::debug!(%peer, protocol, "request not answered in time; stream closed");
                }
            });
        }
    });
    Ok(rx)
}
