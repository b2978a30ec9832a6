//! Any text, read as configuration: the loader never panics, and whatever it accepts goes
//! round through its written form unchanged; analysis of the result never panics either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis_api::analyze::{AnalyzeOptions, analyze};
use trellis_api::{LoadOptions, Resource};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let load = trellis_api::load_text("fuzz.yaml", text, &LoadOptions::default());
    for loaded in &load.loaded {
        let written = loaded.resource.to_value();
        let (again, issues) = Resource::read(loaded.resource.kind(), &written);
        assert_eq!(again.as_ref(), Some(&loaded.resource), "{issues:?}");
    }
    analyze(vec![load], &AnalyzeOptions::default());
});
