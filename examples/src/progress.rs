//! Progress bars for `abs_fit::Progress`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// An indicatif bar: position, rate in units per second and time left. Hidden when standard
/// error is not a terminal (CI logs), where it prints one line per task instead.
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
    unit: &'static str,
}

impl Bar {
    /// A bar counting `unit`s ("samples", "steps", ...).
    pub fn new(unit: &'static str) -> Self {
        Self { bar: None, unit }
    }
}

impl abs_fit::Progress for Bar {
    fn start(&mut self, task: &str, total: u64, done: u64) {
        let bar = ProgressBar::new(total);
        let template = format!(
            "{{msg}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {} ({{per_sec}}, {{eta}} left)",
            self.unit
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar.set_message(task.to_string());
        bar.set_position(done);
        bar.enable_steady_tick(Duration::from_millis(250));
        if bar.is_hidden() {
            eprintln!("{task}: {done} of {total} {} already done", self.unit);
        }
        self.bar = Some(bar);
    }
    fn advance(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }
    fn message(&mut self, text: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }
    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
            if bar.is_hidden() {
                eprintln!(
                    "{}: {} {} in {:.1} s",
                    bar.message(),
                    bar.position(),
                    self.unit,
                    bar.elapsed().as_secs_f64()
                );
            }
        }
    }
}
