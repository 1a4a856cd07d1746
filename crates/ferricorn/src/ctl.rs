//! `ferricorn ctl`: a client for the control socket, with `gunicornc`'s
//! flags (`-s/--socket`, `-c/--command`, `-j/--json`, `-v/--version`).
//! Without `-c`, commands are read one per line from standard input.

use std::io::BufRead;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde_json::Value;

const USAGE: &str = "usage: ferricorn ctl [-s SOCKET] [-c COMMAND] [-j] [-v]";

/// Runs `ferricorn ctl ARGS…` when `args[1]` is `ctl`; returns the exit code.
pub fn run_if_requested(args: &[std::ffi::OsString]) -> Option<i32> {
    if args.get(1).and_then(|a| a.to_str()) != Some("ctl") {
        return None;
    }
    let words: Vec<String> = args[2..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Some(run(&words))
}

fn run(words: &[String]) -> i32 {
    let mut socket: Option<PathBuf> = None;
    let mut command: Option<String> = None;
    let mut json = false;
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        match word.as_str() {
            "-s" | "--socket" => socket = iter.next().map(PathBuf::from),
            "-c" | "--command" => command = iter.next().cloned(),
            "-j" | "--json" => json = true,
            "-v" | "--version" => {
                println!("ferricorn ctl {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            other => {
                if let Some(path) = other.strip_prefix("--socket=") {
                    socket = Some(PathBuf::from(path));
                } else if let Some(cmd) = other.strip_prefix("--command=") {
                    command = Some(cmd.to_string());
                } else {
                    eprintln!("{USAGE}\nerror: unrecognized argument: {other}");
                    return 2;
                }
            }
        }
    }
    let Some(path) = socket.or_else(ferricorn_config::default_control_socket) else {
        eprintln!("Error: no control socket path (set -s)");
        return 1;
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(error) => {
            eprintln!("Error: cannot connect to {}: {error}", path.display());
            return 1;
        }
    };
    if let Some(command) = command {
        return execute(&mut stream, 1, &command, json);
    }
    let mut code = 0;
    for (id, line) in std::io::stdin().lock().lines().enumerate() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if matches!(line, "quit" | "exit") {
            break;
        }
        code = execute(&mut stream, id as u64 + 1, line, json);
    }
    code
}

fn execute(stream: &mut UnixStream, id: u64, command: &str, json: bool) -> i32 {
    let reply = match ferricorn_master::control::call(stream, id, command) {
        Ok(reply) => reply,
        Err(error) => {
            eprintln!("Error: {error}");
            return 1;
        }
    };
    if reply.get("status").and_then(Value::as_str) != Some("ok") {
        let error = reply
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        eprintln!("Error: {error}");
        return 1;
    }
    let data = reply.get("data").cloned().unwrap_or(Value::Null);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&data).unwrap_or_default()
        );
    } else {
        print_text(&data);
    }
    0
}

fn print_text(data: &Value) {
    if let Some(workers) = data.get("workers").and_then(Value::as_array) {
        println!("PID      AGE   BOOTED  LAST_BEAT STATE     REQUESTS");
        for w in workers {
            let field = |key: &str| w.get(key).map(|v| v.to_string()).unwrap_or_default();
            println!(
                "{:<8} {:<5} {:<7} {:<9} {:<9} {}",
                field("pid"),
                field("age"),
                field("booted"),
                field("last_heartbeat"),
                w.get("state").and_then(Value::as_str).unwrap_or(""),
                field("requests")
            );
        }
        return;
    }
    match data {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(s) => println!("{key}: {s}"),
                    other => println!("{key}: {other}"),
                }
            }
        }
        other => println!("{other}"),
    }
}
