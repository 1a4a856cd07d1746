//! What the control socket's commands do to the arbiter, with gunicorn
//! 25.1's response shapes (`gunicorn/ctl/handlers.py`). ferricorn adds
//! keys, never renames them. Actions go through the same paths as the
//! signals: `worker add/remove` change the target like `TTIN`/`TTOU`
//! (so `nworkers_changed` fires), `reload`/`reopen`/`shutdown` send the
//! master its own `HUP`/`USR1`/`TERM`/`INT`.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::{Arbiter, WorkerLauncher};
use crate::listeners::BoundListener;
use crate::scoreboard::{monotonic_ms, WorkerState};

/// A command's failure: `Invalid` becomes gunicorn's
/// `Invalid argument: …`, the rest `Command failed: …`.
pub(super) enum CommandError {
    Invalid(String),
}

impl CommandError {
    pub(super) fn message(&self) -> String {
        match self {
            CommandError::Invalid(reason) => format!("Invalid argument: {reason}"),
        }
    }
}

fn invalid(reason: impl Into<String>) -> CommandError {
    CommandError::Invalid(reason.into())
}

/// Python's `int()` on a word, with its error text.
fn int(word: &str) -> Result<i64, CommandError> {
    word.trim()
        .parse::<i64>()
        .map_err(|_| invalid(format!("invalid literal for int() with base 10: '{word}'")))
}

