//! Records which interpreter this crate was built against, so the embedded
//! interpreter can present it as `sys.executable` and find its standard library.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(executable) = config.executable() {
        println!("cargo:rustc-env=FERRICORN_BUILD_PYTHON={executable}");
    } else {
        println!("cargo:rustc-env=FERRICORN_BUILD_PYTHON=");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
