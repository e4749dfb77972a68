//! A part's log file: appended to (a restart never loses the lines that explain the crash),
//! rotated by size (`NAME.log` → `NAME.log.1` → … `NAME.log.N`), with terminal colour codes
//! taken out, and its last lines kept in memory so `up` can print them when the part stops.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes read from a part's output at once.
const COPY_BUFFER: usize = 64 * 1024;
/// Lines kept for [`LogFile::last_lines`].
const TAIL_LINES: usize = 400;

/// Rotation settings.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// A file is rotated once it grows past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` … `.keep`).
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            keep: 3,
        }
    }
}

#[derive(Debug)]
struct Inner {
    file: File,
    written: u64,
    tail: VecDeque<String>,
}

/// A shared, appending, rotating log file.
#[derive(Debug, Clone)]
pub struct LogFile {
    path: PathBuf,
    rotation: Rotation,
    inner: Arc<Mutex<Inner>>,
}

impl LogFile {
    /// Opens `path` for appending (rotating it first when already past the size).
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        let written = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if written >= rotation.max_bytes {
            rotate(path, rotation.keep)?;
        }
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            rotation,
            inner: Arc::new(Mutex::new(Inner {
                file,
                written,
                tail: VecDeque::new(),
            })),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (colour codes removed), rotating when the file is full.
    pub fn write_line(&self, line: &str) {
        self.write_lines(std::iter::once(line));
    }

    /// Appends lines in one write (colour codes removed), rotating first when the file is full.
    pub fn write_lines<'a>(&self, lines: impl IntoIterator<Item = &'a str>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.written >= self.rotation.max_bytes
            && rotate(&self.path, self.rotation.keep).is_ok()
            && let Ok(file) = open_append(&self.path)
        {
            inner.file = file;
            inner.written = 0;
        }
        let mut out = String::new();
        for line in lines {
            let clean = strip_ansi(line);
            out.push_str(&clean);
            out.push('\n');
            if inner.tail.len() == TAIL_LINES {
                inner.tail.pop_front();
            }
            inner.tail.push_back(clean);
        }
        if inner.file.write_all(out.as_bytes()).is_ok() {
            inner.written += out.len() as u64;
        }
    }

    /// The last lines written since the part last started, oldest first.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let skip = inner.tail.len().saturating_sub(n);
        inner.tail.iter().skip(skip).cloned().collect()
    }

    /// Forgets the kept lines (a new start of the part).
    pub fn clear_tail(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.tail.clear();
        }
    }

    /// What explains a stop: from the last `Error:`/`error:` line or panic message on (a stack
    /// backtrace after it left out), or else the last `n` lines.
    pub fn error_lines(&self, n: usize) -> Vec<String> {
        let tail = self.last_lines(TAIL_LINES);
        let is_start = |l: &String| {
            let t = l.trim_start();
            t.starts_with("Error:")
                || t.starts_with("error:")
                || t.contains("panicked at")
                || t.contains(" ERROR ")
        };
        let Some(start) = tail.iter().rposition(is_start) else {
            let skip = tail.len().saturating_sub(n);
            return tail.into_iter().skip(skip).collect();
        };
        tail.into_iter()
            .skip(start)
            .take_while(|l| {
                !l.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("stack backtrace:")
            })
            .filter(|l| !l.trim().is_empty())
            .take(n)
            .collect()
    }

    /// Copies `stream` line by line into the file on a thread of its own, until it closes.
    pub fn copy_from(
        &self,
        stream: impl Read + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let log = self.clone();
        std::thread::Builder::new()
            .name("log-copy".into())
            .spawn(move || {
                // Whatever is available is written at once, whole lines only (a line longer
                // than the buffer is cut), so a busy part costs one write per read.
                let mut reader = BufReader::with_capacity(COPY_BUFFER, stream);
                let mut pending: Vec<u8> = Vec::new();
                loop {
                    let chunk = match reader.fill_buf() {
                        Ok([]) | Err(_) => break,
                        Ok(chunk) => chunk,
                    };
                    let n = chunk.len();
                    pending.extend_from_slice(chunk);
                    reader.consume(n);
                    let cut = match pending.iter().rposition(|b| *b == b'\n') {
                        Some(at) => at + 1,
                        None if pending.len() >= COPY_BUFFER => pending.len(),
                        None => continue,
                    };
                    let complete: Vec<u8> = pending.drain(..cut).collect();
                    log.write_lines(lines(&String::from_utf8_lossy(&complete)));
                }
                if !pending.is_empty() {
                    log.write_lines(lines(&String::from_utf8_lossy(&pending)));
                }
            })
    }
}

/// The lines of a chunk, without their line ends.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.trim_end_matches('\r'))
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `NAME.log.{keep-1}` → `.keep`, …, `NAME.log` → `.1`.
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    for n in (1..keep).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

/// Removes ANSI escape sequences (CSI `ESC [ … letter` and two-byte `ESC x`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_removed() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m up"),
            "2026  INFO up"
        );
        assert_eq!(strip_ansi("plain é"), "plain é");
    }

    #[test]
    fn logs_are_appended_across_opens_and_rotated_by_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("part.log");
        let rotation = Rotation {
            max_bytes: 64,
            keep: 2,
        };
        LogFile::open(&path, rotation)
            .expect("open")
            .write_line("first start");
        let log = LogFile::open(&path, rotation).expect("reopen");
        log.write_line("second start");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "first start\nsecond start\n");
        for i in 0..10 {
            log.write_line(&format!("line {i} of some length"));
        }
        assert!(dir.path().join("part.log.1").exists());
        assert!(dir.path().join("part.log.2").exists());
        assert!(!dir.path().join("part.log.3").exists());
        assert!(std::fs::metadata(&path).expect("meta").len() <= 64 + 32);
        assert_eq!(log.last_lines(1), vec!["line 9 of some length".to_owned()]);
    }

    #[test]
    fn error_lines_start_at_the_error_and_leave_the_backtrace_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::open(&dir.path().join("api.log"), Rotation::default()).expect("open");
        for line in [
            "starting",
            "Error: DATABASE_URL: not a URL",
            "",
            "Stack backtrace:",
            "   0: main",
        ] {
            log.write_line(line);
        }
        assert_eq!(log.error_lines(12), ["Error: DATABASE_URL: not a URL"]);
        let quiet =
            LogFile::open(&dir.path().join("quiet.log"), Rotation::default()).expect("open");
        quiet.write_line("one");
        quiet.write_line("two");
        assert_eq!(quiet.error_lines(1), ["two"]);
    }

    #[test]
    fn a_stream_is_copied_whole_lines_at_a_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("copy.log");
        let log = LogFile::open(&path, Rotation::default()).expect("open");
        let input: &[u8] = b"one\r\n\x1b[31mtwo\x1b[0m\nthree without end";
        log.copy_from(input)
            .expect("thread")
            .join()
            .expect("copied");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "one\ntwo\nthree without end\n"
        );
    }
}
