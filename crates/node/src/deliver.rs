//! The Deliver seek loop both node kinds serve (the orderer's
//! `AtomicBroadcast/Deliver`, the peer's `protos.Deliver`): resolve a seek
//! request's start and stop against the chain's first block and height,
//! then send each block as it is committed, until the stop block, the
//! client leaves, or `next` refuses (the requester is no longer valid).

use tokio::sync::{mpsc, watch};
use weft_protos::common::Status;
use weft_protos::orderer::seek_info::SeekBehavior;
use weft_protos::orderer::{SeekInfo, SeekPosition, seek_position};

/// The blocks `seek` asks for, given the chain's first block and height:
/// `(start, stop)`, or BAD_REQUEST with the reason.
pub fn seek_range(seek: &SeekInfo, first: u64, height: u64) -> Result<(u64, u64), String> {
    let position = |p: &Option<SeekPosition>| match p.as_ref().and_then(|p| p.r#type.as_ref()) {
        Some(seek_position::Type::Oldest(_)) => Some(first),
        Some(seek_position::Type::Newest(_)) => Some(height.saturating_sub(1)),
        Some(seek_position::Type::Specified(s)) => Some(s.number),
        Some(seek_position::Type::NextCommit(_)) => Some(height),
        None => None,
    };
    let (Some(start), Some(stop)) = (position(&seek.start), position(&seek.stop)) else {
        return Err("the seek request lacks a start or stop position".into());
    };
    if stop < start {
        return Err(format!("stop block {stop} is before start block {start}"));
    }
    if start < first {
        return Err(format!(
            "block {start} is before this node's first block {first}"
        ));
    }
    Ok((start, stop))
}

/// Serves one seek request over `out`; returns its final status, or None if
/// the client left. `next(number)` produces the response for a committed
/// block (or the status that ends the stream); `height` is the chain's
/// height as it grows; once `gone` resolves (the channel left this node), a
/// waiting stream ends with SERVICE_UNAVAILABLE instead of waiting forever.
pub async fn serve_seek<R>(
    seek: &SeekInfo,
    first: u64,
    mut height: watch::Receiver<u64>,
    gone: impl std::future::Future<Output = ()>,
    out: &mpsc::Sender<Result<R, tonic::Status>>,
    mut next: impl FnMut(u64) -> Result<R, Status>,
) -> Option<Status> {
    tokio::pin!(gone);
    let current = *height.borrow_and_update();
    let (start, stop) = match seek_range(seek, first, current) {
        Ok(range) => range,
        Err(reason) => {
            crate::refusal!("deliver refused: {}", reason.escape_debug());
            return Some(Status::BadRequest);
        }
    };
    let fail_if_not_ready = seek.behavior == SeekBehavior::FailIfNotReady as i32;
    let mut number = start;
    loop {
        if *height.borrow_and_update() <= number {
            if fail_if_not_ready {
                return Some(Status::NotFound);
            }
            tokio::select! {
                changed = height.changed() => if changed.is_err() { return Some(Status::ServiceUnavailable) },
                () = &mut gone => return Some(Status::ServiceUnavailable),
                _ = out.closed() => return None,
            }
            continue;
        }
        let response = match next(number) {
            Ok(response) => response,
            Err(status) => return Some(status),
        };
        if out.send(Ok(response)).await.is_err() {
            return None;
        }
        if number == stop {
            return Some(Status::Success);
        }
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use weft_protos::orderer::{SeekNewest, SeekNextCommit, SeekOldest};

    use std::future::pending;

    use super::*;
    use crate::seek::specified;

    fn seek(start: SeekPosition, stop: SeekPosition) -> SeekInfo {
        SeekInfo {
            start: Some(start),
            stop: Some(stop),
            ..Default::default()
        }
    }

    fn of(t: seek_position::Type) -> SeekPosition {
        SeekPosition { r#type: Some(t) }
    }

    #[test]
    fn positions_resolve_against_first_and_height() {
        let oldest = of(seek_position::Type::Oldest(SeekOldest {}));
        let newest = of(seek_position::Type::Newest(SeekNewest {}));
        let next = of(seek_position::Type::NextCommit(SeekNextCommit {}));
        assert_eq!(seek_range(&seek(oldest, newest), 3, 10), Ok((3, 9)));
        assert_eq!(
            seek_range(&seek(next, specified(u64::MAX)), 0, 10),
            Ok((10, u64::MAX))
        );
        assert!(seek_range(&seek(specified(2), newest), 3, 10).is_err());
        assert!(seek_range(&seek(specified(5), specified(4)), 0, 10).is_err());
        assert!(seek_range(&SeekInfo::default(), 0, 10).is_err());
    }

    #[tokio::test]
    async fn sends_until_stop_then_success() {
        let (_height_tx, height) = watch::channel(5u64);
        let (out, mut rx) = mpsc::channel(8);
        let status = serve_seek(
            &seek(specified(1), specified(3)),
            0,
            height,
            pending(),
            &out,
            Ok,
        )
        .await;
        assert_eq!(status, Some(Status::Success));
        drop(out);
        let mut sent = Vec::new();
        while let Some(Ok(n)) = rx.recv().await {
            sent.push(n);
        }
        assert_eq!(sent, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_refusal_ends_the_stream() {
        let (_height_tx, height) = watch::channel(5u64);
        let (out, _rx) = mpsc::channel(8);
        let status = serve_seek(
            &seek(specified(0), specified(4)),
            0,
            height,
            pending(),
            &out,
            |n| {
                if n < 2 { Ok(n) } else { Err(Status::Forbidden) }
            },
        )
        .await;
        assert_eq!(status, Some(Status::Forbidden));
    }

    #[tokio::test]
    async fn a_waiting_stream_ends_when_its_channel_goes() {
        let (_height_tx, height) = watch::channel(2u64);
        let (out, _rx) = mpsc::channel(8);
        let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            let gone = async move {
                let _ = gone_rx.await;
            };
            serve_seek(
                &seek(specified(0), specified(u64::MAX)),
                0,
                height,
                gone,
                &out,
                Ok,
            )
            .await
        });
        tokio::task::yield_now().await;
        assert!(!serving.is_finished(), "it waits for block 2");
        let _ = gone_tx.send(());
        assert_eq!(
            serving.await.expect("task"),
            Some(Status::ServiceUnavailable)
        );
    }
}
