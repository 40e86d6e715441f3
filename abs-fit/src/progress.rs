//! Progress is observed, not printed: long jobs report to a [`Progress`] whose methods do
//! nothing by default. The command line attaches progress bars.

/// An observer of a long job counted in units (samples, steps, faces).
pub trait Progress {
    /// A task of `total` units starts, `done` of them already finished (a resumed job).
    fn start(&mut self, _task: &str, _total: u64, _done: u64) {}
    /// `n` more units are done.
    fn advance(&mut self, _n: u64) {}
    /// A line worth showing (a loss, a phase change).
    fn message(&mut self, _text: &str) {}
    /// The task has finished.
    fn finish(&mut self) {}
}

/// Observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

impl<P: Progress + ?Sized> Progress for &mut P {
    fn start(&mut self, task: &str, total: u64, done: u64) {
        (**self).start(task, total, done)
    }
    fn advance(&mut self, n: u64) {
        (**self).advance(n)
    }
    fn message(&mut self, text: &str) {
        (**self).message(text)
    }
    fn finish(&mut self) {
        (**self).finish()
    }
}
