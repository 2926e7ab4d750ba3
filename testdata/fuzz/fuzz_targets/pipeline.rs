#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vaxarc::fuzz::pipeline(data));
