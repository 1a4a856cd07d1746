//! The `ferricorn` command: read the configuration, bind, and hand over to
//! the master. Everything else lives in the library crates.

mod launcher;
mod logging;

use std::process::ExitCode;
use std::sync::Arc;

use ferricorn_config::Settings;
use ferricorn_master::{bind_all, Arbiter};

fn main() -> ExitCode {
    ExitCode::from(u8::try_from(run()).unwrap_or(1))
}

fn run() -> i32 {
    let loaded = match ferricorn_config::load_from_process() {
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
    if settings.wsgi_app.is_none() {
        eprintln!("error: no application module specified (APP_MODULE or wsgi_app)");
        return 2;
    }

    let listeners = match bind_all(&settings.bind, settings.backlog) {
        Ok(listeners) => listeners,
        Err(error) => {
            tracing::error!("{error}");
            return 1;
        }
    };
    let settings = Arc::new(settings);
    let launcher = launcher::Launcher {
        settings: Arc::clone(&settings),
    };
    match Arbiter::new((*settings).clone(), listeners, launcher) {
        Ok(arbiter) => arbiter.run(),
        Err(error) => {
            tracing::error!("{error}");
            1
        }
    }
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
        // The master is still single-threaded here.
        std::env::set_var(key, value);
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
    let loaded = pyo3::Python::attach(|py| ferricorn_python::app::load(py, spec).map(drop));
    match loaded {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("Failed to load application {spec}:\n{error}");
            1
        }
    }
}
