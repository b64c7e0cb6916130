//! The command line of `pushcore serve` with its config file: parsing with the precedence
//! flags > environment > file > defaults, one-line errors that name what to fix (the flag, the
//! environment variable, or the file and key), and the effective configuration for the start
//! line with secrets redacted.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue};
use clap::{ArgAction, ArgMatches, Args as _, Command, FromArgMatches as _};

use super::Config;

/// A command line that cannot be used.
#[derive(Debug)]
pub enum CliError {
    /// A bad flag or value (or `--help`/`--version`, which clap reports as errors).
    Clap(clap::Error),
    /// A bad config file: the message names the file and the key.
    File(String),
}

/// The `serve` command alone (what `pushcore serve` parses).
pub fn serve_command() -> Command {
    Config::augment_args(Command::new("serve"))
}

/// Parse `argv` (starting with the program name) with `cmd`; when the matched `serve`
/// command names a `--config` file, its values are added for every option that neither a flag
/// nor an environment variable set. `cmd` is either the `serve` command itself or a command
/// with a `serve` subcommand.
pub fn parse(cmd: &Command, argv: &[OsString]) -> Result<ArgMatches, CliError> {
    let matches = cmd
        .clone()
        .try_get_matches_from(argv)
        .map_err(CliError::Clap)?;
    let extra = {
        let Some((serve, serve_matches)) = serve_part(cmd, &matches) else {
            return Ok(matches);
        };
        let Some(path) = serve_matches.get_one::<PathBuf>("config_file") else {
            return Ok(matches);
        };
        super::file::extra_args(serve, serve_matches, path).map_err(CliError::File)?
    };
    if extra.is_empty() {
        return Ok(matches);
    }
    let mut argv = argv.to_vec();
    argv.extend(extra);
    cmd.clone()
        .try_get_matches_from(argv)
        .map_err(CliError::Clap)
}

/// `pushcore serve ARGS` parsed into a [`Config`] (`argv` starts with the command name).
pub fn parse_serve(argv: &[OsString]) -> Result<Config, CliError> {
    let matches = parse(&serve_command(), argv)?;
    Config::from_arg_matches(&matches).map_err(CliError::Clap)
}

/// The `serve` command and its matches inside `matches` of `cmd`.
pub fn serve_part<'a>(
    cmd: &'a Command,
    matches: &'a ArgMatches,
) -> Option<(&'a Command, &'a ArgMatches)> {
    if cmd.get_name() == "serve" {
        return Some((cmd, matches));
    }
    match matches.subcommand() {
        Some(("serve", sub)) => Some((cmd.find_subcommand("serve")?, sub)),
        _ => None,
    }
}

/// One line for a clap error, without the `error: ` prefix. When the bad value came from an
/// environment variable (the flag is not on the command line), the line starts with the
/// variable's name.
pub fn error_line(cmd: &Command, err: &clap::Error, argv: &[OsString]) -> String {
    let rendered = err.render().to_string();
    let line = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_owned();
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return line;
    };
    let Some(long) = shown
        .strip_prefix("--")
        .and_then(|s| s.split([' ', '=']).next())
    else {
        return line;
    };
    let serve = cmd.find_subcommand("serve").unwrap_or(cmd);
    let Some(env) = serve
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
    else {
        return line;
    };
    let flag = format!("--{long}");
    let on_command_line = argv.iter().any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    if on_command_line || std::env::var_os(env).is_none() {
        return line;
    }
    format!("environment variable {}: {line}", env.to_string_lossy())
}

/// The example every address error shows.
pub const LISTEN_EXAMPLES: &str = "127.0.0.1:8080, 0.0.0.0:8080, [::]:8080 or localhost:8080";

/// `--listen` and `--admin-listen`: `IP:PORT` (IPv6 in brackets) or `localhost:PORT`
/// (127.0.0.1).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let expected = || format!("expected IP:PORT, like {LISTEN_EXAMPLES}");
    let (host, port) = s.rsplit_once(':').ok_or_else(expected)?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{:?} is not a port (0-65535); {}", port, expected()))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err(format!(
            "put an IPv6 address in brackets, like [{host}]:{port}"
        ));
    }
    // Host names other than localhost are refused: an address to bind is not looked up.
    Err(expected())
}

/// Option names whose values are secrets: never shown.
fn is_secret(long: &str) -> bool {
    ["secret", "password", "token"]
        .iter()
        .any(|word| long.contains(word))
}

/// A URL's password (`redis://user:PASSWORD@host`) replaced by `[redacted]`.
pub fn redact_url(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return value.to_owned();
    };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.find(':') else {
        return value.to_owned();
    };
    format!(
        "{}{}:[redacted]{}",
        &value[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// The effective configuration of a parsed `serve` command, as `key=value` pairs separated by
/// spaces (keys are the long flags; lists joined by commas; unset options left out; secrets
/// and URL passwords shown as `[redacted]`).
pub fn effective(serve: &Command, matches: &ArgMatches) -> String {
    let mut out = Vec::new();
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        ) {
            continue;
        }
        let Some(raw) = matches.get_raw(arg.get_id().as_str()) else {
            continue;
        };
        let values: Vec<String> = raw
            .map(OsStr::to_string_lossy)
            .map(|v| v.into_owned())
            .collect();
        if values.is_empty() {
            continue;
        }
        let shown = if is_secret(long) || arg.is_hide_env_values_set() {
            "[redacted]".to_owned()
        } else {
            values
                .iter()
                .map(|v| redact_url(v))
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push(format!("{long}={shown}"));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let ok = |s: &str| {
            parse_listen(s)
                .unwrap_or_else(|e| panic!("{s}: {e}"))
                .to_string()
        };
        assert_eq!(ok("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(ok("0.0.0.0:80"), "0.0.0.0:80");
        assert_eq!(ok("[::]:8080"), "[::]:8080");
        assert_eq!(ok("[::1]:0"), "[::1]:0");
        assert_eq!(ok("localhost:8080"), "127.0.0.1:8080");
        assert_eq!(ok("LOCALHOST:9"), "127.0.0.1:9");
        for bad in [
            "",
            "nope",
            "8080",
            ":8080",
            "localhost",
            "localhost:",
            "localhost:99999",
            "127.0.0.1:-1",
            "::1:8080",
            "[::1]",
            "127.0.0.1:80:80",
            "256.0.0.1:80",
        ] {
            let err = parse_listen(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(
                err.contains("127.0.0.1:8080") || err.contains("brackets"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn url_passwords_are_redacted() {
        let rows = [
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://:[redacted]@127.0.0.1:6379/0",
            ),
            ("redis://user:p%40ss@host", "redis://user:[redacted]@host"),
            ("rediss://user@host:6380", "rediss://user@host:6380"),
            ("redis://host:6379/0?x=a@b", "redis://host:6379/0?x=a@b"),
            ("not a url", "not a url"),
            ("redis://a:b:c@host", "redis://a:[redacted]@host"),
        ];
        for (input, want) in rows {
            assert_eq!(redact_url(input), want, "{input}");
        }
    }

    #[test]
    fn secrets_are_recognised_by_name() {
        assert!(is_secret("jwt-secret"));
        assert!(is_secret("redis-password"));
        assert!(!is_secret("jwt-public-key"));
        assert!(!is_secret("max-connections"));
    }
}
