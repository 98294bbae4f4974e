//! Faults and the run's verdict.

use crate::failure::FailureReason;

/// One fault, with a human detail that may contain server-supplied text.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub reason: FailureReason,
    pub detail: String,
}

impl Fault {
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// The run's verdict: the first fault wins; later faults are counted but do not replace it.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    first: Option<Fault>,
}

impl Verdict {
    /// Records a fault; returns true if it became the verdict.
    pub fn fault(&mut self, reason: FailureReason, detail: impl Into<String>) -> bool {
        if self.first.is_some() {
            return false;
        }
        self.first = Some(Fault {
            reason,
            detail: detail.into(),
        });
        true
    }

    pub fn first(&self) -> Option<&Fault> {
        self.first.as_ref()
    }

    pub fn success(&self) -> bool {
        self.first.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_fault_is_the_verdict() {
        let mut v = Verdict::default();
        assert!(v.success());
        assert!(v.fault(FailureReason::SequenceGap, "gap"));
        assert!(!v.fault(FailureReason::Closed, "closed"));
        assert_eq!(v.first().unwrap().reason, FailureReason::SequenceGap);
        assert!(!v.success());
    }
}
