//! A tiny classic BPF assembler: instructions with forward labels, resolved
//! into jump offsets with their range checked (cBPF jumps only forward, and a
//! conditional jump reaches at most 255 instructions).

use super::op::{JA, JMP, K};
use super::{BuildError, Insn, MAX_INSNS};

/// A place in the program, bound later with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Label(usize);

/// Where a conditional jump goes: the next instruction, or a label.
#[derive(Debug, Clone, Copy)]
enum Target {
    Next,
    To(Label),
}

/// An instruction before its jumps are resolved.
#[derive(Debug, Clone, Copy)]
enum Item {
    Plain(Insn),
    Jump { code: u16, k: u32, jt: Target, jf: Target },
    Goto(Label),
}

/// Instructions and labels under construction.
#[derive(Debug, Default)]
pub(super) struct Asm {
    items: Vec<Item>,
    /// Instruction index of each label, once bound.
    labels: Vec<Option<usize>>,
}

impl Asm {
    /// An empty program.
    pub(super) fn new() -> Asm {
        Asm::default()
    }

    /// A new, unbound label.
    pub(super) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Places `label` at the next instruction.
    pub(super) fn bind(&mut self, label: Label) {
        if let Some(slot) = self.labels.get_mut(label.0) {
            *slot = Some(self.items.len());
        }
    }

    /// An instruction without jumps.
    pub(super) fn stmt(&mut self, code: u16, k: u32) {
        self.items.push(Item::Plain(Insn { code, jt: 0, jf: 0, k }));
    }

    /// `if A <op> k goto jt else goto jf`; `None` falls through.
    pub(super) fn jump(&mut self, op: u16, k: u32, jt: Option<Label>, jf: Option<Label>) {
        let target = |l: Option<Label>| l.map_or(Target::Next, Target::To);
        self.items.push(Item::Jump { code: JMP | op | K, k, jt: target(jt), jf: target(jf) });
    }

    /// `goto label` unconditionally.
    pub(super) fn goto(&mut self, label: Label) {
        self.items.push(Item::Goto(label));
    }

    /// The finished program.
    pub(super) fn assemble(&self) -> Result<Vec<Insn>, BuildError> {
        if self.items.len() > MAX_INSNS {
            return Err(BuildError::TooLong { len: self.items.len() });
        }
        self.items
            .iter()
            .enumerate()
            .map(|(at, item)| match *item {
                Item::Plain(insn) => Ok(insn),
                Item::Jump { code, k, jt, jf } => {
                    let short = |t: Target| -> Result<u8, BuildError> {
                        let distance = match t {
                            Target::Next => 0,
                            Target::To(l) => self.distance(at, l)?,
                        };
                        u8::try_from(distance).map_err(|_| BuildError::JumpTooFar { at, distance })
                    };
                    Ok(Insn { code, jt: short(jt)?, jf: short(jf)?, k })
                }
                Item::Goto(l) => {
                    let distance = self.distance(at, l)?;
                    let k = u32::try_from(distance).map_err(|_| BuildError::JumpTooFar { at, distance })?;
                    Ok(Insn { code: JMP | JA, jt: 0, jf: 0, k })
                }
            })
            .collect()
    }

    /// Instructions skipped by a jump at `at` to `label` (counted from the
    /// next instruction); a backward jump is refused as too far.
    fn distance(&self, at: usize, label: Label) -> Result<usize, BuildError> {
        let dest = self.labels.get(label.0).copied().flatten().ok_or(BuildError::UnboundLabel { at })?;
        dest.checked_sub(at + 1).ok_or(BuildError::JumpTooFar { at, distance: usize::MAX })
    }
}

#[cfg(test)]
mod tests {
    use super::super::op::{JEQ, RET};
    use super::*;

    #[test]
    fn resolves_forward_labels() {
        let mut a = Asm::new();
        let (yes, no) = (a.label(), a.label());
        a.jump(JEQ, 1, Some(yes), Some(no));
        a.goto(no);
        a.bind(yes);
        a.stmt(RET | K, 1);
        a.bind(no);
        a.stmt(RET | K, 0);
        let p = a.assemble().expect("assembles");
        assert_eq!((p[0].jt, p[0].jf), (1, 2));
        assert_eq!(p[1].k, 1);
    }

    #[test]
    fn refuses_unbound_far_and_backward_jumps() {
        let mut a = Asm::new();
        let l = a.label();
        a.goto(l);
        assert_eq!(a.assemble(), Err(BuildError::UnboundLabel { at: 0 }));

        let mut a = Asm::new();
        let far = a.label();
        a.jump(JEQ, 1, Some(far), None);
        for _ in 0..300 {
            a.stmt(RET | K, 0);
        }
        a.bind(far);
        a.stmt(RET | K, 1);
        assert_eq!(a.assemble(), Err(BuildError::JumpTooFar { at: 0, distance: 300 }));

        let mut a = Asm::new();
        let back = a.label();
        a.bind(back);
        a.goto(back);
        assert!(matches!(a.assemble(), Err(BuildError::JumpTooFar { at: 0, .. })));

        let mut a = Asm::new();
        for _ in 0..=MAX_INSNS {
            a.stmt(RET | K, 0);
        }
        assert_eq!(a.assemble(), Err(BuildError::TooLong { len: MAX_INSNS + 1 }));
    }
}
