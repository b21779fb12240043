//! weft's `.proto` definitions against the descriptors Fabric publishes on PyPI
//! (`hyperledger-fabric-protos`): every message, field, enum value and rpc.

use std::process::Command;

use prost::Message;
use prost_types::FileDescriptorSet;
use weft_compat::{compat_dir, python, run};

/// Runs compare.py on a descriptor set; returns (success, stdout).
fn compare(set: &FileDescriptorSet) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("weft.desc");
    std::fs::write(&path, set.encode_to_vec()).expect("write descriptor set");
    let python = python().expect("python venv");
    let output = run(Command::new(python)
        .arg(compat_dir().join("descriptors/compare.py"))
        .arg(&path))
    .expect("run compare.py");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some_and(|c| c == 0 || c == 1),
        "compare.py crashed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    (output.status.success(), stdout)
}

fn weft_descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(weft_protos::FILE_DESCRIPTOR_SET)
        .expect("weft's descriptor set decodes")
}

#[test]
fn every_weft_definition_matches_fabric() {
    let (ok, report) = compare(&weft_descriptors());
    println!("{report}");
    assert!(ok, "weft's protos differ from Fabric's:\n{report}");
    // The summary line proves the comparison covered the definitions, not an empty set.
    let summary = report.lines().last().unwrap_or_default();
    let messages: usize = summary
        .strip_prefix("checked ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(messages >= 150, "too few messages compared: {summary}");
}

fn find_message<'a>(
    set: &'a mut FileDescriptorSet,
    package: &str,
    name: &str,
) -> &'a mut prost_types::DescriptorProto {
    set.file
        .iter_mut()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.message_type.iter_mut())
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("{package}.{name} defined by weft"))
}

#[test]
fn a_wrong_field_number_is_reported() {
    let mut set = weft_descriptors();
    let header = find_message(&mut set, "common", "ChannelHeader");
    let tx_id = header
        .field
        .iter_mut()
        .find(|f| f.name() == "tx_id")
        .expect("tx_id field");
    tx_id.number = Some(15);
    let (ok, report) = compare(&set);
    assert!(!ok, "a renumbered field went unnoticed:\n{report}");
    assert!(
        report.contains("message common.ChannelHeader: field 5 tx_id missing"),
        "{report}"
    );
}

#[test]
fn a_wrong_type_a_missing_field_and_a_wrong_enum_value_are_reported() {
    let mut set = weft_descriptors();
    let envelope = find_message(&mut set, "common", "Envelope");
    envelope.field[1].r#type = Some(prost_types::field_descriptor_proto::Type::String as i32);
    let seek = find_message(&mut set, "orderer", "SeekPosition");
    seek.field.retain(|f| f.name() != "next_commit");
    let status = set
        .file
        .iter_mut()
        .flat_map(|f| f.enum_type.iter_mut())
        .find(|e| e.name() == "Status")
        .expect("common.Status");
    status.value[1].number = Some(201);

    let (ok, report) = compare(&set);
    assert!(!ok);
    assert!(
        report.contains("message common.Envelope: field 2 is ('signature', 'TYPE_STRING'"),
        "{report}"
    );
    assert!(
        report.contains("message orderer.SeekPosition: field 4 next_commit missing"),
        "{report}"
    );
    assert!(report.contains("enum common.Status: values"), "{report}");
}
