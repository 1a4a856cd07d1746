//! The worker classes (`-k sync|gthread|async`), behind one trait.
//!
//! A class decides what it can serve ([`WorkerClass::check`]), how its
//! connections behave ([`WorkerClass::connection_policy`]) and where the
//! app runs ([`WorkerClass::dispatcher`]); [`serve`] then runs the
//! matching driver. [`for_settings`] is the only place that maps the
//! configured class to its implementation, like gunicorn's
//! `SUPPORTED_WORKERS`.

mod asynk;
mod gthread;
mod sync;

use std::time::Duration;

use ferricorn_config::Settings;

use crate::asgi::AsgiSetup;
use crate::exchange::ExchangeContext;
use crate::stream::Listener;
use crate::threaded::PoolShape;
use crate::{ClassOptions, WorkerError};

/// The interface an app speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interface {
    /// PEP 3333: a blocking callable.
    Wsgi,
    /// ASGI 3: a coroutine per connection.
    Asgi,
}

/// Where a class runs the app's calls.
#[derive(Debug)]
pub(crate) enum Dispatcher {
    /// On the event loop's thread, one request at a time (the loop waits
    /// for the app, never for a client).
    Inline,
    /// On a pool of app threads beside the event loop.
    Pool(PoolShape),
    /// As tasks of an asyncio loop on the main thread, the event loop on
    /// a thread beside it.
    Asyncio,
}

/// One worker class.
pub(crate) trait WorkerClass {
    /// gunicorn's name for the class (`-k NAME`).
    fn name(&self) -> &'static str;

    /// Whether the class can serve an app of this interface; the error
    /// says why not (after the app's name) and what to use instead.
    fn check(&self, interface: Interface) -> Result<(), String> {
        match interface {
            Interface::Wsgi => Ok(()),
            Interface::Asgi => Err(format!(
                "is an ASGI application, which the {} worker class cannot serve; use -k async",
                self.name()
            )),
        }
    }

    /// Whether app calls may run on several threads at once
    /// (`wsgi.multithread`).
    fn multithread(&self) -> bool;

    /// The connection settings this class serves with, from the
    /// configured ones.
    fn connection_policy(&self, options: ClassOptions) -> ClassOptions {
        options
    }

    /// Where the app's calls run, for an app of `interface`.
    fn dispatcher(&self, interface: Interface, options: &ClassOptions) -> Dispatcher;
}

/// The class configured with `-k`.
pub(crate) fn for_settings(settings: &Settings) -> Box<dyn WorkerClass> {
    match settings.worker_class {
        ferricorn_config::WorkerClass::Sync => Box::new(sync::Sync),
        ferricorn_config::WorkerClass::Gthread => Box::new(gthread::Gthread {
            threads: usize::try_from(settings.threads).unwrap_or(1),
        }),
        ferricorn_config::WorkerClass::Async => Box::new(asynk::Async),
    }
}

/// A loaded app with what its driver needs.
pub(crate) enum Served {
    /// A WSGI app and the request context shared by its connections.
    Wsgi(ExchangeContext),
    /// An ASGI app and its loop's settings.
    Asgi(AsgiSetup),
}

impl Served {
    fn interface(&self) -> Interface {
        match self {
            Served::Wsgi(_) => Interface::Wsgi,
            Served::Asgi(_) => Interface::Asgi,
        }
    }
}

/// Serves `app` with `class` until `TERM` and the graceful stop.
pub(crate) fn serve(
    class: &dyn WorkerClass,
    app: Served,
    listeners: Vec<Listener>,
    options: ClassOptions,
) -> Result<(), WorkerError> {
    let options = class.connection_policy(options);
    match (class.dispatcher(app.interface(), &options), app) {
        (Dispatcher::Inline, Served::Wsgi(ctx)) => crate::sync::run(ctx, listeners, options),
        (Dispatcher::Pool(shape), Served::Wsgi(ctx)) => {
            crate::threaded::run(ctx, listeners, options, shape)
        }
        (Dispatcher::Asyncio, Served::Asgi(setup)) => crate::asgi::run(setup, listeners, options),
        (dispatcher, app) => Err(WorkerError::Boot(format!(
            "the {} worker class cannot run an {:?} app on {dispatcher:?}",
            class.name(),
            app.interface()
        ))),
    }
}

/// Keep-alive off, as for classes that close after every response.
fn without_keepalive(options: ClassOptions) -> ClassOptions {
    ClassOptions {
        keepalive: Duration::ZERO,
        ..options
    }
}
