//! The `offsite` binary: parse the command line, run, map errors to one line
//! on stderr and an exit code (2: usage or config, 1: operational failure;
//! 141 without a message when stdout's reader went away).

fn main() {
    offsite::allocator::tune();
    let code = match offsite::cli::main() {
        Ok(code) => code,
        // Every lock and other guard was dropped on the way up.
        Err(e) if e.is_closed_pipe() => e.exit_code(),
        Err(e) => {
            // One line whatever the message holds (names are escaped already).
            eprintln!("offsite: error: {}", offsite::escape::Escaped(&e));
            e.exit_code()
        }
    };
    std::process::exit(code);
}
