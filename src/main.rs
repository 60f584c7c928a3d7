//! The barrierlab command line: `probe`, `study`, `gcbench`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A laboratory for garbage-collector write barriers on Linux.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report which write-barrier mechanisms this kernel offers, and why not the others.
    Probe,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Probe => {
            print!("{}", barrierlab::probe::Probe::run());
            ExitCode::SUCCESS
        }
    }
}
