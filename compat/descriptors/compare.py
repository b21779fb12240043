"""Compare weft's protobuf definitions with Fabric's published descriptors.

Usage: compare.py WEFT_DESCRIPTOR_SET

Every message, enum and service weft defines (outside google.*) must exist in
Fabric's descriptors with the same fields (number, name, type, label, type name,
oneof), enum values and rpc signatures; and no field, value or rpc of those
definitions may be missing on weft's side. Prints one line per mismatch and
exits 1 if there is any.
"""

import importlib
import pkgutil
import sys

from google.protobuf import descriptor_pb2

import fabric_protos


def walk(files):
    """Index messages, enums and services of FileDescriptorProtos by full name."""
    messages, enums, services = {}, {}, {}

    def add_message(prefix, msg):
        name = f"{prefix}.{msg.name}"
        messages[name] = msg
        for nested in msg.nested_type:
            add_message(name, nested)
        for enum in msg.enum_type:
            enums[f"{name}.{enum.name}"] = enum

    for fd in files:
        prefix = fd.package
        for msg in fd.message_type:
            add_message(prefix, msg)
        for enum in fd.enum_type:
            enums[f"{prefix}.{enum.name}"] = enum
        for svc in fd.service:
            services[f"{prefix}.{svc.name}"] = svc
    return messages, enums, services


def fabric_files():
    files = []
    for info in pkgutil.walk_packages(fabric_protos.__path__, "fabric_protos."):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(info.name)
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        files.append(proto)
    return files


def field_shape(msg, field):
    oneof = ""
    if field.HasField("oneof_index") and not field.proto3_optional:
        oneof = msg.oneof_decl[field.oneof_index].name
    return (
        field.name,
        descriptor_pb2.FieldDescriptorProto.Type.Name(field.type),
        descriptor_pb2.FieldDescriptorProto.Label.Name(field.label),
        field.type_name,
        oneof,
    )


def compare(ours, theirs):
    our_msgs, our_enums, our_svcs = walk(ours)
    their_msgs, their_enums, their_svcs = walk(theirs)
    problems = []
    counts = {"messages": 0, "enums": 0, "services": 0}

    for name, msg in sorted(our_msgs.items()):
        if name.startswith("google."):
            continue
        counts["messages"] += 1
        other = their_msgs.get(name)
        if other is None:
            problems.append(f"message {name}: not defined by Fabric")
            continue
        if msg.options.map_entry != other.options.map_entry:
            problems.append(f"message {name}: map entry {msg.options.map_entry}, Fabric {other.options.map_entry}")
        mine = {f.number: field_shape(msg, f) for f in msg.field}
        fabric = {f.number: field_shape(other, f) for f in other.field}
        for number in sorted(set(mine) | set(fabric)):
            a, b = mine.get(number), fabric.get(number)
            if a == b:
                continue
            if a is None:
                problems.append(f"message {name}: field {number} {b[0]} missing")
            elif b is None:
                problems.append(f"message {name}: field {number} {a[0]} not in Fabric")
            else:
                problems.append(f"message {name}: field {number} is {a}, Fabric has {b}")

    for name, enum in sorted(our_enums.items()):
        if name.startswith("google."):
            continue
        counts["enums"] += 1
        other = their_enums.get(name)
        if other is None:
            problems.append(f"enum {name}: not defined by Fabric")
            continue
        mine = {v.name: v.number for v in enum.value}
        fabric = {v.name: v.number for v in other.value}
        if mine != fabric:
            problems.append(f"enum {name}: values {sorted(mine.items())}, Fabric {sorted(fabric.items())}")

    for name, svc in sorted(our_svcs.items()):
        counts["services"] += 1
        other = their_svcs.get(name)
        if other is None:
            problems.append(f"service {name}: not defined by Fabric")
            continue

        def shape(s):
            return {
                m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                for m in s.method
            }

        mine, fabric = shape(svc), shape(other)
        for rpc in sorted(set(mine) | set(fabric)):
            if mine.get(rpc) != fabric.get(rpc):
                problems.append(f"service {name}: rpc {rpc} is {mine.get(rpc)}, Fabric has {fabric.get(rpc)}")

    return counts, problems


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ours = descriptor_pb2.FileDescriptorSet()
    with open(sys.argv[1], "rb") as f:
        ours.ParseFromString(f.read())
    counts, problems = compare(list(ours.file), fabric_files())
    for problem in problems:
        print(problem)
    print(
        f"checked {counts['messages']} messages, {counts['enums']} enums, "
        f"{counts['services']} services against Fabric: {len(problems)} mismatches"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
