//! `argen`: generate images with visual autoregressive models, with any of argen's decoding
//! methods; turn token ids into images; judge ShapesWorld images against prompts; benchmark every
//! method's speed and quality side by side.
//!
//! Errors are reported as one line on stderr (`argen: error: …`) with exit status 1 — never a
//! panic or a backtrace.

mod args;
mod bench;
mod bench_audit;
mod bench_peer;
mod bench_plot;
mod bench_spec;
mod device;
mod generate;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Generate(g) => generate::run(&g),
        args::Command::Decode(d) => generate::decode(&d),
        args::Command::Score(s) => generate::score_image(&s),
        args::Command::Bench(b) => bench::run(&b),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("argen: error: {e}");
            ExitCode::FAILURE
        }
    }
}
