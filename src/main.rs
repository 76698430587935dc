//! The `blackbox` binary: parses the command line and hands over to [`blackbox::cli`].

fn main() {
    std::process::exit(blackbox::cli::main());
}
