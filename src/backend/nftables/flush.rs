//! What a batch's verdict means for each of its operations: pure, so that
//! the attribution of the kernel's errors to operations is unit-tested.
//!
//! Operation `i` contributes one message per step of its plan; the kernel
//! names a failing message by its sequence number, hence its index. A batch
//! is atomic: when any message fails, every other operation was rolled back
//! and is sent again unchanged; a failed one falls back to another plan,
//! counts as done, or fails with its [`OpError`].

use std::io;
use std::time::Duration;

use tracing::{debug, warn};

use super::batch::{Message, Step};
use super::keys::Key;
use super::plan::{Next, Plan};
use super::reply::Refusal;
use super::Features;
use crate::backend::{Op, OpError};

/// Fallback transitions one operation may take in a flush.
pub(crate) const MAX_TRANSITIONS: u8 = 3;

/// One operation on its way through a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    /// Position in the queue (and in the outcomes).
    pub(crate) index: usize,
    /// Open or close.
    pub(crate) op: Op,
    /// Its set.
    pub(crate) set: &'static str,
    /// Its key.
    pub(crate) key: Key,
    /// Its time to live, ms (at least 1: a zero timeout never expires).
    pub(crate) ttl_ms: u64,
    /// How it is carried out now.
    pub(crate) plan: Plan,
    /// Fallbacks taken so far.
    pub(crate) transitions: u8,
}

/// A pinhole's time to live as an element timeout, ms: at least 1, because
/// the kernel takes a zero timeout as none, and the element would never expire.
pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The messages of `items`, in order, and for each the item and step it carries.
pub(crate) fn messages(items: &[Work]) -> (Vec<Message>, Vec<(usize, Step)>) {
    let mut messages = Vec::with_capacity(items.len());
    let mut owner = Vec::with_capacity(items.len());
    for (i, w) in items.iter().enumerate() {
        for &step in w.plan.steps() {
            messages.push(Message::new(step, w.set, w.key, w.ttl_ms));
            owner.push((i, step));
        }
    }
    (messages, owner)
}

/// What one operation failed with when the kernel refused it with `errno`.
pub(crate) fn op_error(op: Op, set: &'static str, errno: i32) -> OpError {
    if errno == libc::ENFILE {
        // nf_tables answers ENFILE when a set declared with `size N` holds N elements.
        OpError::SetFull { set }
    } else {
        OpError::Kernel { op: op.as_str(), set, source: io::Error::from_raw_os_error(errno) }
    }
}

/// The operations of a batch after its verdict.
#[derive(Debug, Default)]
pub(crate) struct Resolution {
    /// Settled: (queue index, result).
    pub(crate) settled: Vec<(usize, Result<(), OpError>)>,
    /// To send again (rolled back with the batch, or falling back).
    pub(crate) retry: Vec<Work>,
}

/// Every operation of a committed batch succeeded.
pub(crate) fn committed(items: &[Work]) -> Resolution {
    Resolution { settled: items.iter().map(|w| (w.index, Ok(()))).collect(), retry: Vec::new() }
}

