//! How each queued operation is carried out on this kernel, and what to do
//! when the kernel refuses one of its steps. Pure, so that every fallback
//! transition is unit-tested.
//!
//! | kernel | open | close |
//! |---|---|---|
//! | >= 6.12 | one upsert (timeout and expiration reset the clock) | destroy |
//! | 6.3 - 6.11 | destroy + create | destroy |
//! | older | create; on EEXIST delete + create; if that delete gets ENOENT (it expired meanwhile), create | delete; ENOENT means already gone |
//!
//! Refusals are avoided where the kernel allows it, because a refused message
//! aborts its whole batch and an abort is slow: `send()` blocked 8 to 23 ms
//! for each aborted batch on the development machine (kernel 6.18, HZ=250)
//! against under 10 us for a committed one. Hence destroy + create on
//! 6.3 - 6.11 rather than create and, on EEXIST, a second batch.

use super::batch::Step;
use super::Features;

/// How an element is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// `DESTROYSETELEM` (>= 6.3): absent is fine.
    Destroy,
    /// `DELSETELEM`: absent is ENOENT.
    Delete,
}

impl Removal {
    /// The best removal this kernel has.
    pub(crate) const fn of(features: Features) -> Removal {
        if features.destroy {
            Removal::Destroy
        } else {
            Removal::Delete
        }
    }
}

/// The steps an operation takes, all in one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Add, or reset the clock of an element that is there (>= 6.12).
    Upsert,
    /// Add; EEXIST if it is there.
    Create,
    /// Remove, then add: resets the clock of an element known to be there.
    Replace(Removal),
    /// Remove.
    Remove(Removal),
}

/// What to do after the kernel refused a step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send it again with this plan.
    Retry(Plan),
    /// Nothing: the set already says what was asked.
    Done,
    /// It failed with the kernel's errno.
    Fail,
}

impl Plan {
    /// How to open a pinhole.
    pub(crate) const fn open(features: Features) -> Plan {
        if features.upsert_refreshes {
            Plan::Upsert
        } else if features.destroy {
            Plan::Replace(Removal::Destroy)
        } else {
            Plan::Create
        }
    }

    /// How to close a pinhole.
    pub(crate) const fn close(features: Features) -> Plan {
        Plan::Remove(Removal::of(features))
    }

    /// Its messages, in order.
    pub(crate) fn steps(self) -> &'static [Step] {
        match self {
            Plan::Upsert => &[Step::Upsert],
            Plan::Create => &[Step::Create],
            Plan::Replace(Removal::Destroy) => &[Step::Destroy, Step::Create],
            Plan::Replace(Removal::Delete) => &[Step::Delete, Step::Create],
            Plan::Remove(Removal::Destroy) => &[Step::Destroy],
            Plan::Remove(Removal::Delete) => &[Step::Delete],
        }
    }

    /// What to do when the kernel refused `step` of this plan with `errno`.
    pub(crate) fn on_refusal(self, step: Step, errno: i32, features: Features) -> Next {
        match (self, step, errno) {
            // The element is there: remove and re-add it to reset its clock.
            (Plan::Create, Step::Create, libc::EEXIST) => Next::Retry(Plan::Replace(Removal::of(features))),
            // It expired or was consumed between the two batches: just add it.
            (Plan::Replace(Removal::Delete), Step::Delete, libc::ENOENT) => Next::Retry(Plan::Create),
            // Closing what is gone already is what was asked.
            (Plan::Remove(Removal::Delete), Step::Delete, libc::ENOENT) => Next::Done,
            _ => Next::Fail,
        }
    }

    /// Name for logs.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Plan::Upsert => "upsert",
            Plan::Create => "create",
            Plan::Replace(Removal::Destroy) => "destroy+create",
            Plan::Replace(Removal::Delete) => "delete+create",
            Plan::Remove(Removal::Destroy) => "destroy",
            Plan::Remove(Removal::Delete) => "delete",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: Features = Features { upsert_refreshes: true, destroy: true, end_ack: true };
    const MID: Features = Features { upsert_refreshes: false, destroy: true, end_ack: true };
    const OLD: Features = Features { upsert_refreshes: false, destroy: false, end_ack: false };

    #[test]
    fn each_kernel_gets_its_best_plan() {
        assert_eq!((Plan::open(NEW), Plan::close(NEW)), (Plan::Upsert, Plan::Remove(Removal::Destroy)));
        let replace = Plan::Replace(Removal::Destroy);
        assert_eq!((Plan::open(MID), Plan::close(MID)), (replace, Plan::Remove(Removal::Destroy)));
        assert_eq!((Plan::open(OLD), Plan::close(OLD)), (Plan::Create, Plan::Remove(Removal::Delete)));
    }

    #[test]
    fn steps_are_one_message_each_removal_first() {
        assert_eq!(Plan::Upsert.steps(), [Step::Upsert]);
        assert_eq!(Plan::Create.steps(), [Step::Create]);
        assert_eq!(Plan::Replace(Removal::Destroy).steps(), [Step::Destroy, Step::Create]);
        assert_eq!(Plan::Replace(Removal::Delete).steps(), [Step::Delete, Step::Create]);
        assert_eq!(Plan::Remove(Removal::Delete).steps(), [Step::Delete]);
        assert_eq!(Plan::Remove(Removal::Destroy).steps(), [Step::Destroy]);
    }

    #[test]
    fn an_existing_element_is_replaced_to_reset_its_clock() {
        assert_eq!(
            Plan::Create.on_refusal(Step::Create, libc::EEXIST, MID),
            Next::Retry(Plan::Replace(Removal::Destroy))
        );
        assert_eq!(
            Plan::Create.on_refusal(Step::Create, libc::EEXIST, OLD),
            Next::Retry(Plan::Replace(Removal::Delete))
        );
    }

    #[test]
    fn an_element_gone_before_its_replacement_is_created() {
        let replace = Plan::Replace(Removal::Delete);
        assert_eq!(replace.on_refusal(Step::Delete, libc::ENOENT, OLD), Next::Retry(Plan::Create));
        // The create of a replacement failing is a real failure.
        assert_eq!(replace.on_refusal(Step::Create, libc::ENFILE, OLD), Next::Fail);
        assert_eq!(Plan::Replace(Removal::Destroy).on_refusal(Step::Create, libc::EEXIST, MID), Next::Fail);
    }

    #[test]
    fn closing_an_absent_element_succeeds() {
        assert_eq!(Plan::Remove(Removal::Delete).on_refusal(Step::Delete, libc::ENOENT, OLD), Next::Done);
    }

    #[test]
    fn other_refusals_fail_the_operation() {
        for (plan, step, errno) in [
            (Plan::Upsert, Step::Upsert, libc::ENFILE),
            (Plan::Upsert, Step::Upsert, libc::ENOENT),
            (Plan::Upsert, Step::Upsert, libc::EEXIST),
            (Plan::Create, Step::Create, libc::ENOENT),
            (Plan::Create, Step::Create, libc::EINVAL),
            (Plan::Remove(Removal::Destroy), Step::Destroy, libc::ENOENT),
            (Plan::Remove(Removal::Delete), Step::Delete, libc::EINVAL),
        ] {
            assert_eq!(plan.on_refusal(step, errno, NEW), Next::Fail, "{plan:?} {step:?} {errno}");
        }
    }
}
