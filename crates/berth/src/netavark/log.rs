//! The front end's log lines, on stderr (which podman passes straight to
//! the user's terminal), at the level podman asks for in `RUST_LOG`
//! (`netavark=LEVEL`, from `podman --log-level`; warn by default).

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

fn parse_level(s: &str) -> Option<Level> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "error" => Level::Error,
        "warn" | "warning" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        "off" => Level::Error,
        _ => return None,
    })
}

/// The level for target `netavark` in an env_logger-style filter: the
/// `netavark=` directive, else a bare level, else warn.
pub fn level_of(filter: &str) -> Level {
    let mut bare = None;
    for d in filter.split(',') {
        match d.split_once('=') {
            Some((t, l)) if t.trim() == "netavark" => {
                if let Some(l) = parse_level(l) {
                    return l;
                }
            }
            None => bare = bare.or(parse_level(d)),
            _ => {}
        }
    }
    bare.unwrap_or(Level::Warn)
}

fn level() -> Level {
    static L: OnceLock<Level> = OnceLock::new();
    *L.get_or_init(|| level_of(&std::env::var("RUST_LOG").unwrap_or_default()))
}

fn emit(l: Level, tag: &str, msg: &str) {
    if l <= level() {
        eprintln!("[{tag} netavark (berth)] {msg}");
    }
}

pub fn info(msg: &str) {
    emit(Level::Info, "INFO ", msg);
}

pub fn debug(msg: &str) {
    emit(Level::Debug, "DEBUG", msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_rust_log() {
        assert_eq!(level_of("netavark=warn"), Level::Warn);
        assert_eq!(level_of("netavark=debug"), Level::Debug);
        assert_eq!(level_of("info,netavark=trace"), Level::Trace);
        assert_eq!(level_of("debug"), Level::Debug);
        assert_eq!(level_of(""), Level::Warn);
        assert_eq!(level_of("netavark=bogus"), Level::Warn);
    }
}