/// The operations of a batch rolled back because of `refusals` (message
/// indexes into `owner`, as [`messages`] laid them out).
pub(crate) fn rejected(
    items: &[Work],
    owner: &[(usize, Step)],
    refusals: &[Refusal],
    features: Features,
) -> Resolution {
    let mut refused: Vec<Option<(Step, i32)>> = vec![None; items.len()];
    for r in refusals {
        let Some(&(i, step)) = owner.get(r.index) else {
            debug!(index = r.index, errno = r.errno, "refusal of a message not in the batch");
            continue;
        };
        debug!(step = step.as_str(), errno = r.errno, offset = r.offset, text = r.text, "message refused");
        // The first refused step of an operation decides.
        if let Some(slot) = refused.get_mut(i).filter(|s| s.is_none()) {
            *slot = Some((step, r.errno));
        }
    }
    let mut out = Resolution::default();
    for (w, refusal) in items.iter().zip(refused) {
        let Some((step, errno)) = refusal else {
            out.retry.push(*w);
            continue;
        };
        let key = w.key.parts();
        match w.plan.on_refusal(step, errno, features) {
            Next::Retry(plan) if w.transitions < MAX_TRANSITIONS => {
                debug!(
                    op = w.op.as_str(),
                    set = w.set,
                    key = ?key,
                    errno,
                    from = w.plan.as_str(),
                    to = plan.as_str(),
                    "falling back"
                );
                out.retry.push(Work { plan, transitions: w.transitions + 1, ..*w });
            }
            Next::Done => {
                debug!(op = w.op.as_str(), set = w.set, key = ?key, "element already gone");
                out.settled.push((w.index, Ok(())));
            }
            Next::Retry(_) | Next::Fail => {
                let e = op_error(w.op, w.set, errno);
                warn!(op = w.op.as_str(), set = w.set, key = ?key, errno, error = %e, "operation refused by the kernel");
                out.settled.push((w.index, Err(e)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nftables::plan::Removal;
    use crate::backend::nftables::reply::tests::error_reply;
    use crate::backend::nftables::reply::{messages as split, BatchReplies, Seqs, Verdict};
    use crate::backend::{SET_ACTIVE4, SET_PASSIVE4, SET_PASSIVE6};

    const NEW: Features = Features::ALL;
    const OLD: Features = Features::NONE;

    fn key(last: u8) -> Key {
        Key::new([192, 0, 2, last].into(), [198, 51, 100, 1].into(), 50000).expect("key")
    }

    fn work(index: usize, op: Op, plan: Plan) -> Work {
        Work { index, op, set: SET_PASSIVE4, key: key(index as u8), ttl_ms: 30_000, plan, transitions: 0 }
    }

    /// The verdict on a batch of `n` messages from these crafted replies, as
    /// one datagram.
    fn verdict(n: u32, replies: &[(u32, i32)], end_ack: bool) -> Verdict {
        let seqs = Seqs::new(10, n).expect("no wrap");
        let mut datagram = Vec::new();
        for &(seq, errno) in replies {
            datagram.extend(error_reply(seq, errno, Some(20)));
        }
        let mut r = BatchReplies::new(seqs);
        for m in split(&datagram) {
            r.feed(m.expect("well formed"));
        }
        r.verdict(end_ack)
    }

    fn refusals(v: Verdict) -> Vec<Refusal> {
        match v {
            Verdict::Rejected(r) => r,
            other => panic!("not rejected: {other:?}"),
        }
    }

    #[test]
    fn a_zero_ttl_never_becomes_an_element_without_timeout() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_micros(10)), 1);
        assert_eq!(ttl_ms(Duration::from_secs(30)), 30_000);
        assert_eq!(ttl_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn messages_follow_the_plans_in_order() {
        let items = [
            work(0, Op::Open, Plan::Upsert),
            work(1, Op::Open, Plan::Replace(Removal::Delete)),
            work(2, Op::Close, Plan::Remove(Removal::Destroy)),
        ];
        let (msgs, owner) = messages(&items);
        let steps: Vec<Step> = msgs.iter().map(|m| m.step).collect();
        assert_eq!(steps, [Step::Upsert, Step::Delete, Step::Create, Step::Destroy]);
        assert_eq!(owner, [(0, Step::Upsert), (1, Step::Delete), (1, Step::Create), (2, Step::Destroy)]);
        assert_eq!(msgs[0].timeout_ms, Some(30_000));
        assert_eq!(msgs[0].expiration_ms, Some(30_000));
        assert_eq!(msgs[1].key, key(1));
    }

    #[test]
    fn a_committed_batch_settles_every_operation() {
        let items = [work(0, Op::Open, Plan::Upsert), work(1, Op::Close, Plan::Remove(Removal::Destroy))];
        assert_eq!(verdict(2, &[(10, 0), (13, 0)], true), Verdict::Committed);
        let r = committed(&items);
        assert!(r.retry.is_empty());
        assert_eq!(r.settled.iter().map(|(i, r)| (*i, r.is_ok())).collect::<Vec<_>>(), [(0, true), (1, true)]);
    }

    #[test]
    fn a_full_set_fails_its_operation_and_the_others_are_sent_again() {
        let items: Vec<Work> = (0..3).map(|i| work(i, Op::Open, Plan::Upsert)).collect();
        let (_, owner) = messages(&items);
        // Begin acked, the third message (seq 13) refused, no end ack.
        let v = verdict(3, &[(10, 0), (13, libc::ENFILE)], true);
        let r = rejected(&items, &owner, &refusals(v), NEW);
        assert_eq!(r.retry, items[..2]);
        assert_eq!(r.settled.len(), 1);
        assert!(matches!(r.settled[0], (2, Err(OpError::SetFull { set: SET_PASSIVE4 }))));
    }

    #[test]
    fn other_errnos_are_kernel_errors_naming_the_operation() {
        let items = [Work { set: SET_ACTIVE4, ..work(0, Op::Close, Plan::Remove(Removal::Destroy)) }];
        let (_, owner) = messages(&items);
        let r = rejected(&items, &owner, &refusals(verdict(1, &[(11, libc::EINVAL)], false)), NEW);
        let Some((0, Err(e))) = r.settled.first() else { panic!("settled: {:?}", r.settled) };
        assert!(matches!(e, OpError::Kernel { op: "close", set: SET_ACTIVE4, .. }), "{e:?}");
        assert!(e.to_string().starts_with("the kernel refused close in set active4: Invalid argument"), "{e}");
    }

    #[test]
    fn an_existing_element_on_an_old_kernel_is_replaced_then_created_if_it_vanished() {
        let items = [work(0, Op::Open, Plan::Create), work(1, Op::Open, Plan::Create)];
        let (_, owner) = messages(&items);
        let r = rejected(&items, &owner, &refusals(verdict(2, &[(12, libc::EEXIST)], false)), OLD);
        assert!(r.settled.is_empty());
        let replace = Work { plan: Plan::Replace(Removal::Delete), transitions: 1, ..items[1] };
        assert_eq!(r.retry, [items[0], replace]);

        // Second round: [create 0] [delete 1, create 1]; the delete finds nothing.
        let (msgs, owner) = messages(&r.retry);
        assert_eq!(msgs.len(), 3);
        let r2 = rejected(&r.retry, &owner, &refusals(verdict(3, &[(12, libc::ENOENT)], false)), OLD);
        assert_eq!(r2.retry, [items[0], Work { plan: Plan::Create, transitions: 2, ..items[1] }]);
    }

    #[test]
    fn closing_an_absent_element_with_delete_is_success() {
        let items = [work(0, Op::Close, Plan::Remove(Removal::Delete)), work(1, Op::Open, Plan::Create)];
        let (_, owner) = messages(&items);
        let r = rejected(&items, &owner, &refusals(verdict(2, &[(11, libc::ENOENT)], false)), OLD);
        assert!(matches!(r.settled[..], [(0, Ok(()))]));
        assert_eq!(r.retry, [items[1]]);
    }

    #[test]
    fn fallbacks_are_bounded() {
        let tired = Work { transitions: MAX_TRANSITIONS, ..work(0, Op::Open, Plan::Create) };
        let (_, owner) = messages(&[tired]);
        let r = rejected(&[tired], &owner, &refusals(verdict(1, &[(11, libc::EEXIST)], false)), OLD);
        assert!(r.retry.is_empty());
        assert!(matches!(r.settled[..], [(0, Err(OpError::Kernel { .. }))]));
    }

    #[test]
    fn the_first_refused_step_of_an_operation_decides() {
        let items = [work(0, Op::Open, Plan::Replace(Removal::Delete))];
        let (_, owner) = messages(&items);
        let v = verdict(2, &[(11, libc::ENOENT), (12, libc::EEXIST)], false);
        let r = rejected(&items, &owner, &refusals(v), OLD);
        assert_eq!(r.retry, [Work { plan: Plan::Create, transitions: 1, ..items[0] }]);
    }

    #[test]
    fn refusals_of_unknown_messages_are_ignored() {
        let items = [Work { set: SET_PASSIVE6, ..work(0, Op::Open, Plan::Upsert) }];
        let (_, owner) = messages(&items);
        let bogus = [Refusal { index: 5, errno: libc::EINVAL, offset: None, text: None }];
        let r = rejected(&items, &owner, &bogus, NEW);
        assert_eq!(r.retry, items);
        assert!(r.settled.is_empty());
    }
}
