//! The `kreflex` command: parse the command line, start logging, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kreflex::cli::Cli::parse();
    kreflex::telemetry::init(cli.global.log_format, &cli.global.log_level);
    match kreflex::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
