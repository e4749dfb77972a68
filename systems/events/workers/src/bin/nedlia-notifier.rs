//! nedlia-notifier as its own Lambda binary (configured from the environment).

fn main() -> std::process::ExitCode {
    events_workers::entry::main_of(events_workers::Kind::Notifier)
}
