//! The `ftp-pinhole` command: parse arguments, run, report errors once.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
