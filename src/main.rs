//! `pushcore`: the command line. `serve` runs the server, `bench` the load generator, `config`
//! prints a config file.

use std::ffi::OsString;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use mimalloc::MiMalloc;
use pushcore::config::{cli, file};

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
    /// Config files for `pushcore serve --config FILE`.
    Config(ConfigArgs),
}

#[derive(Args, Debug)]
struct ConfigArgs {
    /// Print a complete config file holding every option's default, with comments.
    #[arg(long = "print-defaults")]
    print_defaults: bool,
}

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cmd = Cli::command();
    let parsed = cli::parse(&cmd, &argv).and_then(|matches| {
        Cli::from_arg_matches(&matches)
            .map(|cli| (cli, matches))
            .map_err(cli::CliError::Clap)
    });
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(cli::CliError::File(message)) => {
            eprintln!("pushcore: {message}");
            std::process::exit(2);
        }
        Err(cli::CliError::Clap(e)) => {
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
            // One line that names the flag (or the environment variable), exit code 2.
            eprintln!("pushcore: {}", cli::error_line(&cmd, &e, &argv));
            std::process::exit(2);
        }
    };
    let code = match cli.command {
        Command::Serve(config) => {
            let effective = cli::serve_part(&cmd, &matches)
                .map(|(serve, m)| cli::effective(serve, m))
                .unwrap_or_default();
            pushcore::server::serve(config, &effective)
        }
        Command::Bench(args) => pushcore::bench::run(args),
        Command::Config(args) => {
            if args.print_defaults {
                print!("{}", file::print_defaults(&cli::serve_command()));
                0
            } else {
                eprintln!("pushcore: `pushcore config` needs --print-defaults (print a complete config file)");
                2
            }
        }
    };
    std::process::exit(code);
}
