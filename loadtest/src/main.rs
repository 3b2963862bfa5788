//! The ChatSDK load generator. Its scenarios (steady, spike, heavy, upload storm, open-loop fixed rate)
//! are built by the loadtest issue on top of the command and query APIs; until then it only says so.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("loadtest: no scenario is implemented yet (see docs/benchmarks.md)");
    ExitCode::from(2)
}
