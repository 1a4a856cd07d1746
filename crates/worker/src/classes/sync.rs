//! `-k sync`: one request at a time, the app called on the event loop's
//! thread, no keep-alive (gunicorn's sync worker).

use super::{without_keepalive, Dispatcher, Interface, WorkerClass};
use crate::threaded::PoolShape;
use crate::ClassOptions;

/// The sync class.
pub(crate) struct Sync;

impl WorkerClass for Sync {
    fn name(&self) -> &'static str {
        "sync"
    }

    fn multithread(&self) -> bool {
        false
    }

    fn connection_policy(&self, options: ClassOptions) -> ClassOptions {
        // gunicorn's sync worker never keeps a connection alive.
        without_keepalive(options)
    }

    fn dispatcher(&self, _interface: Interface, options: &ClassOptions) -> Dispatcher {
        if options.tls.is_some() || options.h2c_prior_knowledge {
            // Over TLS the socket belongs to the event loop, and HTTP/2
            // multiplexes requests on one socket, so one app thread beside
            // the loop makes the calls, still one at a time.
            Dispatcher::Pool(PoolShape { initial: 1, max: 1 })
        } else {
            Dispatcher::Inline
        }
    }
}
