//! Throughput of the window rules: `apply` on a realistic mix and `tick` through deadlines.
//! Run: `cargo bench --bench window -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use windowkeeper::domain::{MessageId, UnixSeconds};
use windowkeeper::window::{ContactWindows, Input, WindowConfig, WindowEvent};

const CONTACTS: usize = 1024;

fn cfg() -> WindowConfig {
    WindowConfig::new(86_400, 259_200, [14_400, 3_600, 900], false)
}

fn message(n: usize, at: i64) -> Input {
    Input::CustomerMessage {
        id: MessageId::new(format!(
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFEMkI4MkI5NzVBRAA{n}"
        )),
        at: UnixSeconds(at),
        referral: false,
    }
}

/// Per contact and round: a message that opens a window (closing the previous round's on the
/// way), one that extends it, and a duplicate of the latter.
fn apply_mix(c: &mut Criterion) {
    let cfg = cfg();
    let round_secs = 2 * cfg.service_window_secs;
    let mut inputs: Vec<[Input; 3]> = (0..CONTACTS)
        .map(|n| [message(n, 0), message(n, 60), message(n, 60)])
        .collect();
    let mut states = vec![ContactWindows::default(); CONTACTS];
    let mut out: Vec<WindowEvent> = Vec::with_capacity(16);
    let mut round = 0i64;

    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(3 * CONTACTS as u64));
    group.bench_function("apply: open, extend, duplicate", |b| {
        b.iter(|| {
            round += 1;
            let base = round * round_secs;
            let now = UnixSeconds(base + 61);
            for (state, round_inputs) in states.iter_mut().zip(inputs.iter_mut()) {
                for (input, offset) in round_inputs.iter_mut().zip([0, 60, 60]) {
                    set_time(input, base + offset);
                    state.apply(input, now, &cfg, &mut out);
                }
                black_box(&out);
                out.clear();
            }
        });
    });
    group.finish();
}

/// Moves a pre-built input to another instant, so the loop allocates only what `apply` does.
fn set_time(input: &mut Input, secs: i64) {
    if let Input::CustomerMessage { at, .. } = input {
        *at = UnixSeconds(secs);
    }
}

fn tick_through_deadlines(c: &mut Criterion) {
    let cfg = cfg();
    let open_states = || {
        let mut out = Vec::new();
        (0..CONTACTS)
            .map(|n| {
                let mut state = ContactWindows::default();
                state.apply(&message(n, 0), UnixSeconds(1), &cfg, &mut out);
                state
            })
            .collect::<Vec<_>>()
    };
    // Three warnings and the close: four transitions per contact.
    let deadlines = [72_000, 82_800, 85_500, 86_400].map(UnixSeconds);
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(4 * CONTACTS as u64));
    group.bench_function("tick: warnings and close", |b| {
        let mut out: Vec<WindowEvent> = Vec::with_capacity(16);
        b.iter_batched_ref(
            open_states,
            |states| {
                for state in states.iter_mut() {
                    for deadline in deadlines {
                        state.tick(deadline, &cfg, &mut out);
                    }
                    black_box(&out);
                    out.clear();
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.throughput(Throughput::Elements(CONTACTS as u64));
    group.bench_function("tick: nothing due", |b| {
        let mut states = open_states();
        let mut out: Vec<WindowEvent> = Vec::new();
        b.iter(|| {
            for state in states.iter_mut() {
                state.tick(UnixSeconds(3_600), &cfg, &mut out);
            }
            black_box(&out);
        });
    });
    group.finish();
}

criterion_group!(benches, apply_mix, tick_through_deadlines);
criterion_main!(benches);
