//! `pushcore`: the command line. `serve` runs the server.

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "pushcore",
    version,
    about = "A thread-per-core Server-Sent Events push server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (in-memory history, no auth) until SIGTERM/SIGINT.
    Serve(pushcore::config::Config),
    /// Load generator: idle, fanout, replay and churn scenarios against pushcore or another SSE server.
    Bench(pushcore::bench::BenchArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            // One line that names the flag, exit code 2.
            let rendered = e.render().to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("error: invalid arguments");
            eprintln!("pushcore: {}", line.trim_start_matches("error: "));
            std::process::exit(2);
        }
    };
    let code = match cli.command {
        Command::Serve(config) => pushcore::server::serve(config),
        Command::Bench(args) => pushcore::bench::run(args),
    };
    std::process::exit(code);
}
