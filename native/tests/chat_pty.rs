//! Interactive chat through a pseudo-terminal: two turns, Ctrl-C stops an answer without
//! ending the program, `/exit` quits with status 0. Uses the bundled tiny DeepSeek-V3 model.

use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

fn model() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/tiny-deepseek-v3.gguf");
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// Everything the terminal printed so far, accumulated from a reader thread.
struct Screen {
    rx: Receiver<Vec<u8>>,
    text: String,
}

impl Screen {
    /// Waits until the output after `from` contains `needle`; returns the new length.
    fn wait_for(&mut self, needle: &str, from: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.text[from.min(self.text.len())..].find(needle) {
                return from + i + needle.len();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {needle:?}; screen so far:\n{}",
                self.text
            );
            if let Ok(chunk) = self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                self.text.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
    }
}

/// `sluice run -m <bundled model> ARGS` on a new pseudo-terminal: the child, what it prints
/// (read on a thread), and its keyboard.
fn spawn_chat(
    args: &[&str],
) -> (
    Box<dyn portable_pty::Child + Send + Sync>,
    Screen,
    Box<dyn Write + Send>,
) {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["run", "-m", model().to_str().unwrap()]);
    cmd.args(args);
    let child = pair.slave.spawn_command(cmd).expect("spawn sluice");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let writer = pair.master.take_writer().expect("writer");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let screen = Screen {
        rx,
        text: String::new(),
    };
    (child, screen, writer)
}

#[test]
fn two_turns_then_exit() {
    let (mut child, mut screen, mut writer) = spawn_chat(&["--temp", "0", "-n", "6", "-t", "2"]);
    let t = Duration::from_secs(120);
    let mut at = screen.wait_for("chat mode", 0, t);
    at = screen.wait_for("> ", at, t);
    writer
        .write_all(b"Create a Flappy Bird game in Python.\r")
        .unwrap();
    writer.flush().unwrap();
    // The answer ends with a newline and the next prompt.
    let first_answer_start = at;
    at = screen.wait_for("\n> ", at, t);
    let first = screen.text[first_answer_start..at].to_string();
    writer.write_all(b"And now in Rust?\r").unwrap();
    writer.flush().unwrap();
    let second_start = at;
    at = screen.wait_for("\n> ", at, t);
    let second = screen.text[second_start..at].to_string();
    writer.write_all(b"/exit\r").unwrap();
    writer.flush().unwrap();
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "exit status {status:?}; screen:\n{}",
        screen.text
    );
    // Both turns produced text beyond the echoed input.
    for (turn, text) in [(1, &first), (2, &second)] {
        let produced = text.lines().skip(1).map(str::trim).collect::<String>();
        assert!(
            !produced.is_empty(),
            "turn {turn} produced no answer; screen:\n{}",
            screen.text
        );
    }
}

#[test]
fn ctrl_c_stops_the_answer_not_the_program() {
    // No token limit and no end-of-text: the answer runs until Ctrl-C (or the context fills).
    let (mut child, mut screen, mut writer) =
        spawn_chat(&["--temp", "0", "--ignore-eos", "-c", "16384", "-t", "2"]);
    let t = Duration::from_secs(120);
    let mut at = screen.wait_for("> ", 0, t);
    writer.write_all(b"Tell me a long story.\r").unwrap();
    writer.flush().unwrap();
    // Let the answer start, then interrupt it.
    at = screen.wait_for("story.", at, t);
    std::thread::sleep(Duration::from_millis(300));
    writer.write_all(&[3]).unwrap();
    writer.flush().unwrap();
    at = screen.wait_for("[stopped]", at, t);
    screen.wait_for("> ", at, t);
    writer.write_all(b"/exit\r").unwrap();
    writer.flush().unwrap();
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "exit status {status:?}; screen:\n{}",
        screen.text
    );
}