fn count(args: &[String]) -> Result<u32, CommandError> {
    let n = args.first().map(|w| int(w)).transpose()?.unwrap_or(1);
    Ok(u32::try_from(n.max(1)).unwrap_or(u32::MAX))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl<L: WorkerLauncher> Arbiter<L> {
    /// Runs one control command (already split into words).
    pub(super) fn control_command(&mut self, words: &[String]) -> Result<Value, CommandError> {
        let Some(first) = words.first() else {
            return Err(invalid("Empty command"));
        };
        let rest = &words[1..];
        match first.to_lowercase().as_str() {
            "show" => self.show(rest),
            "worker" => self.worker_command(rest),
            "dirty" => match rest.first().map(|w| w.to_lowercase()).as_deref() {
                Some("add" | "remove") => {
                    count(&rest[1..])?;
                    Ok(json!({"success": false, "error": "Dirty arbiter not running"}))
                }
                Some(action) => Err(invalid(format!("Unknown dirty action: {action}"))),
                None => Err(invalid("Missing dirty action (add|remove)")),
            },
            "reload" => {
                self.signal_self(Signal::SIGHUP);
                Ok(json!({"status": "reloading"}))
            }
            "reopen" => {
                self.signal_self(Signal::SIGUSR1);
                Ok(json!({"status": "reopening"}))
            }
            "shutdown" => {
                let mode = rest.first().map_or("graceful", String::as_str);
                let signal = if mode == "quick" {
                    Signal::SIGINT
                } else {
                    Signal::SIGTERM
                };
                self.signal_self(signal);
                Ok(json!({"status": "shutting_down", "mode": mode}))
            }
            "help" => Ok(help()),
            other => Err(invalid(format!("Unknown command: {other}"))),
        }
    }

    fn signal_self(&self, signal: Signal) {
        let _ = kill(nix::unistd::getpid(), signal);
    }

    fn show(&self, args: &[String]) -> Result<Value, CommandError> {
        let Some(target) = args.first() else {
            return Err(invalid(
                "Missing show target (all|workers|dirty|config|stats|listeners)",
            ));
        };
        match target.to_lowercase().as_str() {
            "workers" => {
                let workers = self.worker_list();
                Ok(json!({"count": workers.len(), "workers": workers}))
            }
            "all" => {
                let workers: Vec<Value> = self
                    .worker_list()
                    .into_iter()
                    .map(|mut w| {
                        if let Value::Object(map) = &mut w {
                            map.insert("type".into(), json!("web"));
                        }
                        w
                    })
                    .collect();
                Ok(json!({
                    "arbiter": {"pid": std::process::id(), "type": "arbiter", "role": "master"},
                    "web_worker_count": workers.len(),
                    "web_workers": workers,
                    "dirty_arbiter": null,
                    "dirty_workers": [],
                    "dirty_worker_count": 0,
                }))
            }
            "dirty" => Ok(json!({"enabled": false, "pid": null, "workers": [], "apps": []})),
            "config" => Ok(self.config_view()),
            "stats" => Ok(self.stats()),
            "listeners" => {
                let listeners: Vec<Value> = self
                    .listeners
                    .iter()
                    .map(|l| {
                        use std::os::fd::AsRawFd;
                        let kind = match l {
                            BoundListener::Tcp(t) => match t.local_addr() {
                                Ok(addr) if addr.is_ipv6() => "tcp6",
                                _ => "tcp",
                            },
                            BoundListener::Unix(..) => "unix",
                        };
                        json!({"address": l.to_string(), "fd": l.as_raw_fd(), "type": kind})
                    })
                    .collect();
                Ok(json!({"count": listeners.len(), "listeners": listeners}))
            }
            other => Err(invalid(format!("Unknown show target: {other}"))),
        }
    }

    fn worker_list(&self) -> Vec<Value> {
        let now = monotonic_ms();
        let mut workers: Vec<(u64, Value)> = self
            .workers
            .iter()
            .map(|(pid, record)| {
                let slot = self.scoreboard.slot(record.slot);
                let state = match slot.state() {
                    _ if record.stopping => "stopping",
                    WorkerState::Ready => "ready",
                    _ => "booting",
                };
                let oldest = slot.oldest_request(now);
                let value = json!({
                    "pid": pid.as_raw(),
                    "age": record.age,
                    "booted": slot.state() == WorkerState::Ready,
                    "aborted": record.aborted,
                    "last_heartbeat": round2(slot.silent_for_ms(now) as f64 / 1000.0),
                    "state": state,
                    "requests": slot.requests(),
                    "generation": record.generation,
                    "oldest_request_s": oldest.as_ref().map(|(ms, _)| round2(*ms as f64 / 1000.0)),
                    "oldest_request": oldest.map(|(_, line)| line),
                });
                (record.age, value)
            })
            .collect();
        workers.sort_by_key(|(age, _)| *age);
        workers.into_iter().map(|(_, w)| w).collect()
    }

    fn stats(&self) -> Value {
        let master = self.board.master_view();
        let killed: u64 = master.exits.iter().sum();
        json!({
            "uptime": round2(self.started.elapsed().as_secs_f64()),
            "pid": std::process::id(),
            "workers_current": self.workers.len(),
            "workers_target": self.num_workers,
            "workers_spawned": master.spawns,
            "workers_killed": killed,
            "reloads": master.reloads,
            "dirty_arbiter_pid": null,
            "requests_total": self.board.requests_total(),
            "generation": self.generation,
        })
    }

    fn config_view(&self) -> Value {
        let s = &self.settings;
        json!({
            "bind": s.bind.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "workers": self.num_workers,
            "worker_class": s.worker_class.as_str(),
            "threads": s.threads,
            "timeout": s.timeout,
            "graceful_timeout": s.graceful_timeout,
            "keepalive": s.keepalive,
            "max_requests": s.max_requests,
            "max_requests_jitter": s.max_requests_jitter,
            "worker_connections": s.worker_connections,
            "preload_app": s.preload_app,
            "daemon": s.daemon,
            "pidfile": s.pidfile.as_ref().map(|p| p.display().to_string()),
            "proc_name": s.proc_name,
            "reload": s.reload,
            "dirty_workers": 0,
            "dirty_apps": [],
            "dirty_timeout": 300,
            "control_socket": self.control.as_ref().map(|c| c.path().display().to_string()),
            "control_socket_disable": s.ops.control_socket_disable,
            "request_timeout": s.request_timeout,
            "max_worker_memory": s.max_worker_memory,
            "metrics_bind": s.ops.metrics_bind.as_ref().map(ToString::to_string),
            "shutdown_delay": s.ops.shutdown_delay,
        })
    }

    fn worker_command(&mut self, args: &[String]) -> Result<Value, CommandError> {
        let Some(action) = args.first() else {
            return Err(invalid("Missing worker action (add|remove|kill)"));
        };
        let rest = &args[1..];
        match action.to_lowercase().as_str() {
            "add" => {
                let n = count(rest)?;
                let previous = self.num_workers;
                self.set_num_workers(previous.saturating_add(n));
                Ok(json!({"added": n, "previous": previous, "total": self.num_workers}))
            }
            "remove" => {
                let n = count(rest)?;
                let previous = self.num_workers;
                let total = previous.saturating_sub(n).max(1);
                self.set_num_workers(total);
                Ok(json!({"removed": previous - total, "previous": previous, "total": total}))
            }
            "kill" => {
                let Some(word) = rest.first() else {
                    return Err(invalid("Missing PID for worker kill"));
                };
                let pid = int(word)?;
                let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
                let Some(record) = self.workers.get_mut(&pid) else {
                    return Ok(
                        json!({"success": false, "error": format!("Worker {pid} not found")}),
                    );
                };
                match kill(pid, Signal::SIGTERM) {
                    Ok(()) => {
                        record.killed = true;
                        Ok(json!({"success": true, "killed": pid.as_raw()}))
                    }
                    Err(error) => Ok(json!({"success": false, "error": error.desc()})),
                }
            }
            other => Err(invalid(format!("Unknown worker action: {other}"))),
        }
    }
}

fn help() -> Value {
    json!({"commands": {
        "show all": "Show all processes (arbiter, web workers, dirty workers)",
        "show workers": "List HTTP workers with their status",
        "show dirty": "List dirty workers and apps",
        "show config": "Show current effective configuration",
        "show stats": "Show server statistics",
        "show listeners": "Show bound sockets",
        "worker add [N]": "Spawn N workers (default 1)",
        "worker remove [N]": "Remove N workers (default 1)",
        "worker kill <PID>": "Gracefully terminate specific worker",
        "dirty add [N]": "Spawn N dirty workers (default 1)",
        "dirty remove [N]": "Remove N dirty workers (default 1)",
        "reload": "Graceful reload (HUP)",
        "reopen": "Reopen log files (USR1)",
        "shutdown [graceful|quick]": "Shutdown server (TERM/INT)",
        "help": "Show this help message",
    }})
}
