//! The `ferricorn` command: read the configuration, bind, and hand over to
//! the master. Everything else lives in the library crates.
//!
//! It runs inside the `python` process of the `ferricorn` console script
//! (see `lib.rs`), which passes the command line in.

use crate::{ctl, launcher, logging, master_python, process, proctitle};

use std::collections::BTreeMap;
use std::ffi::OsString;

use ferricorn_config::Settings;
use ferricorn_master::upgrade::{inherited_listeners, Upgrade};
use ferricorn_master::{bind_all, Arbiter, ListenOptions, Reloader};

/// Runs the command with `args` (argv\[0\] first) and returns its exit
/// code; `exec_args` is the command line that starts this process again
/// (for `USR2`).
pub fn run(args: Vec<OsString>, exec_args: Vec<OsString>) -> i32 {
    // Kept for HUP, which re-reads the configuration as it was first read:
    // the same command line, relative paths against the same directory.
    if let Some(code) = ctl::run_if_requested(&args) {
        return code;
    }
    let start_dir = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/"));
    let loaded = match ferricorn_config::load_from_process(args.clone()) {
        Ok(loaded) => loaded,
        Err(error) => {
            if error.is_info() {
                println!("{error}");
            } else {
                eprintln!("{error}");
            }
            return error.exit_code();
        }
    };
    if loaded.settings.print_config {
        print!("{}", loaded.print_config());
        return 0;
    }
    let settings = loaded.settings;
    if let Err(error) = logging::init(
        &settings.errorlog,
        settings.accesslog.as_deref(),
        settings.loglevel,
        settings.ops.log_format,
        settings.ops.syslog.enabled.then(|| logging::SyslogSetup {
            settings: &settings.ops.syslog,
            name: proctitle::name(&settings),
        }),
    ) {
        logging::init_fallback();
        tracing::error!("cannot open the log files: {error}");
        return 1;
    }
    if let Err(error) = prepare_process(&settings) {
        tracing::error!("{error}");
        return 1;
    }
    if settings.check_config {
        return check_config(&settings);
    }
    if settings.reload && settings.preload_app {
        eprintln!(
            "error: --reload and --preload cannot be combined (a preloaded app cannot be reloaded)"
        );
        return 2;
    }
    if settings.wsgi_app.is_none() {
        eprintln!("error: no application module specified (APP_MODULE or wsgi_app)");
        return 2;
    }

    if let Err(error) = ferricorn_worker::tls::server_config(&settings) {
        eprintln!("{error}");
        return 2;
    }

    let owner = match process::Owner::resolve(&settings) {
        Ok(owner) => owner,
        Err(error) => {
            tracing::error!("{error}");
            return 1;
        }
    };
    if settings.daemon {
        if let Err(error) = process::daemonize(settings.enable_stdio_inheritance) {
            tracing::error!("{error}");
            return 1;
        }
    }
    // After daemonizing (which points stdio at /dev/null), as gunicorn's
    // logger setup comes after its daemonize.
    if settings.capture_output && settings.errorlog != "-" {
        if let Err(error) = logging::capture_output(&settings.errorlog) {
            tracing::error!(
                "cannot capture stdout/stderr into {}: {error}",
                settings.errorlog
            );
            return 1;
        }
    }
    process::apply_umask(&settings);
    proctitle::set(&format!(
        "ferricorn: master [{}]",
        proctitle::name(&settings)
    ));

    // After daemonizing, whose fork the logging thread would not survive;
    // before the app is imported, as gunicorn sets its logger up first.
    if let Err(error) = logging::python::configure(&settings) {
        eprintln!("{error}");
        return 2;
    }
    let python = match master_python::MasterPython::start(&settings) {
        Ok(python) => python,
        Err(error) => {
            tracing::error!("{}", error.message);
            return error.code;
        }
    };

    // Sockets handed over by an upgrading master or by systemd come first.
    let listen = ListenOptions {
        backlog: settings.backlog,
        reuse_port: settings.reuse_port,
    };
    let listeners = inherited_listeners().unwrap_or_else(|| bind_all(&settings.bind, listen));
    let listeners = match listeners {
        Ok(listeners) => listeners,
        Err(error) => {
            tracing::error!("{error}");
            return 1;
        }
    };
    let code = match Arbiter::new(settings, listeners, launcher::Launcher::new(python, owner)) {
        Ok(arbiter) => arbiter
            .with_upgrade(Upgrade::new(&exec_args, &start_dir))
            .with_reloader(reloader(args, start_dir))
            .with_log_reopener(Box::new(logging::request_reopen))
            .run(),
        Err(error) => {
            tracing::error!("{error}");
            1
        }
    };
    // "Shutting down: Master" reaches the Python handlers too.
    logging::python::flush();
    code
}

/// `HUP`: the configuration file and environment read again with the
/// original command line, then applied to this process like at start.
fn reloader(args: Vec<std::ffi::OsString>, start_dir: std::path::PathBuf) -> Reloader {
    Box::new(move || {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let loaded = ferricorn_config::load(args.clone(), &env, &start_dir)
            .map_err(|error| error.to_string())?;
        prepare_process(&loaded.settings)?;
        // As gunicorn's Logger.setup on reload; workers forked from here on
        // inherit the new configuration.
        logging::python::configure(&loaded.settings).map_err(|error| error.to_string())?;
        Ok(loaded.settings)
    })
}

/// Applies `--chdir` and `-e/--env` to this process; workers inherit them.
fn prepare_process(settings: &Settings) -> Result<(), String> {
    std::env::set_current_dir(&settings.chdir).map_err(|e| {
        format!(
            "cannot change directory to {}: {e}",
            settings.chdir.display()
        )
    })?;
    for (key, value) in &settings.raw_env {
        ferricorn_python::interpreter::set_env(key, value).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `--check-config`: import the app in this process and report.
fn check_config(settings: &Settings) -> i32 {
    use ferricorn_python::interpreter::{self, InterpreterOptions};
    let Some(spec) = settings.wsgi_app.as_deref() else {
        eprintln!("error: no application module specified (APP_MODULE or wsgi_app)");
        return 1;
    };
    let options = InterpreterOptions {
        chdir: settings.chdir.clone(),
        pythonpath: settings.pythonpath.clone(),
    };
    if let Err(error) = interpreter::start(&options) {
        eprintln!("{error}");
        return 1;
    }
    if let Err(error) = crate::logging::python::configure(settings) {
        eprintln!("{error}");
        return 1;
    }
    let loaded = pyo3::Python::attach(|py| ferricorn_python::app::load(py, spec).map(drop));
    match loaded {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("Failed to load application {spec}:\n{error}");
            1
        }
    }
}
