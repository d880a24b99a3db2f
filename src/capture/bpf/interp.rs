//! A classic BPF interpreter and checker with the kernel's semantics, for the
//! tests: `net/core/filter.c` (`bpf_check_classic`) refuses a program whose
//! jumps leave it, that does not end in a return, or that divides by a
//! constant zero; at run time a load past the end of the packet makes the
//! program return 0 (drop), as does a division by a zero X.

use super::op::*;
use super::{Insn, MAX_INSNS};

/// Scratch memory words (`BPF_MEMWORDS`).
const MEMWORDS: usize = 16;

/// Why the checker or the interpreter refused a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fault {
    /// Empty or longer than the kernel takes.
    Length(usize),
    /// The jump at this index lands outside the program.
    JumpOut(usize),
    /// The last instruction is not a return.
    NoFinalReturn,
    /// An opcode the interpreter does not implement (ancillary loads included).
    Unsupported { at: usize, code: u16 },
    /// Scratch memory index out of range.
    Memory(usize),
    /// Division by a constant zero.
    DivideByZero(usize),
}

/// What the kernel's loader checks before it accepts a program.
pub(super) fn check(prog: &[Insn]) -> Result<(), Fault> {
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return Err(Fault::Length(prog.len()));
    }
    for (at, insn) in prog.iter().enumerate() {
        let (class, k) = (insn.code & 0x07, insn.k as usize);
        match class {
            JMP => {
                let furthest = if insn.code & 0xf0 == JA { k } else { usize::from(insn.jt.max(insn.jf)) };
                if at + 1 + furthest >= prog.len() {
                    return Err(Fault::JumpOut(at));
                }
            }
            ST | STX if k >= MEMWORDS => return Err(Fault::Memory(at)),
            LD | LDX if insn.code & 0xe0 == MEM && k >= MEMWORDS => return Err(Fault::Memory(at)),
            ALU if insn.code & 0xf0 == DIV && insn.code & X == 0 && insn.k == 0 => {
                return Err(Fault::DivideByZero(at));
            }
            _ => {}
        }
    }
    match prog.last() {
        Some(last) if last.code & 0x07 == RET => Ok(()),
        _ => Err(Fault::NoFinalReturn),
    }
}

/// Runs `prog` over `packet`, received by this host: the number of bytes
/// the kernel would keep (0 = drop).
pub(super) fn run(prog: &[Insn], packet: &[u8]) -> Result<u32, Fault> {
    run_as(prog, packet, 0) // PACKET_HOST
}

/// Runs `prog` over `packet` of kernel packet type `pkttype`.
pub(super) fn run_as(prog: &[Insn], packet: &[u8], pkttype: u32) -> Result<u32, Fault> {
    check(prog)?;
    let load = |offset: u64, size: usize| -> Option<u32> {
        let start = usize::try_from(offset).ok()?;
        let bytes = packet.get(start..start.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
    };
    let width = |code: u16| match code & 0x18 {
        H => 2,
        B => 1,
        _ => 4,
    };
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; MEMWORDS]);
    let mut pc = 0usize;
    // Every jump goes forward, so a program runs at most `len` instructions.
    for _ in 0..prog.len() {
        let Some(&insn) = prog.get(pc) else { break };
        let (code, k) = (insn.code, insn.k);
        let unsupported = Fault::Unsupported { at: pc, code };
        pc += 1;
        match code & 0x07 {
            LD => {
                a = match code & 0xe0 {
                    // Negative offsets address link-layer, network or ancillary
                    // data (SKF_*_OFF); of those, our programs read the packet type.
                    ABS if k == super::SKF_PKTTYPE && code & 0x18 == W => pkttype,
                    ABS if (k as i32) < 0 => return Err(unsupported),
                    ABS => match load(u64::from(k), width(code)) {
                        Some(v) => v,
                        None => return Ok(0),
                    },
                    IND => match load(u64::from(x) + u64::from(k), width(code)) {
                        Some(v) => v,
                        None => return Ok(0),
                    },
                    IMM => k,
                    MEM => mem[k as usize % MEMWORDS],
                    LEN => packet.len() as u32,
                    _ => return Err(unsupported),
                }
            }
            LDX => {
                x = match code & 0xe0 {
                    IMM => k,
                    MEM => mem[k as usize % MEMWORDS],
                    LEN => packet.len() as u32,
                    MSH => match load(u64::from(k), 1) {
                        Some(v) => 4 * (v & 0x0f),
                        None => return Ok(0),
                    },
                    _ => return Err(unsupported),
                }
            }
            ST => mem[k as usize % MEMWORDS] = a,
            STX => mem[k as usize % MEMWORDS] = x,
            ALU => {
                let v = if code & X != 0 { x } else { k };
                a = match code & 0xf0 {
                    ADD => a.wrapping_add(v),
                    SUB => a.wrapping_sub(v),
                    MUL => a.wrapping_mul(v),
                    DIV => match a.checked_div(v) {
                        Some(q) => q,
                        None => return Ok(0),
                    },
                    OR => a | v,
                    AND => a & v,
                    LSH => a.checked_shl(v).unwrap_or(0),
                    RSH => a.checked_shr(v).unwrap_or(0),
                    NEG => a.wrapping_neg(),
                    _ => return Err(unsupported),
                }
            }
            JMP => {
                let v = if code & X != 0 { x } else { k };
                let taken = match code & 0xf0 {
                    JA => {
                        pc += k as usize;
                        continue;
                    }
                    JEQ => a == v,
                    JGT => a > v,
                    JGE => a >= v,
                    JSET => a & v != 0,
                    _ => return Err(unsupported),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            RET => {
                return Ok(match code & 0x18 {
                    A => a,
                    X => x,
                    _ => k,
                })
            }
            MISC => match code & 0xf8 {
                TAX => x = a,
                TXA => a = x,
                _ => return Err(unsupported),
            },
            _ => return Err(unsupported),
        }
    }
    // `check` guarantees a final return, so this is not reached.
    Err(Fault::NoFinalReturn)
}
