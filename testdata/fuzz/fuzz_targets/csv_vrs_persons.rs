#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vaxarc::fuzz::csv_vrs_persons(data));
