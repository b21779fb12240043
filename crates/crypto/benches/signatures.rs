//! Signing and verification rates: the physical limit on weft's throughput.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use weft_crypto::{HashedMessage, Signer, SigningKey, VerifyingKey, sha256};

/// Signs and verifies a proposal-sized message with `key`, as group `name`.
fn sign_and_verify(c: &mut Criterion, name: &str, key: &SigningKey, message: &[u8]) {
    let public = key.public_key();
    let signature = key.sign(message).expect("sign");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| {
        b.iter(|| key.sign(black_box(message)).expect("sign"))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            public
                .verify(black_box(message), black_box(&signature))
                .expect("valid")
        })
    });
    // Parsed once, as an MSP's validated identities hold their keys.
    let parsed = VerifyingKey::new(public.clone()).expect("parses");
    group.bench_function("verify_parsed", |b| {
        b.iter(|| {
            parsed
                .verify(black_box(message), black_box(&signature))
                .expect("valid")
        })
    });
    // The signature cache hashes the message once, for its entry and the check.
    let hashed = HashedMessage::new(message);
    group.bench_function("verify_parsed_prehashed", |b| {
        b.iter(|| {
            parsed
                .verify_hashed(black_box(&hashed), black_box(&signature))
                .expect("valid")
        })
    });
    group.finish();
}

fn signatures(c: &mut Criterion) {
    // A proposal-sized message.
    let message = vec![7u8; 512];

    // P-256 signatures are made low-S and checked for it (Fabric's rule).
    let p256 = SigningKey::generate_p256().expect("key");
    sign_and_verify(c, "ecdsa_p256_low_s", &p256, &message);

    // Ed25519 (`signatureAlgorithm: ed25519`).
    let pkcs8 =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .expect("ed25519 key");
    let ed25519 = SigningKey::from_der(pkcs8.as_ref()).expect("ed25519 key");
    sign_and_verify(c, "ed25519", &ed25519, &message);

    let mut group = c.benchmark_group("sha256");
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("512_bytes", |b| b.iter(|| sha256(black_box(&message))));
    group.finish();
}

criterion_group!(benches, signatures);
criterion_main!(benches);
