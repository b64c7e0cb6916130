//! The `--config` file: TOML whose keys are the long flags of `pushcore serve`
//! (`max-connections = 5000`, `trusted-proxy = ["10.0.0.0/8"]`, `no-pin = true`).
//!
//! The file does not have its own parser of values: each value is checked by the flag's own
//! value parser, then handed to the command line parser as that flag, but only for options
//! that neither a flag nor an environment variable set. So a key means exactly what its flag
//! means, and precedence is flags > environment > file > defaults.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// Options whose default depends on the machine: printed commented out by [`print_defaults`],
/// so a file copied elsewhere does not pin this machine's value.
const MACHINE_DEFAULTS: &[&str] = &["max-connections"];

fn is_meta(arg: &Arg) -> bool {
    matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    ) || arg.get_long() == Some("config")
}

/// The `serve` option a file key names.
fn option<'a>(serve: &'a Command, key: &str) -> Option<&'a Arg> {
    serve
        .get_arguments()
        .find(|a| a.get_long() == Some(key) && !is_meta(a))
}

/// The command-line arguments (`--key=value`, `--flag`) that the file at `path` adds to a
/// `serve` command line already parsed into `matches`. Every key and value of the file is
/// checked, including those a flag or variable overrides. Errors name the file and the key.
pub fn extra_args(
    serve: &Command,
    matches: &ArgMatches,
    path: &Path,
) -> Result<Vec<OsString>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {shown}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let message = e.message().to_owned();
        match e.span().map(|span| line_of(&text, span.start)) {
            Some(line) => format!("{shown}:{line}: {message}"),
            None => format!("{shown}: {message}"),
        }
    })?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let at = |what: String| format!("{shown}: key `{key}`: {what}");
        if key == "config" {
            return Err(at("a config file cannot name another one".into()));
        }
        let arg = option(serve, key).ok_or_else(|| {
            format!(
                "{shown}: unknown key `{key}` (the keys are the long flags of `pushcore serve`; \
                 `pushcore config --print-defaults` lists them)"
            )
        })?;
        let set_elsewhere = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let flag = format!("--{key}");
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                let toml::Value::Boolean(on) = value else {
                    return Err(at(format!("expected true or false, not {}", kind(value))));
                };
                if *on && !set_elsewhere {
                    out.push(OsString::from(flag));
                }
            }
            ArgAction::Append => {
                let items: Vec<&toml::Value> = match value {
                    toml::Value::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                for item in items {
                    let text = scalar(item).map_err(at)?;
                    check(arg, &text).map_err(at)?;
                    if !set_elsewhere {
                        out.push(OsString::from(format!("{flag}={text}")));
                    }
                }
            }
            _ => {
                if let toml::Value::Array(_) = value {
                    return Err(at("takes one value, not a list".into()));
                }
                let text = scalar(value).map_err(at)?;
                check(arg, &text).map_err(at)?;
                if !set_elsewhere {
                    out.push(OsString::from(format!("{flag}={text}")));
                }
            }
        }
    }
    Ok(out)
}

/// A scalar TOML value as the text its flag would take.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string or an integer, not {}",
            kind(other)
        )),
    }
}

fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// `text` through `arg`'s own value parser (a command holding only that option parses it);
/// the error is clap's reason for refusing it.
fn check(arg: &Arg, text: &str) -> Result<(), String> {
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let probe = Command::new("pushcore")
        .no_binary_name(true)
        .arg(arg.clone().required(false));
    match probe.try_get_matches_from([format!("--{long}={text}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid value")
                .trim_start_matches("error: ");
            Err(line.to_owned())
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A complete config file: every option of `serve` with its help as a comment and its default
/// as the value. Options without a default, and those whose default depends on the machine,
/// are commented out. Loading the file gives the defaults.
pub fn print_defaults(serve: &Command) -> String {
    let mut out = String::new();
    out.push_str(
        "# pushcore configuration: `pushcore serve --config FILE`.\n\
         # Keys are the long flags of `pushcore serve`; command-line flags and PUSHCORE_*\n\
         # environment variables override this file. Every value below is the default;\n\
         # commented-out keys have no fixed default.\n",
    );
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if is_meta(arg) {
            continue;
        }
        out.push('\n');
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        for line in wrap(&help, 96) {
            let _ = writeln!(out, "# {line}");
        }
        if let Some(env) = arg.get_env() {
            let _ = writeln!(out, "# (environment: {})", env.to_string_lossy());
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        match arg.get_action() {
            ArgAction::SetTrue => {
                let _ = writeln!(out, "{long} = false");
            }
            ArgAction::Append => {
                let items: Vec<String> = defaults.iter().map(|d| toml_scalar(d)).collect();
                let _ = writeln!(out, "{long} = [{}]", items.join(", "));
            }
            _ => match defaults.first() {
                Some(d) if MACHINE_DEFAULTS.contains(&long) => {
                    let _ = writeln!(
                        out,
                        "# default on this machine (from its open-file limit):\n# {long} = {}",
                        toml_scalar(d)
                    );
                }
                Some(d) => {
                    let _ = writeln!(out, "{long} = {}", toml_scalar(d));
                }
                None => {
                    let name = arg
                        .get_value_names()
                        .and_then(|n| n.first())
                        .map_or_else(|| "VALUE".to_owned(), |n| n.to_string());
                    let _ = writeln!(out, "# {long} = <{name}>");
                }
            },
        }
    }
    out
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A default as a TOML value: an integer bare, anything else a quoted string.
fn toml_scalar(text: &str) -> String {
    match text.parse::<i64>() {
        Ok(n) => n.to_string(),
        Err(_) => toml::Value::String(text.to_owned()).to_string(),
    }
}
