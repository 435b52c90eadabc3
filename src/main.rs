//! The `kreflex` command: parse the command line, start logging, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kreflex::cli::Cli::parse();
    if cli.command.is_output_only() {
        // Rust ignores SIGPIPE, so output into a closed pipe (`kreflex inspect x | head -1`)
        // fails the next write and `println!` panics. A command whose job is its output ends
        // quietly instead, as Unix tools do. Servers keep ignoring it: a peer closing a
        // socket must not kill them.
        // SAFETY: restoring the default disposition of a signal, before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    kreflex::telemetry::init(cli.global.log_format, &cli.global.log_level);
    match kreflex::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
