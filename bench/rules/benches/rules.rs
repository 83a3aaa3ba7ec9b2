//! Target-rule evaluation: how long one compiled rule takes against one prepared
//! device, and what the steps around it (parsing, compiling, preparing a device,
//! bucketing) cost. Results go to `bench/README.md`, "Target rules".
//!
//! Every benchmark runs twice: `wall/...` measures elapsed time (criterion's
//! default), `cpu/...` the benchmark thread's CPU time. On a shared machine the
//! second barely moves when other work runs, because time spent waiting for a
//! CPU is not counted.

use std::hint::black_box;
use std::time::Duration;

use atoll_core::bucketing::{bucket, BucketSalt};
use atoll_core::rules::{DeviceAttributes, DeviceContext, Env, MemoryLists, Rule, RuleSet};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        cpu_time::ThreadTime::now()
    }

    fn end(&self, start: Self::Intermediate) -> Duration {
        start.elapsed()
    }

    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Formats nanoseconds like criterion's wall-time formatter (which is private).
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (divisor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e3, "µs"),
            t if t < 1e9 => (1e6, "ms"),
            _ => (1e9, "s"),
        };
        for value in values {
            *value /= divisor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        _throughput: &Throughput,
        _values: &mut [f64],
    ) -> &'static str {
        // No benchmark here declares a throughput.
        "ns"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Four conditions including a percentage: the shape of most switches and
/// canary releases.
const TYPICAL: &str =
    "app_version >= 2.1 and platform in (android, ios) and channel != test and percent(50)";

/// The example: a group with a percentage, or an uploaded list.
const WITH_LIST: &str =
    "app_version >= 2.1 and platform in (android, ios) and percent(5) or user in list:beta-testers";

/// Five conditions with ranges, a long value list (a hash set) and a by-user
/// percentage.
const HEAVY: &str = "app_version in (1.2.x, \">=2.0 <2.5\", 3.0.1) and os_version >= 10 \
     and region in (cn-11, cn-12, cn-13, cn-14, cn-15, cn-21, cn-22, cn-23, cn-31, cn-32, cn-33) \
     and not model in (\"Pixel 3\", \"Pixel 4\") and percent(12.5, user)";

fn device(device_id: &str, user: Option<&str>) -> DeviceContext {
    DeviceContext::new(DeviceAttributes {
        device_id: device_id.into(),
        user_id: user.map(str::to_string),
        app_version: Some("2.3.1".into()),
        platform: Some("Android".into()),
        os: Some("Android".into()),
        os_version: Some("14".into()),
        model: Some("Pixel 8".into()),
        channel: Some("play".into()),
        region: Some("CN-31".into()),
        city: Some("Shanghai".into()),
        network: Some("wifi".into()),
        locale: Some("zh-CN".into()),
    })
}

/// A device id whose bucket under `salt` is inside (or outside) `limit`
/// thousandths, so a benchmark measures a known path through the rule.
fn device_id(salt: &str, inside: bool, limit: u32) -> String {
    (0..)
        .map(|n| format!("8c1e6f1a-2b7d-4c55-9a0e-{n:012}"))
        .find(|id| (bucket(salt, id) < limit) == inside)
        .expect("some id falls on each side")
}

