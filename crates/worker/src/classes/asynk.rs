//! `-k async`: a task per connection. ASGI apps run on an asyncio loop;
//! WSGI apps on app threads grown on demand up to `--worker-connections`
//! (gevent-style concurrency for blocking code).

use super::{Dispatcher, Interface, WorkerClass};
use crate::threaded::PoolShape;
use crate::ClassOptions;

/// The async class.
pub(crate) struct Async;

impl WorkerClass for Async {
    fn name(&self) -> &'static str {
        "async"
    }

    fn check(&self, _interface: Interface) -> Result<(), String> {
        Ok(())
    }

    fn multithread(&self) -> bool {
        true
    }

    fn dispatcher(&self, interface: Interface, options: &ClassOptions) -> Dispatcher {
        match interface {
            Interface::Asgi => Dispatcher::Asyncio,
            // One app thread to start: more only help when they block,
            // and the pool adds them as soon as they do (see pool.rs).
            Interface::Wsgi => Dispatcher::Pool(PoolShape {
                initial: 1,
                max: options.max_connections,
            }),
        }
    }
}
