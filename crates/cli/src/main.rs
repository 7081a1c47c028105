//! The `skymeter` binary: the command line over the built-in plugins.

fn main() -> std::process::ExitCode {
    skymeter::main_with(skymeter_plugins::builtin())
}
