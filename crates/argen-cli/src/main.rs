//! `argen`: generate images with visual autoregressive models, with any of argen's decoding
//! methods; turn token ids into images; judge ShapesWorld images against prompts; benchmark every
//! method's speed and quality side by side.
//!
//! Errors are reported as one line on stderr (`argen: error: …`) with exit status 1 — never a
//! panic or a backtrace; argument errors too (clap's own messages are folded into that line).
//! Outputs are staged and written only when the whole command succeeded ([`output`]); a
//! closed stdout ends the command quietly (exit 0, outputs written); a file-size limit
//! (`ulimit -f`) is an error on the write that exceeds it, not a `SIGXFSZ` kill.

use argen_engine::model_dir;

mod args;
mod bench;
mod bench_audit;
mod bench_peer;
mod bench_plot;
mod bench_spec;
mod calibrate;
mod device;
mod generate;
mod output;
mod parse;
mod progress;
mod replay;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ignore_sigxfsz();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            return match args::clap_error_line(&e) {
                Some(line) => fail(&line),
                None => match output::out(&e.render().to_string()) {
                    Err(msg) if !output::stdout_closed() => fail(&msg),
                    _ => ExitCode::SUCCESS,
                },
            }
        }
    };
    // `argen replay` exits 1 when the run diverged (reported on stdout, not as an error).
    let mut code = ExitCode::SUCCESS;
    let result = cli.check().and_then(|()| match &cli.command {
        args::Command::Generate(g) => check_generate(g).and_then(|()| generate::run(g)),
        args::Command::Decode(d) => check_decode(d).and_then(|()| generate::decode(d)),
        args::Command::Score(s) => generate::score_image(s),
        args::Command::Bench(b) => check_bench(b).and_then(|()| bench::run(b)),
        args::Command::Calibrate(c) => calibrate::run(c),
        args::Command::Replay(r) => replay::run(r).map(|identical| {
            if !identical {
                code = ExitCode::FAILURE;
            }
        }),
        args::Command::Trace(args::TraceCommand::Show(t)) => replay::show(t),
    });
    match result {
        Ok(()) => match output::commit() {
            Ok(()) => code,
            Err(e) => fail(&e),
        },
        // The reader of stdout went away: the run itself succeeded.
        Err(_) if output::stdout_closed() => match output::commit() {
            Ok(()) => code,
            Err(e) => fail(&e),
        },
        Err(e) => {
            output::discard();
            fail(&e)
        }
    }
}

/// Prints `argen: error: MSG` (one line; overlong messages shortened) and returns failure.
fn fail(msg: &str) -> ExitCode {
    let mut line = msg.replace('\n', " ");
    if line.chars().count() > 400 {
        let head: String = line.chars().take(300).collect();
        let tail: String = line
            .chars()
            .skip(line.chars().count() - 80)
            .collect::<String>();
        line = format!("{head} … {tail}");
    }
    // A closed or full stderr leaves nothing to report to.
    let _ = writeln!(std::io::stderr(), "argen: error: {line}");
    ExitCode::FAILURE
}

/// With `SIGXFSZ` ignored, a write beyond `ulimit -f` fails with `EFBIG` (reported as an
/// error, the previous outputs intact) instead of killing the process.
fn ignore_sigxfsz() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code; it is done
    // once, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// The model's files as inputs for the output-conflict check.
fn model_inputs(dir: &model_dir::ModelDir) -> Vec<(String, std::path::PathBuf)> {
    model_dir::FILES
        .iter()
        .chain(std::iter::once(&"drafter.safetensors"))
        .map(|f| (format!("model file {f}"), dir.file(f)))
        .collect()
}

fn conflicts(
    outputs: &[(&str, &std::path::Path)],
    dir: &model_dir::ModelDir,
    extra_inputs: &[(&str, &std::path::Path)],
) -> Result<(), String> {
    let model = model_inputs(dir);
    let mut inputs: Vec<(&str, &std::path::Path)> = extra_inputs.to_vec();
    inputs.extend(model.iter().map(|(n, p)| (n.as_str(), p.as_path())));
    output::check_outputs(outputs, &inputs)
}

/// Option checks of `generate` that need the model's config, and output conflicts.
fn check_generate(g: &args::GenerateArgs) -> Result<(), String> {
    let dir = model_dir::resolve(g.model.as_deref())?;
    let cfg = dir.gpt_config()?;
    g.check_for_model(&cfg)?;
    let mut outputs: Vec<(&str, &std::path::Path)> = vec![("--out", &g.out)];
    if let Some(p) = &g.stats {
        outputs.push(("--stats", p));
    }
    if let Some(p) = &g.tokens {
        outputs.push(("--tokens", p));
    }
    if let Some(p) = &g.trace {
        outputs.push(("--trace", p));
    }
    let caption: Vec<(&str, &std::path::Path)> = g
        .caption
        .iter()
        .map(|p| ("--caption", p.as_path()))
        .collect();
    conflicts(&outputs, &dir, &caption)
}

fn check_decode(d: &args::DecodeArgs) -> Result<(), String> {
    let dir = model_dir::resolve(d.model.as_deref())?;
    conflicts(&[("--out", &d.out)], &dir, &[("--tokens", &d.tokens)])
}

fn check_bench(b: &args::BenchArgs) -> Result<(), String> {
    let dir = model_dir::resolve(b.model.as_deref())?;
    match &b.json {
        Some(p) => conflicts(&[("--json", p)], &dir, &[]),
        None => Ok(()),
    }
}
