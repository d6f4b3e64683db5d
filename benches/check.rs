//! Policy-engine benchmark: one realistic draft of about 280 characters checked against the
//! shipped `policies/`, and a 100 KB adversarial text. The policy set is loaded once,
//! outside the timed loop. Figures and commands: `docs/performance.md`.
//!
//! ```sh
//! cargo bench --bench check
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use countersign::policy::PolicySet;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A clean reply with a link and a handle (passes; the link is ours).
const CLEAN: &str =
    "@jordan_k We're sorry your parcel hasn't arrived yet, Jordan. The courier says \
it's now due on Thursday. You can follow it at https://example.com/track \
and we'll keep an eye on it too. If it hasn't arrived by Friday, reply here or DM \
@ExampleCare and we'll sort a refund. ^MR";

/// A reply with a customer's phone number and e-mail address (blocked twice).
const PHONE_EMAIL: &str = "@sam_r Thanks Sam, we've updated your details. We'll call you \
back on 415-555-2671 between 2 and 4pm today, and we've sent the confirmation to \
sam.rivera@example.org as well. If you'd rather talk now, ring us free on (800) 555-0100 \
any time. Sorry again for the trouble! ^JT";

/// A mixed CJK, kana, emoji and Latin reply of 280 characters (weighted length well over
/// 280, so the length rule fires and maps its span back).
fn cjk_emoji() -> String {
    let unit =
        "ご不便をおかけして申し訳ありません🙏 配送状況を確認しました📦。明日までにお届けします✨ \
我们已经为您处理退款💳，请查收。감사합니다😊 ";
    let mut s = String::new();
    while s.chars().count() < 280 {
        s.push_str(unit);
    }
    s.chars().take(280).collect()
}

/// About 100 KB built to stress the engine: long digit runs with every separator, many `@`
/// and dots, repeated near-miss terms, zero-width characters and look-alike letters.
fn adversarial() -> String {
    let pieces = [
        "4012 8888 8888 1882 - 5105-1051-0510-5101 . 3782.822463.10006 ",
        "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 ",
        "123-45-678 372-41-52860 ssn 37241528 ",
        "@@@.@.@@..@a.b@c.d@e.f@@g..h@ x@y x [at] y [dot] z ",
        "fr14 2004 1010 0505 0001 3m02 607 gb82 west 1234 5698 7654 33 ",
        "sh\u{200B}i\u{200C}t\u{200D}e scunthorpe penistone cocktail assess class passing ",
        "раѕѕwоrd ΡΙΝ guаrаntее gua\u{200B}rantee ｇｕａｒａｎｔｅｅ ",
        "(((((212))))) +++44 (0)20 ---- 7946 ..... 0321 ",
        "９９９９９９９９９９９９９ ４０１２\u{200B}８８８８ ",
        "3.9%% apr% 4.5 % aer terms app1y t&  ",
        "http://x.co/ https://example.com.evil.net/a/b/c?d=e www. a.b.c.d.e.f.g ",
    ];
    let mut s = String::with_capacity(100 * 1024 + 200);
    let mut i = 0;
    while s.len() < 100 * 1024 {
        s.push_str(pieces[i % pieces.len()]);
        if i % 7 == 0 {
            s.push_str(&"0-".repeat(40));
        }
        if i % 11 == 0 {
            s.push_str(&"a.".repeat(40));
            s.push('@');
        }
        i += 1;
    }
    s
}

/// About 100 KB of distinct phone-number-like strings, each alone between words so that
/// every one is a candidate of its own: national numbers with a trunk 0 in groups (tried
/// in every configured region), international numbers with a random country code, long
/// runs that must be cut back group by group, and dotted pairs. A deterministic LCG picks
/// the digits, so the text is the same in every run.
fn adversarial_phone_numbers() -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut digit = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        char::from(b'0' + ((state >> 33) % 10) as u8)
    };
    let mut digits = |n: usize| -> String { (0..n).map(|_| digit()).collect() };
    let mut s = String::with_capacity(100 * 1024 + 100);
    let mut i = 0;
    while s.len() < 100 * 1024 {
        let piece = match i % 4 {
            0 => format!("0{} {} {}", digits(3), digits(3), digits(4)),
            1 => format!(
                "+{} {} {} {} {}",
                digits(2),
                digits(3),
                digits(3),
                digits(3),
                digits(3)
            ),
            2 => format!("0{}", digits(14)),
            _ => format!(
                "0{}.{}.{}.{}.{}.{}",
                digits(1),
                digits(2),
                digits(2),
                digits(2),
                digits(2),
                digits(2)
            ),
        };
        s.push_str(&piece);
        s.push_str(" and ");
        i += 1;
    }
    s
}

/// `PHONE_EMAIL` with `n` distinct valid US numbers in place of the customer's.
fn cold_phone_drafts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let number = format!("415-{}-{:04}", 200 + (i / 10_000) % 800, i % 10_000);
            PHONE_EMAIL.replace("415-555-2671", &number)
        })
        .collect()
}

fn policies() -> PolicySet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    match PolicySet::load(&dir) {
        Ok(set) => set,
        Err(e) => panic!("the shipped policies must load: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let set = policies();
    let cjk = cjk_emoji();
    let drafts: [(&str, &str); 3] = [
        ("clean_link_handle", CLEAN),
        ("phone_email", PHONE_EMAIL),
        ("cjk_emoji_280", &cjk),
    ];
    let mut group = c.benchmark_group("check_280");
    for (name, text) in drafts {
        group.bench_function(name, |b| b.iter(|| set.check(black_box(text))));
    }
    // The phone/e-mail draft with a customer number no check has seen before: 100,000
    // drafts, each with another valid number, checked in turn, so that nothing remembered
    // from an earlier iteration (in the engine or in the CPU's caches) can flatter the figure.
    let cold = cold_phone_drafts(100_000);
    let mut next = 0;
    group.bench_function("phone_email_cold", |b| {
        b.iter(|| {
            next = (next + 1) % cold.len();
            set.check(black_box(&cold[next]))
        })
    });
    group.finish();

    let adv = adversarial();
    let mut group = c.benchmark_group("check_adversarial");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(adv.len() as u64));
    group.bench_function("100KB", |b| b.iter(|| set.check(black_box(&adv))));
    let phones = adversarial_phone_numbers();
    group.throughput(Throughput::Bytes(phones.len() as u64));
    group.bench_function("100KB_phone_numbers", |b| {
        b.iter(|| set.check(black_box(&phones)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
