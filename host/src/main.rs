//! The `edxs` command-line program.

fn main() {
    std::process::exit(edxs::cli::main());
}
