//! A hostile network: while a wc job runs on TCP (TLS), clients send garbage, try wrong
//! tokens, speak plaintext to the TLS port, send malformed and oversized frames behind a
//! valid handshake (on the control, heartbeat and data planes), hold idle connections, and a
//! rogue client that holds the token speaks the protocol but lies. The coordinator must stay up, bounded in memory, and
//! finish the job correctly.

use mr::auth::{Channel, Token};
use mr::ids::{Attempt, RequestId, TaskId};
use mr::rpc::{Addr, ReportReply, TaskReply, WorkerInfo};
use mr::task::{Location, TaskResult, TaskSpec, TaskStats};
use mr_tests::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// The job's token (given to the coordinator and workers as MR_TOKEN).
const TOKEN: &str = "hostile-test-token";

/// A length-delimited frame header as the transport reads it (4 bytes, big-endian).
fn frame(len: u32, body: &[u8]) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// Speaks the real protocol, but takes a task and never does it, and reports lies.
/// Returns how many of its lies were refused.
fn rogue_client(addr: &str, n_reduce: usize) -> usize {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let addr: Addr = addr.parse().unwrap();
        let guard = mr::secure::Guard::tls(Token::new(TOKEN)).unwrap();
        let client = mr::rpc::connect(&addr, &guard, Channel::Control)
            .await
            .expect("rogue connect");
        let ctx = tarpc::context::current;
        let reg = client
            .register(
                ctx(),
                RequestId(1),
                WorkerInfo {
                    host: "rogue".into(),
                    pid: 1,
                    data_addr: None,
                },
            )
            .await
            .expect("register");
        let me = reg.worker;
        // Heartbeats have a connection of their own, served apart from the rest.
        let beats = mr::rpc::connect(&addr, &guard, Channel::Heartbeat)
            .await
            .expect("rogue heartbeat connect");
        let d = beats
            .heartbeat(ctx(), RequestId(7), me)
            .await
            .expect("heartbeat");
        assert_eq!(d, mr::rpc::Directive::Continue);
        let a = match client
            .get_task(ctx(), RequestId(2), me)
            .await
            .expect("get_task")
        {
            TaskReply::Task(a) => a,
            other => panic!("rogue expected a task, got {other:?}"),
        };
        assert!(matches!(a.spec, TaskSpec::Map { .. }), "{a:?}");
        let bogus_map = |_: usize| TaskResult::Map {
            output: mr::task::MapOutputs::Dir("/nonexistent".into()),
            stats: TaskStats::default(),
        };
        // The result of a reduce, for a map task.
        let wrong_shape = TaskResult::Reduce {
            output: Location::Path("/nonexistent/mr-out-0".into()),
            stats: TaskStats::default(),
        };
        let mut refused = 0;
        // A completion for an attempt that was never handed out.
        let r = client
            .report(
                ctx(),
                RequestId(3),
                me,
                a.task,
                Attempt(a.attempt.0 + 7),
                Ok(bogus_map(n_reduce)),
            )
            .await
            .expect("report");
        refused += matches!(r.reply, ReportReply::Refused(_)) as usize;
        // The right attempt, but a result of the wrong shape.
        let r = client
            .report(ctx(), RequestId(4), me, a.task, a.attempt, Ok(wrong_shape))
            .await
            .expect("report");
        refused += matches!(r.reply, ReportReply::Refused(_)) as usize;
        // A task that does not exist.
        let r = client
            .report(
                ctx(),
                RequestId(5),
                me,
                TaskId::map(99_999),
                a.attempt,
                Ok(bogus_map(n_reduce)),
            )
            .await
            .expect("report");
        refused += matches!(r.reply, ReportReply::Refused(_)) as usize;
        // Someone else's worker id.
        let r = client
            .report(
                ctx(),
                RequestId(6),
                mr::ids::WorkerId::new(me.restart, me.number + 1000),
                a.task,
                a.attempt,
                Ok(bogus_map(n_reduce)),
            )
            .await
            .expect("report");
        refused += matches!(r.reply, ReportReply::Refused(_)) as usize;
        // Then it goes silent, holding map a.task until the worker timeout takes it back.
        refused
    })
}