fn evaluation<M: Measurement>(c: &mut Criterion<M>, clock: &str) {
    let salt = "sw_new_checkout";
    let mut lists = MemoryLists::new();
    lists
        .insert("beta-testers", (0..100_000).map(|n| format!("user-{n}")))
        .unwrap();
    let env = Env::new(&lists, &atoll_core::rules::NoSegments);

    let typical = Rule::parse(TYPICAL).unwrap().compile(salt).unwrap();
    let inside = device(&device_id(salt, true, 50_000), None);
    let outside = device(&device_id(salt, false, 50_000), None);
    let old = DeviceContext::new(DeviceAttributes {
        app_version: Some("1.9".into()),
        ..inside.attributes().clone()
    });
    assert!(typical.matches(&inside, &env) && !typical.matches(&outside, &env));
    let mut group = c.benchmark_group(format!("{clock}/evaluate"));
    group.bench_function("typical: 4 conditions, all checked, in", |b| {
        b.iter(|| typical.matches(black_box(&inside), &env))
    });
    group.bench_function("typical: 4 conditions, all checked, out", |b| {
        b.iter(|| typical.matches(black_box(&outside), &env))
    });
    group.bench_function("typical: first condition fails", |b| {
        b.iter(|| typical.matches(black_box(&old), &env))
    });

    let with_list = Rule::parse(WITH_LIST).unwrap().compile(salt).unwrap();
    let tester = device(&device_id(salt, false, 5_000), Some("user-4242"));
    assert!(with_list.matches(&tester, &env));
    group.bench_function("issue example: percentage misses, list of 100k hits", |b| {
        b.iter(|| with_list.matches(black_box(&tester), &env))
    });

    let heavy = Rule::parse(HEAVY).unwrap().compile(salt).unwrap();
    let user = (0..)
        .map(|n| format!("user-{n}"))
        .find(|id| bucket(salt, id) < 12_500)
        .unwrap();
    let heavy_device = device("d", Some(&user));
    assert!(heavy.matches(&heavy_device, &env));
    group.bench_function("heavy: ranges, 11-value set, not, by-user percent", |b| {
        b.iter(|| heavy.matches(black_box(&heavy_device), &env))
    });

    // A switch with ten targeted values of which none matches: the worst case of
    // first-match-wins.
    let mut set = RuleSet::new(0u32);
    for index in 0..10 {
        set.rules.push(atoll_core::rules::TargetedValue {
            when: Rule::parse(&format!(
                "app_version >= {}.0 and channel in (c{index}, d{index}) and percent(50)",
                index + 1
            ))
            .unwrap(),
            value: index,
        });
    }
    let set = set.compile(salt).unwrap();
    let nobody = device(&device_id(salt, true, 50_000), None);
    assert_eq!(*set.evaluate(&nobody, &env), 0);
    group.bench_function("rule set: 10 rules, none matches", |b| {
        b.iter(|| *set.evaluate(black_box(&nobody), &env))
    });
    group.finish();
}

fn around<M: Measurement>(c: &mut Criterion<M>, clock: &str) {
    let mut group = c.benchmark_group(format!("{clock}/around"));
    group.bench_function("parse typical text", |b| {
        b.iter(|| Rule::parse(black_box(TYPICAL)).unwrap())
    });
    let rule = Rule::parse(TYPICAL).unwrap();
    let json = rule.to_json();
    group.bench_function("read typical JSON (from a Value)", |b| {
        b.iter(|| Rule::from_json(black_box(&json)).unwrap())
    });
    group.bench_function("compile typical", |b| {
        b.iter(|| black_box(&rule).compile("sw_new_checkout").unwrap())
    });
    let attributes = device("8c1e6f1a-2b7d-4c55-9a0e-0d6f7a1b2c3d", Some("user-1"))
        .attributes()
        .clone();
    group.bench_function("prepare a device context", |b| {
        b.iter(|| DeviceContext::new(black_box(attributes.clone())))
    });
    let salt = BucketSalt::new("sw_new_checkout");
    group.bench_function("bucket (prepared salt, 36-char id)", |b| {
        b.iter(|| salt.bucket(black_box("8c1e6f1a-2b7d-4c55-9a0e-0d6f7a1b2c3d")))
    });
    group.bench_function("bucket (salt and id joined each time)", |b| {
        b.iter(|| {
            bucket(
                black_box("sw_new_checkout"),
                black_box("8c1e6f1a-2b7d-4c55-9a0e-0d6f7a1b2c3d"),
            )
        })
    });
    group.finish();
}

fn wall(c: &mut Criterion<WallTime>) {
    evaluation(c, "wall");
    around(c, "wall");
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    evaluation(c, "cpu");
    around(c, "cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
