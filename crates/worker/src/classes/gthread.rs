//! `-k gthread`: a fixed pool of `--threads` app threads beside the event
//! loop, keep-alive connections waiting on the loop.

use super::{Dispatcher, Interface, WorkerClass};
use crate::threaded::PoolShape;
use crate::ClassOptions;

/// The gthread class.
pub(crate) struct Gthread {
    /// `--threads`.
    pub(crate) threads: usize,
}

impl WorkerClass for Gthread {
    fn name(&self) -> &'static str {
        "gthread"
    }

    fn multithread(&self) -> bool {
        true
    }

    fn dispatcher(&self, _interface: Interface, _options: &ClassOptions) -> Dispatcher {
        let threads = self.threads.max(1);
        Dispatcher::Pool(PoolShape {
            initial: threads,
            max: threads,
        })
    }
}
