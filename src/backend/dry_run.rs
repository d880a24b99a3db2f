//! A backend that changes nothing and prints the `nft` commands it would run.
//!
//! It keeps what it "opened" with each element's expiry, as the kernel
//! would, so that reading back ([`Backend::list`]) tells the truth about a
//! dry run: nothing is ever consumed, unused pinholes expire.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::Instant;

use super::{Backend, BackendError, Element, LiveElement, Op, OpError, Outcome, TableSpec};
use crate::policy::Pinhole;

/// Prints `nft add element ...` / `nft delete element ...` lines.
pub struct DryRun {
    table: TableSpec,
    out: Box<dyn Write + Send>,
    queued: Vec<(Op, Pinhole)>,
    /// The elements a kernel would hold now, and when each would expire.
    held: HashMap<(&'static str, IpAddr, IpAddr, u16), (Element, Instant)>,
}

impl std::fmt::Debug for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DryRun").field("table", &self.table).field("queued", &self.queued).finish()
    }
}

impl DryRun {
    /// A dry run for `table`, writing commands to `out`.
    pub fn new(table: TableSpec, out: Box<dyn Write + Send>) -> Self {
        DryRun { table, out, queued: Vec::new(), held: HashMap::new() }
    }

    /// The command for one operation. An open sets both the timeout and the
    /// expiration, so that re-adding an element resets its clock (kernels
    /// 6.12 and later; earlier ones keep the old expiry).
    pub fn command(&self, op: Op, pinhole: &Pinhole) -> String {
        let e = Element::of(pinhole);
        let t = &self.table;
        match op {
            Op::Open => {
                let s = e.timeout.as_secs();
                format!("nft add element {t} {} {{ {} timeout {s}s expires {s}s }}", e.set, e.nft_key())
            }
            Op::Close => format!("nft delete element {t} {} {{ {} }}", e.set, e.nft_key()),
        }
    }
}

impl Backend for DryRun {
    fn open(&mut self, pinhole: &Pinhole) {
        self.queued.push((Op::Open, *pinhole));
    }

    fn close(&mut self, pinhole: &Pinhole) {
        self.queued.push((Op::Close, *pinhole));
    }

    fn flush(&mut self) -> Result<Vec<Outcome>, BackendError> {
        let queued = std::mem::take(&mut self.queued);
        let mut outcomes = Vec::with_capacity(queued.len());
        for (op, pinhole) in queued {
            let result = if self.table.family.holds(pinhole.dst) {
                let line = self.command(op, &pinhole);
                writeln!(self.out, "{line}").map_err(BackendError::Output)?;
                let e = Element::of(&pinhole);
                let key = (e.set, e.src, e.dst, e.dport);
                match op {
                    Op::Open => {
                        self.held.insert(key, (e, Instant::now() + e.timeout));
                    }
                    Op::Close => {
                        self.held.remove(&key);
                    }
                }
                Ok(())
            } else {
                Err(OpError::FamilyNotInTable { table: self.table.clone(), family: super::family_name(pinhole.dst) })
            };
            outcomes.push(Outcome { op, pinhole, result });
        }
        self.out.flush().map_err(BackendError::Output)?;
        Ok(outcomes)
    }

    fn list(&mut self) -> Result<Vec<LiveElement>, BackendError> {
        let now = Instant::now();
        self.held.retain(|_, (_, expires)| *expires > now);
        Ok(self
            .held
            .values()
            .map(|(element, expires)| LiveElement {
                element: *element,
                expires: Some(expires.saturating_duration_since(now)),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::backend::TableFamily;
    use crate::ftp::Mode;
    use crate::policy::SourcePort;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn pinhole(src: &str, dst: &str, mode: Mode) -> Pinhole {
        Pinhole {
            mode,
            src: src.parse().expect("addr"),
            sport: SourcePort::Port(20),
            dst: dst.parse().expect("addr"),
            dport: 50000,
            ttl: Duration::from_secs(30),
        }
    }

    #[test]
    fn prints_nft_commands_in_order() {
        let out = Shared::default();
        let mut b = DryRun::new(TableSpec::default(), Box::new(out.clone()));
        let p = pinhole("192.0.2.10", "198.51.100.20", Mode::Passive);
        let a = pinhole("2001:db8:2::20", "2001:db8:1::10", Mode::Active);
        b.open(&p);
        b.open(&a);
        b.close(&p);
        let outcomes = b.flush().expect("flush");
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(
            text,
            "nft add element inet ftp_pinhole passive4 { 192.0.2.10 . 198.51.100.20 . 50000 timeout 30s expires 30s }\n\
             nft add element inet ftp_pinhole active6 { 2001:db8:2::20 . 2001:db8:1::10 . 50000 timeout 30s expires 30s }\n\
             nft delete element inet ftp_pinhole passive4 { 192.0.2.10 . 198.51.100.20 . 50000 }\n"
        );
        assert!(b.flush().expect("empty flush").is_empty());
    }

    #[test]
    fn what_was_opened_is_listed_until_closed_or_expired() {
        let mut b = DryRun::new(TableSpec::default(), Box::new(Shared::default()));
        let long = pinhole("192.0.2.10", "198.51.100.20", Mode::Passive);
        let short = Pinhole { dport: 50001, ttl: Duration::from_millis(50), ..long };
        b.open(&long);
        b.open(&short);
        b.flush().expect("flush");
        let listed = b.list().expect("list");
        assert_eq!(listed.len(), 2);
        std::thread::sleep(Duration::from_millis(80));
        let listed = b.list().expect("list");
        assert_eq!(listed.iter().map(|l| l.element.dport).collect::<Vec<_>>(), [50000], "the short one expired");
        b.close(&long);
        b.flush().expect("flush");
        assert!(b.list().expect("list").is_empty());
    }

    #[test]
    fn a_family_the_table_cannot_hold_is_an_operation_error() {
        let table = TableSpec::new(TableFamily::Ip, "filter").expect("name");
        let mut b = DryRun::new(table, Box::new(Shared::default()));
        b.open(&pinhole("2001:db8:1::10", "2001:db8:2::20", Mode::Passive));
        let outcomes = b.flush().expect("flush");
        let err = outcomes[0].result.as_ref().expect_err("IPv6 in an ip table");
        assert_eq!(err.to_string(), "table ip filter has no set for IPv6 pinholes");
    }
}
