//! Links the binary with an rpath to the libpython it was built against;
//! without it the loader silently picks the system's libpython instead.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
