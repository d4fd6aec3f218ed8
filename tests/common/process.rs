//! A child process watched as hostile-input tests need: its peak resident memory (from `wait4`,
//! the kernel's own count), its output, and a deadline after which it is killed, so a hang fails
//! the test instead of stalling it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A started child: its stdout arrives line by line on `lines` (and is kept for the end).
pub struct Watched {
    pid: i32,
    started: Instant,
    lines: Receiver<String>,
    stdout: std::thread::JoinHandle<Vec<String>>,
    stderr: std::thread::JoinHandle<String>,
}

/// How a watched child ended.
#[derive(Debug)]
pub struct Ended {
    /// The exit code, or None when a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The largest resident set the child had, in bytes.
    pub peak_rss_bytes: u64,
    pub seconds: f64,
    /// Killed at the deadline.
    pub timed_out: bool,
}

impl Watched {
    /// Starts `command` with stdout and stderr piped.
    pub fn spawn(command: &mut Command) -> Watched {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the child starts");
        let pid = child.id() as i32;
        let (send, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = send.send(line.clone());
                all.push(line);
            }
            all
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        // The child is reaped by `wait4` in `finish`, never through `child`.
        drop(child);
        Watched { pid, started: Instant::now(), lines, stdout, stderr }
    }

    /// The first stdout line that contains `needle`, waiting at most `timeout`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, not yet reaped (reaping happens in `finish`).
        unsafe { libc::kill(self.pid, signal) };
    }

    /// Sends `signal` and waits (up to `timeout`) until the child has taken it: until it is no
    /// longer pending in the child's process-wide set (`ShdPnd` in /proc), so a second signal of
    /// the same number is not merged into it, however loaded the machine.
    pub fn signal_taken(&self, signal: i32, timeout: Duration) {
        self.signal(signal);
        let mask = 1u64 << (signal - 1);
        let started = Instant::now();
        let pending = || {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
            status
                .lines()
                .find_map(|line| line.strip_prefix("ShdPnd:"))
                .and_then(|bits| u64::from_str_radix(bits.trim(), 16).ok())
                .is_some_and(|bits| bits & mask != 0)
        };
        while pending() {
            assert!(started.elapsed() < timeout, "the child never took signal {signal}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the child to end, killing it if it runs past `timeout` from its start.
    pub fn finish(self, timeout: Duration) -> Ended {
        let pid = self.pid;
        let (done, finished) = mpsc::channel::<()>();
        let left = timeout.saturating_sub(self.started.elapsed());
        let watchdog = std::thread::spawn(move || {
            let expired = finished.recv_timeout(left).is_err();
            if expired {
                // SAFETY: as in `signal`: the child is reaped only after this thread is told.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            expired
        });
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child, with pointers to live locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(reaped, pid, "wait4 failed: {}", std::io::Error::last_os_error());
        let seconds = self.started.elapsed().as_secs_f64();
        let _ = done.send(());
        let timed_out = watchdog.join().unwrap();
        let exited = libc::WIFEXITED(status);
        Ended {
            code: exited.then(|| libc::WEXITSTATUS(status)),
            signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
            stdout: self.stdout.join().unwrap().join("\n"),
            stderr: self.stderr.join().unwrap(),
            // Linux reports kilobytes.
            peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
            seconds,
            timed_out,
        }
    }
}

/// Runs `command` to its end (killed after `timeout`).
pub fn run_watched(command: &mut Command, timeout: Duration) -> Ended {
    Watched::spawn(command).finish(timeout)
}