#[test]
fn the_coordinator_survives_a_hostile_network() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = dir.command("coordinator");
    cmd.env("MR_TOKEN", TOKEN)
        .args([
            "--addr",
            &addr,
            "--worker-timeout",
            "1",
            "--task-timeout",
            "5",
            "--report",
            "report.json",
        ])
        .args(&inputs);
    let mut c = dir.spawn("coordinator", cmd);
    wait_until(Duration::from_secs(10), "the coordinator to listen", || {
        assert!(
            c.try_wait().is_none(),
            "coordinator exited:\n{}",
            c.stderr()
        );
        TcpStream::connect(&addr).is_ok()
    });

    let token = Token::new(TOKEN);
    let mut held: Vec<Box<dyn mr::secure::BlockingIo>> = Vec::new();
    let connect = || Box::new(TcpStream::connect(&addr).expect("connect"));
    // Random bytes, several connections' worth: not even a handshake.
    for seed in 1..=4 {
        held.push(Box::new(send_raw(&addr, &noise(64 << 10, seed))));
    }
    // Wrong tokens, on every channel: refused before anything is served.
    for channel in [Channel::Control, Channel::Heartbeat, Channel::Data] {
        let guess = mr::secure::Guard::tls(Token::new("guess")).unwrap();
        let r = guess.client_blocking(TcpStream::connect(&addr).unwrap(), channel);
        assert!(
            matches!(
                r,
                Err(mr::secure::HandshakeError::Auth(
                    mr::auth::AuthError::Refused
                ))
            ),
            "{:?}",
            r.err()
        );
    }
    // The right token in plaintext, to the TLS port: refused, said so.
    let plain = mr::secure::Guard::insecure_plaintext(token.clone());
    let r = plain.client_blocking(TcpStream::connect(&addr).unwrap(), Channel::Control);
    assert!(r.is_err(), "a plaintext client was let in");
    // Behind a valid handshake, on the control plane: a frame cut short (the header
    // promises 1000 bytes, 10 arrive), once left open, once closed half-way.
    let control = |bytes: &[u8]| send_after_handshake(&addr, &token, Channel::Control, bytes);
    held.push(control(&frame(1000, b"{\"Request\"")));
    drop(control(&frame(1000, b"{\"Request\"")));
    // A length prefix of 0xFFFFFFFF (4 GiB), and the largest allowed frame announced
    // with only 1 MiB of it sent.
    held.push(control(&frame(u32::MAX, b"xxxx")));
    held.push(control(&frame((16 << 20) - 1, &noise(1 << 20, 99))));
    // Whole frames that are not JSON, and JSON that is not a request.
    held.push(control(&frame(5, b"hello")));
    held.push(control(&frame(7, b"{\"x\":1}")));
    held.push(control(&frame(0, b"")));
    // The same on the heartbeat connection, which its own thread serves.
    let beats = |bytes: &[u8]| send_after_handshake(&addr, &token, Channel::Heartbeat, bytes);
    held.push(beats(&frame(u32::MAX, b"xxxx")));
    held.push(beats(&frame(5, b"hello")));
    held.push(beats(&frame(1000, b"{\"Request\"")));
    // The same on the data plane, and requests for files that are not job inputs.
    let data = |bytes: &[u8]| send_after_handshake(&addr, &token, Channel::Data, bytes);
    held.push(data(&frame(u32::MAX, b"xxxx")));
    held.push(data(&frame(5, b"hello")));
    held.push(data(&frame(1000, b"{")));
    for path in ["/etc/passwd", "Cargo.toml"] {
        let split = mr::task::Split {
            path: path.into(),
            offset: 0,
            len: 100,
        };
        let mut s = secured(&addr, &token, Channel::Data);
        let req = serde_json::to_vec(&mr::data::DataRequest::Split(split)).unwrap();
        s.write_all(&frame(req.len() as u32, &req)).unwrap();
        s.flush().unwrap();
        // A frame: a 4-byte length, then the typed reply.
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut reply).unwrap();
        let parsed: Option<mr::data::DataReply> = serde_json::from_slice(&reply).ok();
        assert!(
            matches!(
                parsed,
                Some(mr::data::DataReply::Refused(mr::data::Refusal::NotAnInput(
                    _
                )))
            ),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    // A connection that never speaks.
    held.push(connect());
    // 500 idle connections.
    for _ in 0..500 {
        held.push(connect());
    }
    // Pipelined junk on one connection, byte by byte.
    let mut slow = TcpStream::connect(&addr).unwrap();
    for b in frame(40, b"[1,2,3]") {
        let _ = slow.write_all(&[b]);
    }
    held.push(Box::new(slow));

    assert!(c.try_wait().is_none(), "coordinator died:\n{}", c.stderr());
    let refused = rogue_client(&addr, 10);
    assert_eq!(refused, 4, "every lie must be refused");
    assert!(c.try_wait().is_none(), "coordinator died:\n{}", c.stderr());

    let started = Instant::now();
    let mut workers: Vec<Proc> = (0..2)
        .map(|_| {
            let mut w = dir.command("worker");
            w.env("MR_TOKEN", TOKEN)
                .args(["--coordinator", &addr])
                .arg(app("wc"));
            dir.spawn("worker", w)
        })
        .collect();
    // More junk while the job runs.
    for seed in 10..20 {
        held.push(Box::new(send_raw(&addr, &noise(4096, seed))));
    }
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
        assert_told(w, "Succeeded");
    }
    let elapsed = started.elapsed();
    assert_same_lines(&dir.output_lines(), &want);
    let err = c.stderr();
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains(TOKEN), "the token leaked into the log");
    // The three wrong tokens were refused and logged with the peer's address.
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("authentication failed") && l.contains("peer=127.0.0.1:"))
            .count(),
        3,
        "{}",
        tail(&err, 60)
    );
    // The plaintext client was told apart from the TLS ones, with its address.
    assert!(
        err.lines()
            .any(|l| l.contains("does not speak TLS") && l.contains("peer=127.0.0.1:")),
        "{}",
        tail(&err, 60)
    );
    // The rogue's map was taken back when it fell silent and done by a worker, and
    // each of its four lies was refused.
    let r = dir.report();
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert_eq!(r["events"]["refused"], 4, "{r:#}");
    assert!(r["events"]["revoked"].as_u64() >= Some(1), "{r:#}");
    assert!(r["map"]["reassigned_tasks"].as_u64() >= Some(1), "{r:#}");
    let rss_mib = c.max_rss_kib() / 1024;
    eprintln!("coordinator peak RSS: {rss_mib} MiB; job under attack took {elapsed:?}");
    assert!(rss_mib < 200, "coordinator peak RSS {rss_mib} MiB");
    assert!(
        elapsed < Duration::from_secs(30),
        "the job took {elapsed:?} under attack"
    );
    drop(held);
}
