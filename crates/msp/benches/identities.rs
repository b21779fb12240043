//! Identity validation: a full chain check versus a cache hit.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use weft_material::cryptogen::{self, CryptogenConfig};
use weft_material::{SigningIdentity, layout, msp_dir};
use weft_msp::{Msp, MspManager, MspManagerConfig};
use weft_spec::NetworkSpec;

fn identities(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = NetworkSpec::default_network();
    cryptogen::generate(&spec, dir.path(), &CryptogenConfig::default(), &mut |_| {})
        .expect("cryptogen");
    let org_dir = layout::peer_org_dir(dir.path(), "org1.example.com");
    let config = msp_dir::load_msp_config(&org_dir.join("msp"), "Org1MSP").expect("msp config");
    let manager = MspManager::new(
        [Msp::from_config(&config).expect("msp")],
        MspManagerConfig::default(),
    );
    let user = SigningIdentity::load(
        &layout::user_dir(&org_dir, "User1", "org1.example.com").join("msp"),
        "Org1MSP",
    )
    .expect("user");
    let serialized = user.serialized();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;

    let mut group = c.benchmark_group("msp_validate");
    group.bench_function("cached", |b| {
        b.iter(|| {
            manager
                .validate(black_box(&serialized), now)
                .expect("valid")
        })
    });
    group.bench_function("uncached", |b| {
        b.iter(|| {
            manager
                .validate_uncached(black_box(&serialized), now)
                .expect("valid")
        })
    });
    group.finish();
}

criterion_group!(benches, identities);
criterion_main!(benches);
