//! `ws-load URL CONNECTIONS SECONDS [MESSAGE_BYTES]`: opens CONNECTIONS
//! websockets to URL, and on each sends a text message and waits for its
//! echo, again and again for SECONDS. Prints one line
//! `BENCHJSON {...}` in the shape benches/lua/status.lua gives wrk's
//! results: messages echoed, duration, p50/p99 round-trip in µs, errors.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct Args {
    url: String,
    connections: usize,
    duration: Duration,
    message_bytes: usize,
}

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() < 3 || argv.len() > 4 {
        return Err("usage: ws-load URL CONNECTIONS SECONDS [MESSAGE_BYTES]".into());
    }
    let number = |i: usize, what: &str| -> Result<f64, String> {
        argv[i]
            .parse::<f64>()
            .ok()
            .filter(|n| *n > 0.0)
            .ok_or_else(|| {
                format!(
                    "ws-load: {what} must be a positive number, not {:?}",
                    argv[i]
                )
            })
    };
    Ok(Args {
        url: argv[0].clone(),
        connections: number(1, "CONNECTIONS")? as usize,
        duration: Duration::from_secs_f64(number(2, "SECONDS")?),
        message_bytes: if argv.len() == 4 {
            number(3, "MESSAGE_BYTES")? as usize
        } else {
            13
        },
    })
}

/// What one connection measured: round-trip times in µs, and whether it
/// failed (connect, send, receive, or an echo that differs).
struct Outcome {
    round_trips: Vec<u32>,
    error: bool,
}

async fn drive(url: String, message: String, until: Instant) -> Outcome {
    let mut outcome = Outcome {
        round_trips: Vec::new(),
        error: false,
    };
    let mut socket = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok((socket, _)) => socket,
        Err(_) => {
            outcome.error = true;
            return outcome;
        }
    };
    while Instant::now() < until {
        let sent = Instant::now();
        if socket.send(Message::text(message.clone())).await.is_err() {
            outcome.error = true;
            break;
        }
        match socket.next().await {
            Some(Ok(Message::Text(echo))) if echo.as_str() == message => {
                let micros = sent.elapsed().as_micros();
                outcome
                    .round_trips
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            _ => {
                outcome.error = true;
                break;
            }
        }
    }
    let _ = socket.close(None).await;
    outcome
}

fn percentile(sorted: &[u32], fraction: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    // Two load threads, as benches/bench.py gives wrk.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ws-load: cannot start the runtime: {error}");
            std::process::exit(1);
        }
    };
    let message = "x".repeat(args.message_bytes);
    let started = Instant::now();
    let until = started + args.duration;
    let outcomes = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(drive(args.url.clone(), message.clone(), until)))
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.unwrap_or(Outcome {
                round_trips: Vec::new(),
                error: true,
            }));
        }
        outcomes
    });
    let elapsed = started.elapsed();
    let errors = outcomes.iter().filter(|o| o.error).count();
    let mut all: Vec<u32> = outcomes.into_iter().flat_map(|o| o.round_trips).collect();
    all.sort_unstable();
    println!(
        "BENCHJSON {{\"requests\": {}, \"duration_us\": {}, \"p50\": {}, \"p99\": {}, \"non2xx\": 0, \"errors\": {}}}",
        all.len(),
        elapsed.as_micros(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        errors
    );
}
