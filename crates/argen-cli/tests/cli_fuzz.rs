//! The CLI argument fuzzer: random argument vectors drawn from the real option set — read off
//! `argen <command> -h`, so that a new option is fuzzed without touching this file — with
//! values from the option's possible values and from pools of hostile numbers, strings and
//! paths. Before the random cases, every committed case of `fuzz/corpus/cli_args/` (one
//! argument per line; `{MODEL}`, `{SHAPES}` and `{DIR}` substituted) runs.
//!
//! Each run: no panic, no signal, exit 0 or 1, an exit 1 ends with one `argen: error: …` line
//! (the only stderr line except for `bench`, which reports progress), done within [`TIMEOUT`]
//! under `ulimit -v` [`VMEM_KB`], no temporary file left behind. CI runs it in the dev profile
//! (the binary then has overflow checks on): `cargo test -p argen-cli --test cli_fuzz`;
//! `ARGEN_FUZZ_CASES=N` changes the number of random cases ([`CASES`] by default).
//!
//! Left out of the draw: `--peer` (it runs the PyTorch peer, a different program),
//! `--help`/`--version`, and valid runs of the ShapesWorld model (tens of seconds each in the
//! dev profile; `tests/robustness.rs` covers it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Random cases per run.
const CASES: usize = 250;
/// Address-space cap of every child (`ulimit -v`, KiB).
const VMEM_KB: u64 = 2 * 1024 * 1024;
/// Wall-clock cap of every child.
const TIMEOUT: Duration = Duration::from_secs(60);

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

/// One option of a subcommand, as `-h` shows it.
#[derive(Debug, Clone)]
struct Opt {
    flag: String,
    takes_value: bool,
    possible: Vec<String>,
}

/// The options and positional arguments of `argen cmd`, parsed from its `-h`.
fn options(cmd: &str) -> (Vec<Opt>, usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_argen"))
        .args([cmd, "-h"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut opts = Vec::new();
    let mut positional = 0;
    let mut section = "";
    for line in text.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            section = line;
            continue;
        }
        let t = line.trim_start();
        if section == "Arguments:" && t.starts_with('<') {
            positional += 1;
        }
        if let Some(rest) = t.strip_prefix("--") {
            let flag = format!("--{}", rest.split_whitespace().next().unwrap());
            let takes_value = rest
                .split_whitespace()
                .nth(1)
                .is_some_and(|w| w.starts_with('<'));
            let possible = line
                .split("[possible values: ")
                .nth(1)
                .map(|p| {
                    p.trim_end_matches(']')
                        .split(", ")
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if !["--help", "--version", "--peer"].contains(&flag.as_str()) {
                opts.push(Opt {
                    flag,
                    takes_value,
                    possible,
                });
            }
        }
    }
    (opts, positional)
}

const NUMBERS: [&str; 30] = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "-0",
    "0.5",
    "1e-12",
    "1e-45",
    "NaN",
    "inf",
    "-inf",
    "3.4e38",
    "-3.4e38",
    "16",
    "17",
    "63",
    "64",
    "100",
    "1000",
    "100000",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "1e400",
    "0x10",
    "",
    "١",
];

struct Env {
    dir: PathBuf,
    tiny: String,
    shapes: String,
}

impl Env {
    fn paths(&self) -> Vec<String> {
        let d = |n: &str| self.dir.join(n).display().to_string();
        vec![
            d("a.png"),
            d("b.json"),
            d("a.png"), // twice as likely: collisions between outputs
            d("tokens.json"),
            d("scene.png"),
            d("caption.f32"),
            d("fifo"),
            d("missing/x.png"),
            self.dir.display().to_string(),
            "/dev/full".into(),
            "/dev/null".into(),
            "/proc/argen-nonexistent/x".into(),
            self.tiny.clone(),
            format!("{}/gpt.json", self.tiny),
            "".into(),
        ]
    }

    fn value(&self, rng: &mut XorShift, cmd: &str, o: &Opt) -> String {
        if !o.possible.is_empty() && rng.below(5) != 0 {
            return o.possible[rng.below(o.possible.len())].clone();
        }
        let f = o.flag.as_str();
        match f {
            // The ShapesWorld model only where it fails before decoding (its valid runs take
            // tens of seconds in the dev profile); tests/robustness.rs runs it.
            "--model" => {
                [&self.tiny, &self.tiny, &self.dir.display().to_string()][rng.below(3)].clone()
            }
            "--out" | "--stats" | "--tokens" | "--caption" | "--json" | "--plots" => {
                let p = self.paths();
                p[rng.below(p.len())].clone()
            }
            "--prompt" => rng
                .pick(&[
                    "a red circle",
                    "two blue squares left of a green triangle",
                    "a purple elephant",
                    "",
                    "a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a",
                    "a red circle left of",
                ])
                .to_string(),
            "--methods" => rng
                .pick(&[
                    "vanilla",
                    "sd,lantern",
                    "gridar",
                    "bon,vvs",
                    "nope",
                    ",",
                    "sjd,gsd",
                ])
                .to_string(),
            // A valid bench on many prompts and seeds is long, not hung: draw values that are
            // either rejected or tiny.
            "--prompts" | "--seeds" if cmd == "bench" => rng
                .pick(&[
                    "0",
                    "1",
                    "1001",
                    "1000000",
                    "18446744073709551615",
                    "-1",
                    "x",
                ])
                .to_string(),
            "--python" => "/nonexistent/python".into(),
            _ => rng.pick(&NUMBERS).to_string(),
        }
    }
}

/// Runs one argument vector and checks the outcome; returns the exit code.
fn check(args: &[String], dir: &Path) -> i32 {
    let script = format!("ulimit -v {VMEM_KB}; exec \"$0\" \"$@\"");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_argen"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{args:?}: no answer within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("{args:?}: killed by a signal: {:?}\n{err}", out.status));
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    match code {
        0 => {}
        1 => {
            let last = err.lines().last().unwrap_or("");
            assert!(last.starts_with("argen: error: "), "{args:?}: {err}");
            if args.first().map(String::as_str) != Some("bench") {
                assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            }
            assert!(last.len() < 600, "{args:?}: {} bytes", last.len());
        }
        c => panic!("{args:?}: exit status {c}: {err}"),
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!n.ends_with(".tmp"), "{args:?}: left {n}");
    }
    code
}

