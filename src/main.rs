//! The `offsite` binary: parse the command line, run, map errors to one line
//! on stderr and an exit code (2: usage or config, 1: operational failure).

fn main() {
    let code = match offsite::cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("offsite: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
