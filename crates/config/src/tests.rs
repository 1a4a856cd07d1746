//! Tests of the whole loading pipeline: layers, precedence, sources, messages.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::*;

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ferricorn-config-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("cannot create {}: {e}", path.display());
        }
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Command-line arguments and environment variables of one test case.
type Args<'a> = &'a [&'a str];
type Vars<'a> = &'a [(&'a str, &'a str)];

fn argv(list: &[&str]) -> Vec<OsString> {
    std::iter::once("ferricorn")
        .chain(list.iter().copied())
        .map(OsString::from)
        .collect()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn ok_in(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Loaded {
    match load(argv(args), &env(vars), dir) {
        Ok(loaded) => loaded,
        Err(e) => panic!("load({args:?}, {vars:?}) failed: {e}"),
    }
}

fn err_in(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> ConfigError {
    match load(argv(args), &env(vars), dir) {
        Ok(loaded) => panic!(
            "load({args:?}, {vars:?}) should fail, got {:?}",
            loaded.settings
        ),
        Err(e) => e,
    }
}

fn ok(args: &[&str], vars: &[(&str, &str)]) -> Loaded {
    let dir = TempDir::new();
    ok_in(dir.path(), args, vars)
}

/// The message of a usage/config error, checking it is one (exit code 2).
fn message(args: &[&str], vars: &[(&str, &str)]) -> String {
    let dir = TempDir::new();
    message_in(dir.path(), args, vars)
}

fn message_in(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    let e = err_in(dir, args, vars);
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(!e.is_info());
    e.to_string()
}

fn ip(text: &str) -> IpAddr {
    match text.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("{text}: {e}"),
    }
}

#[test]
fn defaults_are_gunicorns() {
    let dir = TempDir::new();
    let loaded = ok_in(dir.path(), &[], &[]);
    let s = &loaded.settings;
    assert_eq!(s.wsgi_app, None);
    assert_eq!(
        s.bind,
        vec![Bind::Tcp {
            host: "127.0.0.1".into(),
            port: 8000
        }]
    );
    assert_eq!(s.backlog, 2048);
    assert_eq!(s.workers, 1);
    assert_eq!(s.worker_class, WorkerClass::Sync);
    assert_eq!(s.threads, 1);
    assert_eq!(s.worker_connections, 1000);
    assert_eq!(s.timeout, 30);
    assert_eq!(s.graceful_timeout, 30);
    assert_eq!(s.keepalive, 2);
    assert_eq!(s.limit_request_line, 4094);
    assert_eq!(s.limit_request_fields, 100);
    assert_eq!(s.limit_request_field_size, 8190);
    assert_eq!(s.chdir, dir.path());
    assert!(s.pythonpath.is_empty());
    assert!(s.raw_env.is_empty());
    assert_eq!(s.pidfile, None);
    assert_eq!(s.proc_name, None);
    assert_eq!(s.accesslog, None);
    assert_eq!(
        s.access_log_format,
        r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#
    );
    assert_eq!(s.errorlog, "-");
    assert_eq!(s.loglevel, LogLevel::Info);
    assert!(!s.check_config && !s.print_config);
    assert!(!s.forwarded_allow_ips.allows_all());
    assert!(s.forwarded_allow_ips.allows(ip("127.0.0.1")));
    assert!(s.forwarded_allow_ips.allows(ip("::1")));
    assert!(!s.forwarded_allow_ips.allows(ip("10.0.0.1")));
    assert_eq!(
        s.secure_scheme_headers,
        vec![
            ("X-FORWARDED-PROTO".to_string(), "https".to_string()),
            ("X-FORWARDED-PROTOCOL".to_string(), "ssl".to_string()),
            ("X-FORWARDED-SSL".to_string(), "on".to_string()),
        ]
    );
    assert_eq!(s.forwarder_headers, ["SCRIPT_NAME", "PATH_INFO"]);
    assert_eq!(s.proxy_protocol, ProxyProtocol::Off);
    assert_eq!(s.reload_engine, ReloadEngine::Auto);
    assert!(s.sendfile && !s.reuse_port);
    assert!(!s.capture_output && !s.enable_stdio_inheritance);
    assert_eq!(s.ssl_version, SslVersion::Tls);
    assert!(!s.do_handshake_on_connect && s.suppress_ragged_eofs);
    assert!(s.proxy_allow_ips.allows(ip("127.0.0.1")));
    assert!(s.proxy_allow_ips.allows(ip("::1")));
    assert!(!s.proxy_allow_ips.allows(ip("192.0.2.1")));
    assert_eq!(s.header_map, HeaderMap::Drop);
    assert!(!s.permit_obsolete_folding);
    assert!(!s.strip_header_spaces);
    assert!(!s.permit_unconventional_http_method);
    assert!(!s.permit_unconventional_http_version);
    assert!(!s.casefold_http_method);
    assert_eq!(s.config_file, None);
    for name in [
        "workers",
        "bind",
        "pidfile",
        "config",
        "secure_scheme_headers",
    ] {
        assert_eq!(loaded.source_of(name), Some(&Source::Default), "{name}");
    }
    assert_eq!(loaded.source_of("no_such_setting"), None);
}

#[test]
fn every_layer_in_precedence_order() {
    let dir = TempDir::new();
    let file = dir.write("ferricorn.toml", "workers = 2\n");
    let file = match file.canonicalize() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let cwd = match dir.path().canonicalize() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let all_env = [
        ("FERRICORN_WORKERS", "3"),
        ("FERRICORN_CMD_ARGS", "-w 4"),
        ("WEB_CONCURRENCY", "6"),
    ];

    let cases: [(Args, Vars, u32, Source, &str); 5] = [
        (
            &["-w", "5"],
            &all_env,
            5,
            Source::CommandLine,
            "command line",
        ),
        (&[], &all_env, 4, Source::CmdArgsEnv, "FERRICORN_CMD_ARGS"),
        (
            &[],
            &all_env[..1],
            3,
            Source::Env("FERRICORN_WORKERS".into()),
            "env var FERRICORN_WORKERS",
        ),
        (&[], &all_env[2..], 2, Source::ConfigFile(file.clone()), ""),
        (&["-c", "/dev/null"], &[], 1, Source::Default, "default"),
    ];
    for (args, vars, workers, source, label) in cases {
        let loaded = ok_in(&cwd, args, vars);
        assert_eq!(loaded.settings.workers, workers, "{args:?} {vars:?}");
        assert_eq!(
            loaded.source_of("workers"),
            Some(&source),
            "{args:?} {vars:?}"
        );
        let label = if label.is_empty() {
            format!("config file {}", file.display())
        } else {
            label.to_string()
        };
        let line = format!("workers = {workers}  # {label}\n");
        assert!(
            loaded.print_config().contains(&line),
            "missing {line:?} in\n{}",
            loaded.print_config()
        );
    }
    // The file is read automatically from the current directory...
    let loaded = ok_in(&cwd, &[], &[]);
    assert_eq!(loaded.settings.config_file.as_deref(), Some(file.as_path()));
    assert_eq!(loaded.source_of("config"), Some(&Source::Default));
    // ...and, like any config file, beats gunicorn's WEB_CONCURRENCY default.
    let loaded = ok_in(&cwd, &[], &[("WEB_CONCURRENCY", "6")]);
    assert_eq!(loaded.settings.workers, 2);
}

#[test]
fn gunicorn_environment_defaults() {
    let loaded = ok(&[], &[("WEB_CONCURRENCY", "4")]);
    assert_eq!(loaded.settings.workers, 4);
    assert_eq!(
        loaded.source_of("workers"),
        Some(&Source::Env("WEB_CONCURRENCY".into()))
    );
    assert!(loaded
        .print_config()
        .contains("workers = 4  # env var WEB_CONCURRENCY\n"));

    let loaded = ok(&[], &[("WEB_CONCURRENCY", "4"), ("FERRICORN_WORKERS", "7")]);
    assert_eq!(loaded.settings.workers, 7);

    let loaded = ok(&[], &[("PORT", "5000")]);
    assert_eq!(
        loaded.settings.bind,
        vec![Bind::Tcp {
            host: "0.0.0.0".into(),
            port: 5000
        }]
    );
    assert_eq!(loaded.source_of("bind"), Some(&Source::Env("PORT".into())));
    let loaded = ok(&["-b", "unix:/tmp/x.sock"], &[("PORT", "5000")]);
    assert_eq!(loaded.settings.bind, vec![Bind::Unix("/tmp/x.sock".into())]);

    let loaded = ok(&[], &[("FORWARDED_ALLOW_IPS", "*")]);
    assert!(loaded.settings.forwarded_allow_ips.allows_all());
    assert_eq!(
        loaded.source_of("forwarded_allow_ips"),
        Some(&Source::Env("FORWARDED_ALLOW_IPS".into()))
    );
    let loaded = ok(
        &[],
        &[
            ("FORWARDED_ALLOW_IPS", "*"),
            ("FERRICORN_FORWARDED_ALLOW_IPS", "10.0.0.0/8"),
        ],
    );
    assert!(!loaded.settings.forwarded_allow_ips.allows_all());
    assert!(loaded.settings.forwarded_allow_ips.allows(ip("10.1.1.1")));

    assert_eq!(
        message(&[], &[("WEB_CONCURRENCY", "lots")]),
        "error: invalid value 'lots' for workers (from env var WEB_CONCURRENCY): expected a positive integer"
    );
    assert_eq!(
        message(&[], &[("PORT", "http")]),
        "error: invalid value '0.0.0.0:http' for bind (from env var PORT): port 'http' is not a number from 0 to 65535"
    );
}

#[test]
fn value_errors_name_setting_source_value_and_what_is_allowed() {
    let cases: &[(Args, Vars, &str)] = &[
        (&["--workers", "abc"], &[], "invalid value 'abc' for --workers (from command line): expected a positive integer"),
        (&["-w", "0"], &[], "invalid value '0' for --workers (from command line): expected a positive integer"),
        (&[], &[("FERRICORN_WORKERS", "abc")], "invalid value 'abc' for workers (from env var FERRICORN_WORKERS): expected a positive integer"),
        (&[], &[("FERRICORN_CMD_ARGS", "--workers=abc")], "invalid value 'abc' for --workers (from FERRICORN_CMD_ARGS): expected a positive integer"),
        (&["--backlog", "0"], &[], "invalid value '0' for --backlog (from command line): expected a positive integer"),
        (&["--threads", "x"], &[], "invalid value 'x' for --threads (from command line): expected a positive integer"),
        (&["--worker-connections", "0"], &[], "invalid value '0' for --worker-connections (from command line): expected a positive integer"),
        (&["-t", "-1"], &[], "invalid value '-1' for --timeout (from command line): expected a non-negative integer"),
        (&["--graceful-timeout", "soon"], &[], "invalid value 'soon' for --graceful-timeout (from command line): expected a non-negative integer"),
        (&["--keep-alive", "1.5"], &[], "invalid value '1.5' for --keep-alive (from command line): expected a non-negative integer"),
        (&["--limit-request-line", "-1"], &[], "invalid value '-1' for --limit-request-line (from command line): expected a non-negative integer"),
        (&["--limit-request-fields", "many"], &[], "invalid value 'many' for --limit-request-fields (from command line): expected a non-negative integer"),
        (&["--proxy-protocol", "v3"], &[], "invalid value 'v3' for --proxy-protocol (from command line): expected off, v1, v2 or auto"),
        (&["--reload-engine", "fsevents"], &[], "invalid value 'fsevents' for --reload-engine (from command line): expected auto, poll or inotify"),
        (&["--http-parser", "fast"], &[], "invalid value 'fast' for --http-parser (from command line): ferricorn has one HTTP parser, its own; gunicorn's fast and python parsers do not exist here; expected auto"),
        (&["--http-parser", "picky"], &[], "invalid value 'picky' for --http-parser (from command line): expected auto"),
        (&["--ssl-version", "TLSv1"], &[], "invalid value 'TLSv1' for --ssl-version (from command line): rustls serves only TLS 1.2 and 1.3 (SSLv2/3, TLS 1.0 and 1.1 are insecure and not implemented); expected TLS, TLS_SERVER, SSLv23, TLSv1_2 or TLSv1_3"),
        (&["--ssl-version", "4"], &[], "invalid value '4' for --ssl-version (from command line): rustls serves only TLS 1.2 and 1.3 (SSLv2/3, TLS 1.0 and 1.1 are insecure and not implemented); expected TLS, TLS_SERVER, SSLv23, TLSv1_2 or TLSv1_3"),
        (&["--ssl-version", "TLS_CLIENT"], &[], "invalid value 'TLS_CLIENT' for --ssl-version (from command line): TLS_CLIENT is for client sockets; expected TLS, TLS_SERVER, SSLv23, TLSv1_2 or TLSv1_3"),
        (&[], &[("FERRICORN_SENDFILE", "sometimes")], "invalid value 'sometimes' for sendfile (from env var FERRICORN_SENDFILE): expected a boolean (true/false, 1/0, yes/no)"),
        (&["--limit-request-field_size", "-5"], &[], "invalid value '-5' for --limit-request-field_size (from command line): expected a non-negative integer"),
        (&["-k", "gevent"], &[], "invalid value 'gevent' for --worker-class (from command line): this gunicorn worker class is not supported by ferricorn; expected one of: sync, gthread, async"),
        (&["-k", "fast"], &[], "invalid value 'fast' for --worker-class (from command line): expected one of: sync, gthread, async"),
        (&["-b", "127.0.0.1:99999"], &[], "invalid value '127.0.0.1:99999' for --bind (from command line): port '99999' is not a number from 0 to 65535"),
        (&["-b", "127.0.0.1:80", "-b", "[::1"], &[], "invalid value '[::1' for --bind (from command line): missing ']' after the IPv6 address (expected [IPv6]:PORT)"),
        (&["-b", "unix:"], &[], "invalid value 'unix:' for --bind (from command line): a unix socket address needs a path (unix:PATH)"),
        (&["-b", "fd://x"], &[], "invalid value 'fd://x' for --bind (from command line): fd:// needs a non-negative file descriptor number (fd://N)"),
        (&["-e", "NOVALUE"], &[], "invalid value 'NOVALUE' for --env (from command line): expected KEY=VALUE"),
        (&["-e", "=x"], &[], "invalid value '=x' for --env (from command line): expected KEY=VALUE"),
        (&["--log-level", "loud"], &[], "invalid value 'loud' for --log-level (from command line): expected one of: debug, info, warning, error, critical"),
        (&["--header-map", "keep"], &[], "invalid value 'keep' for --header-map (from command line): expected one of: drop, refuse, dangerous"),
        (&["--forwarded-allow-ips", "127.0.0.1,nope"], &[], "invalid value '127.0.0.1,nope' for --forwarded-allow-ips (from command line): 'nope' is not an IP address or CIDR network (expected e.g. 10.0.0.0/8, ::1 or '*')"),
        (&["--proxy-allow-from", "10.0.0.0/40"], &[], "invalid value '10.0.0.0/40' for --proxy-allow-from (from command line): '10.0.0.0/40' has an invalid prefix length (expected 0 to 32)"),
        (&["--chdir", "/no/such/dir/for/ferricorn"], &[], "invalid value '/no/such/dir/for/ferricorn' for --chdir (from command line): expected an existing directory"),
        (&["--error-logfile", ""], &[], "invalid value '' for --error-logfile (from command line): expected a file path, or '-' for stderr"),
        (&[], &[("FERRICORN_PROXY_PROTOCOL", "maybe")], "invalid value 'maybe' for proxy_protocol (from env var FERRICORN_PROXY_PROTOCOL): expected off, v1, v2 or auto"),
        (&[], &[("FERRICORN_BIND", "'unterminated")], "invalid value ''unterminated' for bind (from env var FERRICORN_BIND): cannot split into words: unterminated single quote"),
        (&[], &[("FERRICORN_SECURE_SCHEME_HEADERS", "X-PROTO")], "invalid value 'X-PROTO' for secure_scheme_headers (from env var FERRICORN_SECURE_SCHEME_HEADERS): expected a table of header names to values (or HEADER=VALUE,... in the environment)"),
        (&["-c", "gunicorn.conf.py"], &[], "invalid value 'gunicorn.conf.py' for --config (from command line): Python config files are not supported yet; ferricorn reads TOML config files"),
        (&[], &[("FERRICORN_CONFIG", "python:settings")], "invalid value 'python:settings' for config (from env var FERRICORN_CONFIG): Python config files are not supported yet; ferricorn reads TOML config files"),
    ];
    for (args, vars, expected) in cases {
        assert_eq!(
            message(args, vars),
            format!("error: {expected}"),
            "{args:?} {vars:?}"
        );
    }
}

#[test]
fn config_file_value_errors() {
    let dir = TempDir::new();
    let path = dir.write("bad.toml", "workers = \"abc\"\n");
    assert_eq!(
        message_in(dir.path(), &["-c", "bad.toml"], &[]),
        format!(
            "error: invalid value 'abc' for workers (from config file {}): expected a positive integer",
            path.display()
        )
    );
    dir.write("bad.toml", "proxy_protocol = \"sometimes\"\n");
    assert!(
        message_in(dir.path(), &["-c", "bad.toml"], &[]).ends_with("expected off, v1, v2 or auto")
    );
    dir.write("bad.toml", "secure_scheme_headers = 5\n");
    assert!(message_in(dir.path(), &["-c", "bad.toml"], &[])
        .contains("invalid value '5' for secure_scheme_headers (from config file"));
    dir.write("bad.toml", "bind = [\"127.0.0.1:80\", 8000]\n");
    assert!(
        message_in(dir.path(), &["-c", "bad.toml"], &[]).contains("invalid value '8000' for bind")
    );
    // A bad value is reported even when a higher layer overrides it.
    dir.write("bad.toml", "workers = -3\n");
    assert!(message_in(dir.path(), &["-c", "bad.toml", "-w", "2"], &[])
        .contains("invalid value '-3' for workers"));
}

#[test]
fn config_file_keys_and_errors() {
    let dir = TempDir::new();
    let path = dir.write("ferricorn.toml", "workers = 2\nworkerz = 3\n");
    assert_eq!(
        message_in(dir.path(), &[], &[]),
        format!("error: unknown setting 'workerz' in {}", path.display())
    );
    dir.write("ferricorn.toml", "protocol = \"uwsgi\"\n");
    assert_eq!(
        message_in(dir.path(), &[], &[]),
        format!(
            "error: setting 'protocol' in {} is not supported yet",
            path.display()
        )
    );
    dir.write("ferricorn.toml", "ssl_context = \"x\"\n");
    assert!(message_in(dir.path(), &[], &[]).contains("setting 'ssl_context'"));
    dir.write("ferricorn.toml", "post_fork = \"x\"\n");
    assert!(message_in(dir.path(), &[], &[]).contains("MODULE:CALLABLE"));
    dir.write("ferricorn.toml", "config = \"other.toml\"\n");
    assert!(message_in(dir.path(), &[], &[]).contains("setting 'config' in"));
    dir.write("ferricorn.toml", "workers = \n");
    assert!(message_in(dir.path(), &[], &[]).starts_with(&format!(
        "error: cannot load config file {}: TOML parse error",
        path.display()
    )));
    let missing = dir.path().join("missing.toml");
    assert_eq!(
        message_in(dir.path(), &["-c", "missing.toml"], &[]),
        format!(
            "error: cannot load config file {}: file not found",
            missing.display()
        )
    );
}

#[test]
fn config_file_locations() {
    let dir = TempDir::new();
    dir.write("ferricorn.toml", "workers = 2\n");
    let other = dir.write("other.toml", "workers = 3\n");
    let loaded = ok_in(dir.path(), &["-c", "other.toml"], &[]);
    assert_eq!(loaded.settings.workers, 3);
    assert_eq!(
        loaded.settings.config_file.as_deref(),
        Some(other.as_path())
    );
    assert_eq!(loaded.source_of("config"), Some(&Source::CommandLine));
    let loaded = ok_in(dir.path(), &["--config=file:other.toml"], &[]);
    assert_eq!(loaded.settings.workers, 3);
    let loaded = ok_in(dir.path(), &[], &[("FERRICORN_CONFIG", "other.toml")]);
    assert_eq!(loaded.settings.workers, 3);
    assert_eq!(
        loaded.source_of("config"),
        Some(&Source::Env("FERRICORN_CONFIG".into()))
    );
    let loaded = ok_in(
        dir.path(),
        &[],
        &[
            ("FERRICORN_CMD_ARGS", "-c other.toml"),
            ("FERRICORN_CONFIG", "nope.toml"),
        ],
    );
    assert_eq!(loaded.settings.workers, 3);
    assert!(loaded.print_config().contains(&format!(
        "config = \"{}\"  # FERRICORN_CMD_ARGS\n",
        other.display()
    )));
}

#[test]
fn config_file_values_of_every_shape() {
    let dir = TempDir::new();
    dir.write(
        "ferricorn.toml",
        r#"
wsgi_app = "app:application"
bind = ["127.0.0.1:9000", "unix:/tmp/f.sock"]
worker_class = "gthread"
threads = 4
raw_env = ["A=1", "B=x=y"]
pythonpath = "/a, /b"
forwarded_allow_ips = ["10.0.0.0/8", "::1"]
proxy_protocol = true
permit_obsolete_folding = "yes"
casefold_http_method = 1
secure_scheme_headers = { "x-proto" = "https" }
loglevel = "DEBUG"
accesslog = "-"
"#,
    );
    let loaded = ok_in(dir.path(), &[], &[]);
    let s = &loaded.settings;
    assert_eq!(s.wsgi_app.as_deref(), Some("app:application"));
    assert_eq!(s.bind.len(), 2);
    assert_eq!(s.worker_class, WorkerClass::Gthread);
    assert_eq!(s.threads, 4);
    assert_eq!(
        s.raw_env,
        vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
    );
    assert_eq!(s.pythonpath, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    assert!(s.forwarded_allow_ips.allows(ip("10.2.3.4")));
    assert_eq!(
        s.proxy_protocol,
        ProxyProtocol::Auto,
        "true means auto, as in gunicorn"
    );
    assert!(s.permit_obsolete_folding && s.casefold_http_method);
    // A table replaces the default table rather than being merged into it.
    assert_eq!(
        s.secure_scheme_headers,
        vec![("X-PROTO".to_string(), "https".to_string())]
    );
    assert_eq!(s.loglevel, LogLevel::Debug);
    assert_eq!(s.accesslog.as_deref(), Some("-"));
    // The command line replaces a list from the file instead of extending it.
    let loaded = ok_in(dir.path(), &["-b", ":7000"], &[]);
    assert_eq!(
        loaded.settings.bind,
        vec![Bind::Tcp {
            host: "0.0.0.0".into(),
            port: 7000
        }]
    );
}

#[test]
fn unsupported_gunicorn_flags_are_refused() {
    let cases: &[(&[&str], &str)] = &[
        (&["app:app", "--protocol", "uwsgi"], "--protocol"),
        (&["--protocol"], "--protocol"),
        (&["--protocol=uwsgi"], "--protocol"),
        (&["--dirty-workers", "10"], "--dirty-workers"),
        (
            &["-w", "2", "--uwsgi-allow-from", "*", "--protocol", "uwsgi"],
            "--uwsgi-allow-from",
        ),
    ];
    for (args, flag) in cases {
        assert_eq!(
            message(args, &[]),
            format!("error: {flag} is not supported yet"),
            "{args:?}"
        );
    }
    assert_eq!(
        message(&[], &[("FERRICORN_CMD_ARGS", "--protocol uwsgi")]),
        "error: --protocol is not supported yet"
    );
    assert_eq!(
        message(&[], &[("FERRICORN_PROTOCOL", "uwsgi")]),
        "error: setting 'protocol' (from env var FERRICORN_PROTOCOL) is not supported yet"
    );
}

#[test]
fn logconfig_settings_keep_gunicorn_precedence_and_toml_nesting() {
    let dir = TempDir::new();
    dir.write(
        "ferricorn.toml",
        "[logconfig_dict]\nversion = 1\n[logconfig_dict.loggers.\"gunicorn.error\"]\n\
         handlers = [\"a\", \"b\"]\nlevel = \"DEBUG\"\n\
         [logconfig_dict.handlers.s]\naddress = [[\"x\", 1]]\n",
    );
    let s = ok_in(
        dir.path(),
        &["-c", "ferricorn.toml", "--log-config", "log.ini"],
        &[],
    )
    .settings;
    let Some(crate::ActiveLogConfig::Dict(dict)) = s.logconfig.active() else {
        panic!("the dict wins: {:?}", s.logconfig);
    };
    assert_eq!(
        serde_json::Value::Object(dict.clone()),
        serde_json::json!({
            "version": 1,
            "loggers": {"gunicorn.error": {"handlers": ["a", "b"], "level": "DEBUG"}},
            "handlers": {"s": {"address": [["x", 1]]}},
        })
    );
    assert_eq!(s.logconfig.file, Some(dir.path().join("log.ini")));

    let s = ok(
        &["--log-config", "a.ini", "--log-config-json", "b.json"],
        &[],
    )
    .settings;
    assert!(matches!(
        s.logconfig.active(),
        Some(crate::ActiveLogConfig::Json(p)) if p.ends_with("b.json")
    ));
    let s = ok(&[], &[("FERRICORN_LOGCONFIG_DICT", r#"{"version": 1}"#)]).settings;
    assert!(s.logconfig.dict.is_some());
    // gunicorn ignores an empty dict.
    let s = ok(&[], &[("FERRICORN_LOGCONFIG_DICT", "{}")]).settings;
    assert_eq!(s.logconfig.active(), None);
    let text = message(&[], &[("FERRICORN_LOGCONFIG_DICT", "[1]")]);
    assert!(text.contains("logconfig_dict"), "{text}");
    assert!(text.contains("a JSON object"), "{text}");
}

#[test]
fn flags_that_cannot_work_say_why_and_what_instead() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--spew", "app:app"], "--spew", "sys.settrace"),
        (&["--paste", "dev.ini"], "--paste", "paste.deploy.loadapp"),
        (&["--paster", "dev.ini"], "--paster", "paste.deploy.loadapp"),
        (&["--paste-global", "a=1"], "--paste-global", "APP_MODULE"),
        (
            &["--logger-class", "my.Logger"],
            "--logger-class",
            "--access-logformat",
        ),
    ];
    for (args, flag, instead) in cases {
        let text = message(args, &[]);
        assert!(
            text.starts_with(&format!("error: {flag} is not supported by ferricorn: ")),
            "{args:?}: {text}"
        );
        assert!(text.contains(instead), "{args:?}: {text}");
    }
    let env = message(&[], &[("FERRICORN_PASTE", "dev.ini")]);
    assert!(
        env.starts_with("error: setting 'paste' (from env var FERRICORN_PASTE) is not supported by ferricorn: it loads a PasteDeploy"),
        "{env}"
    );
    let dir = TempDir::new();
    dir.write("ferricorn.toml", "logger_class = \"my.Logger\"\n");
    let file = message_in(dir.path(), &[], &[]);
    assert!(
        file.contains("setting 'logger_class' in")
            && file.contains("is not supported by ferricorn: it names a Python subclass"),
        "{file}"
    );
}

#[test]
fn parser_limits_take_gunicorns_values() {
    let limits = |args: &[&str]| {
        let s = ok(args, &[]).settings;
        (
            s.limit_request_line,
            s.limit_request_fields,
            s.limit_request_field_size,
        )
    };
    // Above the maximum: lowered to it, as gunicorn's parser does.
    assert_eq!(limits(&["--limit-request-line", "8200"]).0, 8190);
    assert_eq!(limits(&["--limit-request-line", "100000"]).0, 8190);
    assert_eq!(limits(&["--limit-request-line", "8190"]).0, 8190);
    assert_eq!(
        limits(&["--limit-request-line", "0"]).0,
        0,
        "0 is unlimited"
    );
    assert_eq!(limits(&["--limit-request-fields", "40000"]).1, 32768);
    assert_eq!(limits(&["--limit-request-fields", "0"]).1, 32768);
    assert_eq!(limits(&["--limit-request-fields", "7"]).1, 7);
    assert_eq!(limits(&["--limit-request-field_size", "0"]).2, 8190);
    assert_eq!(limits(&["--limit-request-field_size", "100000"]).2, 100000);
    // Python's int(text, 0) spellings, as gunicorn's validate_pos_int.
    assert_eq!(limits(&["--limit-request-line", "0x100"]).0, 256);
    assert_eq!(limits(&["--limit-request-fields", "0o20"]).1, 16);
    // TOML integers too.
    let dir = TempDir::new();
    dir.write(
        "ferricorn.toml",
        "limit_request_line = 9000\nlimit_request_fields = 0\n",
    );
    let s = ok_in(dir.path(), &[], &[]).settings;
    assert_eq!(
        (s.limit_request_line, s.limit_request_fields),
        (8190, 32768)
    );
}

#[test]
fn proxy_protocol_spellings() {
    let mode = |args: &[&str], vars: &[(&str, &str)]| ok(args, vars).settings.proxy_protocol;
    assert_eq!(mode(&["--proxy-protocol"], &[]), ProxyProtocol::Auto);
    assert_eq!(mode(&["--proxy-protocol", "v1"], &[]), ProxyProtocol::V1);
    assert_eq!(mode(&["--proxy-protocol=V2"], &[]), ProxyProtocol::V2);
    assert_eq!(mode(&["--proxy-protocol", "off"], &[]), ProxyProtocol::Off);
    for off in ["false", "0", "none", "OFF"] {
        assert_eq!(
            mode(&["--proxy-protocol", off], &[]),
            ProxyProtocol::Off,
            "{off}"
        );
    }
    for auto in ["true", "1", "auto"] {
        assert_eq!(
            mode(&["--proxy-protocol", auto], &[]),
            ProxyProtocol::Auto,
            "{auto}"
        );
    }
    // The bare flag before another option or at the end.
    assert_eq!(
        mode(&["--proxy-protocol", "-w", "2"], &[]),
        ProxyProtocol::Auto
    );
    assert_eq!(
        mode(&[], &[("FERRICORN_PROXY_PROTOCOL", "v2")]),
        ProxyProtocol::V2
    );
    let dir = TempDir::new();
    dir.write("ferricorn.toml", "proxy_protocol = \"v1\"\n");
    assert_eq!(
        ok_in(dir.path(), &[], &[]).settings.proxy_protocol,
        ProxyProtocol::V1
    );
    dir.write("ferricorn.toml", "proxy_protocol = false\n");
    assert_eq!(
        ok_in(dir.path(), &[], &[]).settings.proxy_protocol,
        ProxyProtocol::Off
    );
    let printed = ok(&["--proxy-protocol", "v2"], &[]).print_config();
    assert!(
        printed.contains("proxy_protocol = \"v2\"  # command line"),
        "{printed}"
    );
}

#[test]
fn wsgi_path_gunicorn_flags_are_accepted() {
    let s = ok(
        &[
            "--reuse-port",
            "--no-sendfile",
            "--reload-engine",
            "inotify",
            "--capture-output",
            "-R",
            "--http-parser",
            "auto",
            "--ssl-version",
            "TLSv1_2",
            "--do-handshake-on-connect",
            "--suppress-ragged-eofs",
        ],
        &[],
    )
    .settings;
    assert!(s.reuse_port && !s.sendfile && s.capture_output && s.enable_stdio_inheritance);
    assert_eq!(s.reload_engine, ReloadEngine::Inotify);
    assert_eq!(s.ssl_version, SslVersion::Tls12);
    assert!(s.do_handshake_on_connect && s.suppress_ragged_eofs);
    assert_eq!(
        ok(&["--reload-engine", "poll"], &[]).settings.reload_engine,
        ReloadEngine::Poll
    );
    assert!(
        ok(&["--enable-stdio-inheritance"], &[])
            .settings
            .enable_stdio_inheritance
    );
    // -R combines with other short flags, as with argparse.
    let combined = ok(&["-Rw", "3"], &[]).settings;
    assert!(combined.enable_stdio_inheritance);
    assert_eq!(combined.workers, 3);
    for (name, expected) in [
        ("TLS", SslVersion::Tls),
        ("TLS_SERVER", SslVersion::Tls),
        ("SSLv23", SslVersion::Tls),
        ("PROTOCOL_TLS", SslVersion::Tls),
        ("2", SslVersion::Tls),
        ("17", SslVersion::Tls),
        ("5", SslVersion::Tls12),
        ("TLSv1_3", SslVersion::Tls13),
    ] {
        assert_eq!(
            ok(&["--ssl-version", name], &[]).settings.ssl_version,
            expected,
            "{name}"
        );
    }
    let dir = TempDir::new();
    dir.write(
        "ferricorn.toml",
        "ssl_version = 5\nsuppress_ragged_eofs = false\nsendfile = false\n",
    );
    let s = ok_in(dir.path(), &[], &[]).settings;
    assert_eq!(s.ssl_version, SslVersion::Tls12);
    assert!(!s.suppress_ragged_eofs && !s.sendfile);
}

#[test]
fn sendfile_follows_gunicorns_environment_variable() {
    let on = |vars: &[(&str, &str)]| ok(&[], vars).settings.sendfile;
    assert!(on(&[]));
    for yes in ["y", "1", "yes", "TRUE"] {
        assert!(on(&[("SENDFILE", yes)]), "{yes}");
    }
    for no in ["0", "no", "false", "off", ""] {
        assert!(!on(&[("SENDFILE", no)]), "{no}");
    }
    let loaded = ok(&[], &[("SENDFILE", "0")]);
    assert_eq!(
        loaded.source_of("sendfile"),
        Some(&Source::Env("SENDFILE".into()))
    );
    // --no-sendfile wins over SENDFILE=1 (gunicorn: the flag, when given, decides).
    assert!(
        !ok(&["--no-sendfile"], &[("SENDFILE", "1")])
            .settings
            .sendfile
    );
    // FERRICORN_SENDFILE sits above the SENDFILE default, like every env layer.
    assert!(
        ok(&[], &[("SENDFILE", "0"), ("FERRICORN_SENDFILE", "true")])
            .settings
            .sendfile
    );
}

#[test]
fn cmd_args_are_split_like_a_shell() {
    let loaded = ok(
        &[],
        &[(
            "FERRICORN_CMD_ARGS",
            r#"--name "my app" -e 'GREETING=hello world' --bind=127.0.0.1:9001 -b "[::1]:9002" app:application"#,
        )],
    );
    let s = &loaded.settings;
    assert_eq!(s.proc_name.as_deref(), Some("my app"));
    assert_eq!(s.raw_env, vec![("GREETING".into(), "hello world".into())]);
    assert_eq!(
        s.bind.iter().map(Bind::to_string).collect::<Vec<_>>(),
        ["127.0.0.1:9001", "[::1]:9002"]
    );
    assert_eq!(s.wsgi_app.as_deref(), Some("app:application"));
    assert_eq!(loaded.source_of("wsgi_app"), Some(&Source::CmdArgsEnv));

    assert_eq!(
        message(&[], &[("FERRICORN_CMD_ARGS", "--name 'oops")]),
        "error: cannot split FERRICORN_CMD_ARGS into arguments: unterminated single quote"
    );
    let unknown = message(&[], &[("FERRICORN_CMD_ARGS", "--bogus")]);
    assert!(
        unknown.starts_with("error: in FERRICORN_CMD_ARGS: unexpected argument '--bogus'"),
        "{unknown}"
    );
}

#[test]
fn environment_values() {
    let loaded = ok(
        &[],
        &[
            ("FERRICORN_BIND", "127.0.0.1:1 'unix:/tmp/a b.sock'"),
            ("FERRICORN_RAW_ENV", "A=1 'B=two words'"),
            ("FERRICORN_CHECK_CONFIG", "yes"),
            ("FERRICORN_STRIP_HEADER_SPACES", "1"),
            ("FERRICORN_SECURE_SCHEME_HEADERS", "x-forwarded-proto=https"),
            ("FERRICORN_PIDFILE", ""),
            ("FERRICORN_WSGI_APP", "pkg.wsgi"),
            ("FERRICORN_SOMETHING_ELSE", "ignored"),
        ],
    );
    let s = &loaded.settings;
    assert_eq!(
        s.bind,
        vec![
            Bind::Tcp {
                host: "127.0.0.1".into(),
                port: 1
            },
            Bind::Unix("/tmp/a b.sock".into())
        ]
    );
    assert_eq!(
        s.raw_env,
        vec![("A".into(), "1".into()), ("B".into(), "two words".into())]
    );
    assert!(s.check_config && s.strip_header_spaces);
    assert_eq!(
        s.secure_scheme_headers,
        vec![("X-FORWARDED-PROTO".into(), "https".into())]
    );
    assert_eq!(s.pidfile, None);
    assert_eq!(s.wsgi_app.as_deref(), Some("pkg.wsgi"));
    assert_eq!(
        loaded.source_of("bind"),
        Some(&Source::Env("FERRICORN_BIND".into()))
    );
}

#[test]
fn command_line_forms() {
    let dir = TempDir::new();
    let sub = dir.path().join("sub");
    if let Err(e) = std::fs::create_dir(&sub) {
        panic!("{e}");
    }
    let loaded = ok_in(
        dir.path(),
        &[
            "-b",
            "127.0.0.1:1",
            "--bind",
            "[::]:2",
            "--bind=unix:/x",
            "-b",
            "fd://3",
            "-w4",
            "--worker-class=gthread",
            "--threads",
            "8",
            "--keep",
            "5",
            "--access-logfile",
            "-",
            "--log-file",
            "-",
            "--log-level",
            "WARNING",
            "-e",
            "A=1",
            "--env",
            "B=2",
            "-p",
            "run.pid",
            "-n",
            "svc",
            "--chdir",
            "sub/../sub",
            "--pythonpath",
            "/x,/y",
            "--limit-request-fields",
            "0",
            "--limit-request-field-size",
            "0",
            "--limit-request-line",
            "0",
            "--forwarded-allow-ips",
            "*",
            "--proxy-protocol",
            "--proxy-allow-from",
            "10.0.0.0/8",
            "--header-map",
            "refuse",
            "--permit-obsolete-folding",
            "--strip-header-spaces",
            "--permit-unconventional-http-method",
            "--permit-unconventional-http-version",
            "--casefold-http-method",
            "--check-config",
            "--print-config",
            "--forwarder-headers",
            "SCRIPT_NAME",
            "--access-logformat",
            "%(h)s",
            "-t",
            "0",
            "--graceful-timeout",
            "5",
            "--backlog",
            "64",
            "--worker-connections",
            "10",
            "-w",
            "6",
            "myapp:app",
        ],
        &[],
    );
    let s = &loaded.settings;
    assert_eq!(
        s.bind.iter().map(Bind::to_string).collect::<Vec<_>>(),
        ["127.0.0.1:1", "[::]:2", "unix:/x", "fd://3"]
    );
    assert_eq!(s.workers, 6, "last occurrence wins, as with argparse");
    assert_eq!(s.worker_class, WorkerClass::Gthread);
    assert_eq!(s.threads, 8);
    assert_eq!(
        s.keepalive, 5,
        "unambiguous prefixes work, as with argparse"
    );
    assert_eq!(s.accesslog.as_deref(), Some("-"));
    assert_eq!(s.errorlog, "-");
    assert_eq!(s.loglevel, LogLevel::Warning);
    assert_eq!(s.raw_env.len(), 2);
    assert_eq!(s.pidfile.as_deref(), Some(Path::new("run.pid")));
    assert_eq!(s.proc_name.as_deref(), Some("svc"));
    assert_eq!(s.chdir, sub);
    assert_eq!(s.pythonpath.len(), 2);
    assert_eq!(
        s.limit_request_fields, 32768,
        "gunicorn's 0 means the maximum"
    );
    assert_eq!(
        s.limit_request_field_size, 8190,
        "gunicorn 27's parser turns 0 into its default"
    );
    assert_eq!(s.limit_request_line, 0);
    assert!(s.forwarded_allow_ips.allows_all());
    assert_eq!(
        s.proxy_protocol,
        ProxyProtocol::Auto,
        "the bare flag means auto"
    );
    assert!(s.proxy_allow_ips.allows(ip("10.1.1.1")));
    assert_eq!(s.header_map, HeaderMap::Refuse);
    assert!(s.permit_obsolete_folding && s.strip_header_spaces);
    assert!(s.permit_unconventional_http_method && s.permit_unconventional_http_version);
    assert!(s.casefold_http_method && s.check_config && s.print_config);
    assert_eq!(s.forwarder_headers, ["SCRIPT_NAME"]);
    assert_eq!(s.access_log_format, "%(h)s");
    assert_eq!((s.timeout, s.graceful_timeout), (0, 5));
    assert_eq!((s.backlog, s.worker_connections), (64, 10));
    assert_eq!(s.wsgi_app.as_deref(), Some("myapp:app"));
    assert_eq!(loaded.source_of("wsgi_app"), Some(&Source::CommandLine));

    let sync_threads = ok(&["--threads", "2"], &[]);
    assert_eq!(sync_threads.settings.worker_class, WorkerClass::Gthread);
    let async_threads = ok(&["-k", "async", "--threads", "2"], &[]);
    assert_eq!(async_threads.settings.worker_class, WorkerClass::Async);

    let extra = message(&["a:app", "b:app"], &[]);
    assert!(
        extra.starts_with("error: unexpected argument 'b:app'"),
        "{extra}"
    );
    let unknown = message(&["--bogus"], &[]);
    assert!(
        unknown.starts_with("error: unexpected argument '--bogus'"),
        "{unknown}"
    );
    let missing = message(&["-w"], &[]);
    assert!(
        missing.starts_with("error: a value is required for '--workers"),
        "{missing}"
    );
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["--help", "-h"] {
        let e = err_in(Path::new("/"), &[flag], &[]);
        assert!(e.is_info());
        assert_eq!(e.exit_code(), 0);
        let text = e.to_string();
        assert!(
            text.contains("Usage: ferricorn [OPTIONS] [APP_MODULE]"),
            "{text}"
        );
        assert!(text.contains("-w, --workers <INT>"), "{text}");
        assert!(text.contains("FERRICORN_WORKERS"), "{text}");
        assert!(text.contains("--limit-request-field_size"), "{text}");
        assert!(
            !text.contains("--spew"),
            "unsupported flags are hidden: {text}"
        );
        assert_eq!(text, help_text());
    }
    for flag in ["--version", "-v"] {
        let e = err_in(Path::new("/"), &[flag], &[]);
        assert!(e.is_info());
        assert_eq!(e.exit_code(), 0);
        assert_eq!(e.to_string(), format!("ferricorn {VERSION}"));
    }
}

#[test]
fn print_config_lists_every_setting_sorted() {
    let loaded = ok(&["-w", "3", "--access-logfile", "-"], &[]);
    let text = loaded.print_config();
    let names: Vec<&str> = text
        .lines()
        .map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            line.split(' ').next().unwrap_or("")
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), crate::table::SETTINGS.len());
    assert!(text.contains("workers = 3  # command line\n"));
    assert!(text.contains("accesslog = \"-\"  # command line\n"));
    assert!(text.contains("bind = [\"127.0.0.1:8000\"]  # default\n"));
    assert!(text.contains("# pidfile = (unset)  # default\n"));
    assert!(text.contains("forwarded_allow_ips = \"127.0.0.1,::1\"  # default\n"));
    assert!(text.contains(
        "secure_scheme_headers = { X-FORWARDED-PROTO = \"https\", X-FORWARDED-PROTOCOL = \"ssl\", X-FORWARDED-SSL = \"on\" }  # default\n"
    ), "{text}");
    // The settings part (before the comments) is valid TOML.
    let body: String = text
        .lines()
        .map(|line| format!("{}\n", line.split("  # ").next().unwrap_or("")))
        .collect();
    if let Err(e) = body.parse::<toml::Table>() {
        panic!("not TOML: {e}\n{body}");
    }
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/ferricorn.toml")
}

#[test]
fn example_config_file_is_up_to_date_and_valid() {
    let on_disk = match std::fs::read_to_string(example_path()) {
        Ok(text) => text,
        Err(e) => panic!("{}: {e}", example_path().display()),
    };
    // Not assert_eq: a diff of the whole file would drown the hint.
    assert!(
        on_disk == example_config(),
        "config/ferricorn.toml is stale; run `cargo test -p ferricorn-config -- --ignored regenerate`"
    );
    // Uncommented, every example value must load.
    let dir = TempDir::new();
    let uncommented: String = on_disk
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter(|line| !line.starts_with(' ') && !line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    dir.write("ferricorn.toml", &uncommented);
    let loaded = ok_in(dir.path(), &[], &[]);
    assert_eq!(loaded.settings.workers, 1);
    assert_eq!(
        loaded.settings.wsgi_app.as_deref(),
        Some("myproject.wsgi:application")
    );
}

#[test]
#[ignore = "writes config/ferricorn.toml"]
fn regenerate_example_config() {
    if let Err(e) = std::fs::write(example_path(), example_config()) {
        panic!("{e}");
    }
}

#[test]
fn tls_and_http2_settings_are_validated() {
    let dir = std::env::temp_dir();
    let loaded = ok_in(
        &dir,
        &[
            "--http-protocols",
            "h1,h2",
            "--cert-reqs",
            "2",
            "--header-timeout",
            "5",
        ],
        &[],
    );
    assert_eq!(loaded.settings.http_protocols, vec!["h1", "h2"]);
    assert_eq!(loaded.settings.cert_reqs, 2);
    assert_eq!(loaded.settings.header_timeout, 5);
    assert_eq!(loaded.settings.http2_cleartext, "off");
    for (args, needle) in [
        (&["--http-protocols", "h3"][..], "--http-protocols"),
        (&["--cert-reqs", "3"][..], "--cert-reqs"),
        (&["--http2-cleartext", "yes"][..], "--http2-cleartext"),
        (
            &["--http2-max-frame-size", "10"][..],
            "--http2-max-frame-size",
        ),
        (&["--header-timeout", "0"][..], "--header-timeout"),
    ] {
        let message = err_in(&dir, args, &[]).to_string();
        assert!(message.contains(needle), "{args:?}: {message}");
    }
}

#[test]
fn process_settings_user_group_umask() {
    let s = ok(
        &[
            "-D",
            "-u",
            "nobody",
            "-g",
            "65534",
            "--initgroups",
            "-m",
            "022",
        ],
        &[],
    )
    .settings;
    assert!(s.daemon && s.initgroups);
    assert_eq!(s.user.as_deref(), Some("nobody"));
    assert_eq!(s.group.as_deref(), Some("65534"));
    assert_eq!(s.umask, Some(0o022));
    for (text, mask) in [("0o027", 0o027), ("18", 18), ("0", 0), ("0O7", 7)] {
        assert_eq!(
            ok(&["--umask", text], &[]).settings.umask,
            Some(mask),
            "{text}"
        );
    }
    assert!(message(&["--umask", "0o1000"], &[]).contains("a umask"));
    assert!(message(&["--umask", "-1"], &[]).contains("a umask"));
    assert!(message(&["--umask", "09"], &[]).contains("a umask"));
    let s = ok(&["--worker-tmp-dir", "/dev/shm"], &[]).settings;
    assert_eq!(s.worker_tmp_dir.as_deref(), Some("/dev/shm"));
}