fn setup(tag: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("argen-cli-fuzz-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::write(
        dir.join("tokens.json"),
        serde_json::to_vec(&(0..16).collect::<Vec<u32>>()).unwrap(),
    )
    .unwrap();
    argen_shapes::RgbImage::new(64, 64)
        .save_png(&dir.join("scene.png"))
        .unwrap();
    std::fs::write(dir.join("caption.f32"), vec![0u8; 36 * 68 * 4]).unwrap();
    assert!(Command::new("mkfifo")
        .arg(dir.join("fifo"))
        .status()
        .unwrap()
        .success());
    Env {
        tiny: root.join("fixtures/model/tiny").display().to_string(),
        shapes: root
            .join("fixtures/models/shapesworld")
            .display()
            .to_string(),
        dir,
    }
}

#[test]
fn committed_cli_cases() {
    let env = setup("corpus");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cli_args");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let args: Vec<String> = text
            .lines()
            .map(|l| {
                l.replace("{MODEL}", &env.tiny)
                    .replace("{SHAPES}", &env.shapes)
                    .replace("{DIR}", &env.dir.display().to_string())
            })
            .collect();
        check(&args, &env.dir);
    }
}

#[test]
fn random_argument_vectors() {
    let env = setup("random");
    let commands = ["generate", "decode", "score", "bench"];
    let table: BTreeMap<&str, (Vec<Opt>, usize)> =
        commands.iter().map(|c| (*c, options(c))).collect();
    assert!(table["generate"].0.len() > 30, "{:?}", table["generate"]);
    let cases = std::env::var("ARGEN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    let mut rng = XorShift(0xA5A5_5A5A_0F0F_F0F0);
    let mut codes = [0usize; 2];
    for _ in 0..cases {
        let cmd = commands[rng.below(commands.len())];
        let (opts, positional) = &table[cmd];
        let mut args = vec![cmd.to_string()];
        // Defaults that keep valid runs short and inside the scratch directory.
        match cmd {
            "generate" => args.extend(
                [
                    "--model", &env.tiny, "--class", "1", "--quiet", "--out", "a.png",
                ]
                .map(String::from),
            ),
            "decode" => args.extend(
                [
                    "--model",
                    &env.tiny,
                    "--tokens",
                    "tokens.json",
                    "--out",
                    "a.png",
                ]
                .map(String::from),
            ),
            "score" => args.extend(["--prompt", "a red circle"].map(String::from)),
            _ => args.extend(
                [
                    "--model",
                    &env.tiny,
                    "--quick",
                    "--methods",
                    "vanilla",
                    "--prompts",
                    "1",
                    "--seeds",
                    "1",
                ]
                .map(String::from),
            ),
        }
        // Later occurrences of an option are clap errors; drawn ones replace the defaults.
        for _ in 0..1 + rng.below(6) {
            let o = &opts[rng.below(opts.len())];
            if let Some(i) = args.iter().position(|a| *a == o.flag) {
                args.remove(i);
                if o.takes_value && i < args.len() {
                    args.remove(i);
                }
            }
            args.push(o.flag.clone());
            if o.takes_value {
                let v = env.value(&mut rng, cmd, o);
                // Half of the values attached with `=`, as users write them too.
                if rng.below(2) == 0 {
                    let f = args.pop().unwrap();
                    args.push(format!("{f}={v}"));
                } else {
                    args.push(v);
                }
            }
        }
        for _ in 0..*positional {
            let p = env.paths();
            args.push(if rng.below(3) == 0 {
                p[rng.below(p.len())].clone()
            } else {
                "scene.png".into()
            });
        }
        if rng.below(20) == 0 {
            args.push(rng.pick(&NUMBERS).to_string());
        }
        codes[check(&args, &env.dir) as usize] += 1;
    }
    eprintln!(
        "{cases} argument vectors: {} succeeded, {} refused",
        codes[0], codes[1]
    );
    // The draw reaches both the work and the checks.
    assert!(codes[0] > cases / 20 && codes[1] > cases / 4, "{codes:?}");
}
