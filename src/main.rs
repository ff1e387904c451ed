//! The `wgrnn` binary: parse flags, run a command, turn every failure into one line on stderr
//! and a non-zero exit (2: bad flags, 1: anything else, 130: interrupted by SIGINT, SIGTERM
//! or SIGHUP). Output goes through `say!` rather than `println!`, so that a closed stdout
//! ends the process quietly with 0 (the reader wanted no more) instead of a panic; resetting
//! SIGPIPE to its default instead would kill the process by a signal, which callers under
//! `set -o pipefail` report as a failure, and would skip the removal of lock files.

#[macro_use]
mod cli;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

use cli::{Cli, Command};

fn main() -> ExitCode {
    quiet_mesa();
    // a flag given twice takes its last value, as in most tools
    let cmd = Cli::command()
        .args_override_self(true)
        .mut_subcommands(|c| c.args_override_self(true));
    let matches = match cmd.try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    let result = match &cli.command {
        Command::Train(a) => cli::train::run(a).and_then(|s| {
            // in a data-parallel run only one process reports
            if s.leads && a.json {
                say!("{}", serde_json::to_string(&s).unwrap_or_default());
            } else if s.leads {
                print_summary(&s)?;
            }
            Ok(if s.interrupted {
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            })
        }),
        Command::Sample(a) => cli::commands::sample(a).map(|_| ExitCode::SUCCESS),
        Command::Eval(a) => cli::commands::eval(a).map(|_| ExitCode::SUCCESS),
        Command::Check(a) => cli::commands::check(a).map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        Command::Grad(a) => cli::commands::grad(a).map(|_| ExitCode::SUCCESS),
        Command::Export(a) => cli::commands::export(a).map(|_| ExitCode::SUCCESS),
        Command::Info => cli::commands::info().map(|_| ExitCode::SUCCESS),
        Command::Bench(a) => cli::bench::bench(a).map(|_| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        wgrnn::fsio::stderr_line(&format!("error: {e}"));
        match e {
            wgrnn::Error::Interrupted => ExitCode::from(130),
            _ => ExitCode::FAILURE,
        }
    })
}

/// Mesa's Vulkan loader prints "error: XDG_RUNTIME_DIR is invalid or not set" when that
/// variable is missing (headless machines, CI). The message is harmless but reads like a
/// failure of ours, so point it at a private directory before any thread or adapter exists.
fn quiet_mesa() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("wgrnn-runtime-{uid}"));
        if std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .is_ok()
        {
            std::env::set_var("XDG_RUNTIME_DIR", dir);
        }
    }
}

/// clap's messages come with a usage block; keep the one line that names the problem.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("error: invalid arguments");
    // clap lists the allowed values of an enumerated flag on a line of their own
    let allowed = match e.get(clap::error::ContextKind::ValidValue) {
        Some(clap::error::ContextValue::Strings(v)) if !v.is_empty() => format!(": allowed: {}", v.join(" | ")),
        _ => String::new(),
    };
    wgrnn::fsio::stderr_line(&format!("{line}{allowed} (see --help)"));
    ExitCode::from(2)
}

fn print_summary(s: &wgrnn::train::Summary) -> wgrnn::Result<()> {
    let mut line = format!(
        "{} steps ({} this run) in {:.1} s, {:.0} tokens/s on {}",
        s.steps,
        s.steps - s.first_step,
        s.seconds,
        s.tokens_per_s,
        s.engine
    );
    if let Some(l) = s.train_loss {
        line += &format!(" | train loss {l:.4}");
    }
    if let Some(l) = s.val_loss {
        line += &format!(" | val loss {l:.4}");
    }
    if let Some(a) = s.val_accuracy {
        line += &format!(" | val accuracy {a:.4}");
    }
    if let Some(u) = s.unigram_baseline {
        line += &format!(" | unigram baseline {u:.4}");
    }
    say!("{line}");
    if let Some(p) = &s.checkpoint {
        say!("checkpoint: {}", p.display());
    }
    Ok(())
}
