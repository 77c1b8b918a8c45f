"""Protobuf message classes for ``caffe.proto``, built at import time from the shipped schema.

``protoc`` is not a dependency, so the schema is read by a small parser of the proto2 subset the file
uses (messages, nested enums, scalar/message/enum fields with ``default`` and ``packed`` options) into
a ``FileDescriptorProto``; protobuf's own descriptor pool and message factory then build real message
classes (binary and text format, unknown-field handling: all protobuf's).

Usage::

    from ofa_hw.export.caffe_pb import pb
    net = pb.NetParameter(name="net")
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTO_PATH = Path(__file__).with_name("caffe.proto")

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "double": _F.TYPE_DOUBLE,
    "float": _F.TYPE_FLOAT,
    "int64": _F.TYPE_INT64,
    "uint64": _F.TYPE_UINT64,
    "int32": _F.TYPE_INT32,
    "uint32": _F.TYPE_UINT32,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
_LABELS = {"optional": _F.LABEL_OPTIONAL, "repeated": _F.LABEL_REPEATED, "required": _F.LABEL_REQUIRED}
_TOKEN = re.compile(
    r'\s+|//[^\n]*|"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_.]*|[-+]?[0-9.][0-9.eE+-]*|[{}\[\]=;,]'
)


class ProtoSyntaxError(ValueError):
    """The .proto text is outside the supported subset; names the file and line."""


def _tokenize(text: str, source: str) -> list[tuple[str, int]]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ProtoSyntaxError(f"{source}:{line}: unexpected character {text[pos]!r}")
        tok = match.group()
        if not tok.isspace() and not tok.startswith("//"):
            tokens.append((tok, line))
        line += tok.count("\n")
        pos = match.end()
    return tokens


class _Parser:
    """Recursive-descent parser of the proto2 subset into a FileDescriptorProto."""

    def __init__(self, text: str, source: str) -> None:
        self.tokens = _tokenize(text, source)
        self.pos = 0
        self.source = source
        self.file = descriptor_pb2.FileDescriptorProto(name=Path(source).name, syntax="proto2")
        # (field proto, type name as written, scope path, line) resolved once every type is known.
        self._unresolved: list[tuple[descriptor_pb2.FieldDescriptorProto, str, list[str], int]] = []
        self._types: dict[str, str] = {}  # fully qualified name -> 'message' | 'enum'

    def _error(self, msg: str) -> ProtoSyntaxError:
        line = self.tokens[min(self.pos, len(self.tokens) - 1)][1] if self.tokens else 1
        return ProtoSyntaxError(f"{self.source}:{line}: {msg}")

    def _next(self) -> str:
        if self.pos >= len(self.tokens):
            raise self._error("unexpected end of file")
        tok = self.tokens[self.pos][0]
        self.pos += 1
        return tok

    def _expect(self, want: str) -> None:
        tok = self._next()
        if tok != want:
            raise self._error(f"expected {want!r}, got {tok!r}")

    def parse(self) -> descriptor_pb2.FileDescriptorProto:
        while self.pos < len(self.tokens):
            tok = self._next()
            if tok == "syntax":
                self._expect("=")
                if self._next().strip('"') != "proto2":
                    raise self._error("only proto2 is supported")
                self._expect(";")
            elif tok == "package":
                self.file.package = self._next()
                self._expect(";")
            elif tok == "message":
                self._message(self.file.message_type.add(), [])
            elif tok == "enum":
                self._enum(self.file.enum_type.add(), [])
            else:
                raise self._error(f"unexpected {tok!r} at top level")
        self._resolve()
        return self.file

    def _qualified(self, scope: list[str], name: str) -> str:
        return "." + ".".join([self.file.package, *scope, name])

    def _message(self, msg: descriptor_pb2.DescriptorProto, scope: list[str]) -> None:
        msg.name = self._next()
        self._types[self._qualified(scope, msg.name)] = "message"
        inner = [*scope, msg.name]
        self._expect("{")
        while (tok := self._next()) != "}":
            if tok == "message":
                self._message(msg.nested_type.add(), inner)
            elif tok == "enum":
                self._enum(msg.enum_type.add(), inner)
            elif tok in _LABELS:
                self._field(msg.field.add(), tok, inner)
            else:
                raise self._error(f"unexpected {tok!r} in message {msg.name}")

    def _enum(self, enum: descriptor_pb2.EnumDescriptorProto, scope: list[str]) -> None:
        enum.name = self._next()
        self._types[self._qualified(scope, enum.name)] = "enum"
        self._expect("{")
        while (tok := self._next()) != "}":
            self._expect("=")
            enum.value.add(name=tok, number=int(self._next()))
            self._expect(";")

    def _field(self, field: descriptor_pb2.FieldDescriptorProto, label: str, scope: list[str]) -> None:
        field.label = _LABELS[label]
        line = self.tokens[self.pos][1] if self.pos < len(self.tokens) else 0
        type_name = self._next()
        field.name = self._next()
        self._expect("=")
        field.number = int(self._next())
        field.json_name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), field.name)
        tok = self._next()
        if tok == "[":
            while True:
                key = self._next()
                self._expect("=")
                value = self._next()
                if key == "default":
                    field.default_value = value.strip('"')
                elif key == "packed":
                    field.options.packed = value == "true"
                else:
                    raise self._error(f"unsupported field option {key!r}")
                tok = self._next()
                if tok == "]":
                    break
                if tok != ",":
                    raise self._error(f"expected ',' or ']', got {tok!r}")
            tok = self._next()
        if tok != ";":
            raise self._error(f"expected ';' after field {field.name}, got {tok!r}")
        if type_name in _SCALARS:
            field.type = _SCALARS[type_name]
            if field.HasField("default_value") and type_name in ("float", "double"):
                field.default_value = repr(float(field.default_value))
        else:
            self._unresolved.append((field, type_name, scope, line))

    def _resolve(self) -> None:
        """Give message/enum fields their fully qualified type, searching scopes inner to outer."""
        for field, type_name, scope, line in self._unresolved:
            for depth in range(len(scope), -1, -1):
                candidate = self._qualified(scope[:depth], type_name)
                if candidate in self._types:
                    field.type_name = candidate
                    field.type = _F.TYPE_MESSAGE if self._types[candidate] == "message" else _F.TYPE_ENUM
                    break
            else:
                raise ProtoSyntaxError(
                    f"{self.source}:{line}: field {field.name}: unknown type {type_name!r}"
                )


def parse_proto(text: str, source: str = "<proto>") -> descriptor_pb2.FileDescriptorProto:
    """Parse proto2 ``text`` (the subset described in the module docstring) into a FileDescriptorProto."""
    return _Parser(text, source).parse()


def build_messages(path: Path = PROTO_PATH) -> SimpleNamespace:
    """Message classes (and top-level enums' values) of the schema at ``path``, in a private pool."""
    file_proto = parse_proto(path.read_text(), str(path))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    file_desc = pool.FindFileByName(file_proto.name)
    namespace: dict[str, object] = {
        name: message_factory.GetMessageClass(desc) for name, desc in file_desc.message_types_by_name.items()
    }
    for enum in file_desc.enum_types_by_name.values():
        for value in enum.values:
            namespace[value.name] = value.number
    return SimpleNamespace(**namespace)


#: The caffe message classes: ``pb.NetParameter``, ``pb.LayerParameter``, ``pb.BlobProto`` …
pb = build_messages()
