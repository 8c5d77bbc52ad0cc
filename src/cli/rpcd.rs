//! OpenWrt's ubus, through rpcd's exec plugins: the plugin `/usr/libexec/rpcd/fwguard` is
//! `exec fwguard rpcd "$@"`. rpcd runs it with `list` once, to learn each method and its
//! arguments (their types from the sample values), and with `call METHOD` for each call,
//! the arguments as one JSON object on stdin; the answer is one JSON object on stdout
//! (rpcd ignores the exit status).
//!
//! Each method runs the fwguard command of the same name as a child process of this same
//! binary, with the same configuration: the same checks, lock and state, and nothing here
//! that the command line does not do. What a read-only method prints is its `--json`
//! output; the others answer `{"ok", "code", "message"}` with the command's stable exit
//! code and what it printed. Arguments are checked before anything runs: a bad one is
//! answered `{"error": ...}` and changes nothing.

use crate::error::{EXIT_INTERNAL, EXIT_OK, EXIT_USAGE};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// The type of an argument, as rpcd reads it from the sample value in `list`.
#[derive(Clone, Copy)]
enum Arg {
    Text,
    Flag,
}

struct Method {
    name: &'static str,
    /// Arguments: name, type, whether it must be given.
    args: &'static [(&'static str, Arg, bool)],
    /// Its answer is the command's `--json` output (a read-only method).
    json: bool,
}

const METHODS: &[Method] = &[
    Method {
        name: "status",
        args: &[],
        json: true,
    },
    Method {
        name: "history",
        args: &[],
        json: true,
    },
    Method {
        name: "check",
        args: &[],
        json: false,
    },
    Method {
        name: "pin",
        args: &[
            ("version", Arg::Text, true),
            ("force_insecure", Arg::Flag, false),
        ],
        json: false,
    },
    Method {
        name: "approve",
        args: &[("version", Arg::Text, true)],
        json: false,
    },
    Method {
        name: "deny",
        args: &[("version", Arg::Text, true)],
        json: false,
    },
    Method {
        name: "unpin",
        args: &[],
        json: false,
    },
    Method {
        name: "hold",
        args: &[],
        json: false,
    },
    Method {
        name: "release",
        args: &[],
        json: false,
    },
    Method {
        name: "rollback",
        args: &[],
        json: false,
    },
    Method {
        name: "policy",
        args: &[("mode", Arg::Text, true)],
        json: false,
    },
];

/// At most this much JSON is read from stdin (rpcd sends a few arguments).
const MAX_INPUT: u64 = 64 * 1024;

/// `fwguard rpcd list` or `fwguard rpcd call METHOD`; prints one JSON object. The commands
/// it runs get the same `--config`.
pub fn run(config: Option<&Path>, action: &str, method: Option<&str>) -> i32 {
    let (answer, code) = match (action, method) {
        ("list", None) => (list(), EXIT_OK),
        ("call", Some(m)) => {
            let mut input = Vec::new();
            let read = std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut input);
            match read {
                Err(e) => refused(format!("cannot read the arguments on stdin: {e}")),
                Ok(_) if input.len() as u64 > MAX_INPUT => {
                    refused(format!("the arguments are over {MAX_INPUT} bytes"))
                }
                Ok(_) => match std::str::from_utf8(&input) {
                    Ok(text) => call(config, m, text),
                    Err(_) => refused("the arguments are not UTF-8".into()),
                },
            }
        }
        _ => refused("usage: fwguard rpcd list | fwguard rpcd call METHOD".into()),
    };
    println!("{answer}");
    code
}

fn refused(error: String) -> (Value, i32) {
    (json!({ "error": error }), EXIT_USAGE)
}

/// Every method, each with its arguments' sample values.
fn list() -> Value {
    let mut methods = Map::new();
    for m in METHODS {
        let args = m
            .args
            .iter()
            .map(|&(name, arg, _)| {
                let sample = match arg {
                    Arg::Text => json!("str"),
                    Arg::Flag => json!(false),
                };
                (name.to_string(), sample)
            })
            .collect::<Map<_, _>>();
        methods.insert(m.name.into(), Value::Object(args));
    }
    Value::Object(methods)
}

/// The command line of a call, or what is wrong with its arguments.
fn argv(m: &Method, input: &str) -> Result<Vec<String>, String> {
    let args = match serde_json::from_slice::<Value>(input.trim().as_bytes()) {
        _ if input.trim().is_empty() => Map::new(),
        Ok(Value::Object(args)) => args,
        Ok(_) => return Err("the arguments must be a JSON object".into()),
        Err(e) => return Err(format!("the arguments are not JSON: {e}")),
    };
    if let Some(k) = args.keys().find(|k| !m.args.iter().any(|a| a.0 == *k)) {
        let known: Vec<_> = m.args.iter().map(|a| a.0).collect();
        return Err(format!(
            "{}: unknown argument {k:?} (arguments: {})",
            m.name,
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    }
    let mut argv = vec![m.name.to_string()];
    for &(name, arg, required) in m.args {
        match (args.get(name), arg) {
            (None, _) if required => return Err(format!("{}: {name} is missing", m.name)),
            (None, _) => {}
            (Some(Value::String(s)), Arg::Text) if s.starts_with('-') || s.contains('\0') => {
                return Err(format!(
                    "{}: {name} {s:?} must not start with '-' or hold a NUL",
                    m.name
                ))
            }
            (Some(Value::String(s)), Arg::Text) if !s.is_empty() => argv.push(s.clone()),
            (Some(Value::Bool(b)), Arg::Flag) => {
                if *b {
                    argv.push(format!("--{}", name.replace('_', "-")));
                }
            }
            (Some(v), Arg::Text) => {
                return Err(format!(
                    "{}: {name} must be a non-empty string, not {v}",
                    m.name
                ))
            }
            (Some(v), Arg::Flag) => {
                return Err(format!("{}: {name} must be true or false, not {v}", m.name))
            }
        }
    }
    if m.json {
        argv.push("--json".into());
    }
    Ok(argv)
}

fn call(config: Option<&Path>, method: &str, input: &str) -> (Value, i32) {
    let Some(m) = METHODS.iter().find(|m| m.name == method) else {
        let names: Vec<_> = METHODS.iter().map(|m| m.name).collect();
        return refused(format!(
            "unknown method {method:?} (methods: {})",
            names.join(", ")
        ));
    };
    let argv = match argv(m, input) {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    let mut cmd = match std::env::current_exe() {
        Ok(exe) => Command::new(exe),
        Err(e) => {
            return (
                json!({ "error": format!("cannot run fwguard: {e}") }),
                EXIT_INTERNAL,
            )
        }
    };
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    // What it prints, without its log lines (the daemon's log is where those belong).
    let out = cmd
        .args(&argv)
        .env("FWGUARD_LOG", "off")
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return (
                json!({ "error": format!("cannot run fwguard: {e}") }),
                EXIT_INTERNAL,
            )
        }
    };
    let code = out.status.code().unwrap_or(EXIT_INTERNAL);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if m.json && code == EXIT_OK {
        // The command's own JSON, as an object (rpcd takes nothing else).
        return match serde_json::from_slice::<Value>(stdout.as_bytes()) {
            Ok(Value::Object(o)) => (Value::Object(o), code),
            Ok(other) => (json!({ m.name: other }), code),
            Err(e) => (
                json!({ "error": format!("fwguard {method}: {e}") }),
                EXIT_INTERNAL,
            ),
        };
    }
    let message = [stdout.trim(), stderr.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    (
        json!({ "ok": code == EXIT_OK, "code": code, "message": message }),
        code,
    )
}
