"""Provider contracts compiled once per operation.

openapi-core derives every schema again on each request (about 4 ms for a Twilio message), too slow
for a server that also carries throughput benchmarks. Here each operation's parameters, security
and bodies are compiled once into openapi-schema-validator validators (the schema engine
openapi-core itself uses) with references inlined, so a check costs tens to hundreds of
microseconds, and the server keeps each verdict per distinct request (`Remembered`). The tests
check that openapi-core gives the same verdicts. Providers without an OpenAPI contract get a plain
JSON Schema (`SchemaCheck`), and FCM's Discovery document is translated to one (`discovery_schema`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from multidict import MultiDict
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    OAS31Validator,
    oas30_format_checker,
    oas31_format_checker,
)

from ._call import Call, Problem

__all__ = [
    "CONTRACTS",
    "Check",
    "Contract",
    "Operation",
    "Remembered",
    "SchemaCheck",
    "contract",
    "decode_form",
    "discovery_schema",
    "load_contract",
    "schema_problems",
]

#: The offline copies of the providers' contracts (see SOURCES.json there).
CONTRACTS = Path(__file__).resolve().parent.parent / "contracts"

#: A request check: returns what is wrong, nothing when the request is valid.
Check = Callable[[Call], list[Problem]]

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# OpenAPI 3: header parameters with these names are described elsewhere and SHALL be ignored.
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
MAX_PROBLEMS = 10
# Keywords that never change a verdict, dropped from compiled schemas so validation skips them.
_ANNOTATIONS = frozenset({"description", "example", "examples", "title", "externalDocs", "deprecated", "xml"})
# Keywords whose value maps names to schemas (the names must be kept, whatever they are).
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_UNEXPECTED = re.compile(r"'([^']+)' (?:was|were) unexpected")
_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")


@functools.cache
def load_contract(name: str) -> dict[str, Any]:
    """A contract file, parsed once per process."""
    data: dict[str, Any] = json.loads((CONTRACTS / name).read_text("utf-8"))
    return data


def schema_problems(validator: Any, value: Any, where: str = "body") -> list[Problem]:
    """Run a compiled validator and turn its errors into `Problem`s naming the exact field."""
    problems: list[Problem] = []
    for error in validator.iter_errors(value):
        path = [str(part) for part in error.absolute_path]
        reason = str(error.validator)
        if reason == "required" and isinstance(error.instance, dict):
            path += [name for name in error.validator_value if name not in error.instance][:1]
        elif reason in ("additionalProperties", "unevaluatedProperties"):
            path += _UNEXPECTED.findall(error.message)[:1]
        problems.append(Problem(where, error.message, ".".join(path) or None, reason))
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def _scalar_cast(kind: Any) -> Callable[[str], Any] | None:
    """How a string from a form or a query becomes the type its schema declares."""
    if kind == "integer":
        return int
    if kind == "number":
        return float
    if kind == "boolean":
        return {"true": True, "false": False}.__getitem__
    return None


def decode_form(
    form: MultiDict[str | bytes],
    arrays: frozenset[str] = frozenset(),
    casts: Mapping[str, Callable[[str], Any]] | None = None,
) -> dict[str, Any]:
    """A form as a dict: repeated or array-typed keys as lists, typed scalars cast, `a[b]` nested."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(form.keys()):
        values: list[Any] = form.getall(key)
        if casts and key in casts:
            values = [_try(casts[key], v) for v in values]
        value = values if key in arrays or len(values) > 1 else values[0]
        nested = _BRACKETS.match(key)
        if nested is None:
            out[key] = value
            continue
        target = out
        parts = [nested.group(1), *re.findall(r"\[([^\[\]]*)\]", nested.group(2))]
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            target = child if isinstance(child, dict) else {}
        target[parts[-1]] = value
    return out


def _try(cast: Callable[[str], Any], value: Any) -> Any:
    try:
        return cast(value) if isinstance(value, str) else value
    except (KeyError, ValueError):
        return value


def _textual(value: Any) -> Any:
    """Uploaded files (bytes) as strings, since a schema says `type: string, format: binary`."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list):
        return [_textual(v) for v in value]
    if isinstance(value, dict):
        return {k: _textual(v) for k, v in value.items()}
    return value


class Remembered:
    """A check that keeps its verdict per distinct request, since a verdict depends on nothing else.

    Load tests send the same few requests thousands of times; this keeps validation on for them
    at the cost of a dict lookup. Big bodies are checked every time rather than kept.
    """

    MAX_BODY = 16 * 1024
    MAX_ENTRIES = 1024

    def __init__(self, check: Check) -> None:
        self.check = check
        self._verdicts: dict[tuple[bytes, str, tuple[tuple[str, str], ...]], list[Problem]] = {}

    def __call__(self, call: Call) -> list[Problem]:
        if len(call.raw) > self.MAX_BODY:
            return self.check(call)
        key = (call.raw, call.request.path_qs, tuple(call.headers.items()))
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) >= self.MAX_ENTRIES:
                self._verdicts.clear()
            verdict = self._verdicts[key] = self.check(call)
        return verdict


class SchemaCheck:
    """A JSON body checked against a plain JSON Schema, for APIs that publish no OpenAPI contract."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._validator = OAS31Validator(dict(schema))

    def __call__(self, call: Call) -> list[Problem]:
        return schema_problems(self._validator, call.body)


class Contract:
    """One OpenAPI contract; its operations are compiled on first use and kept."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.spec = load_contract(name)
        self.oas31 = str(self.spec.get("openapi", "")).startswith("3.1")
        self._operations: dict[str, Operation] = {}
        self._inlined: dict[str, Any] = {}

    def operation(self, key: str) -> Operation:
        """The operation for "post /v3/mail/send" (method and path as written in the contract)."""
        if key not in self._operations:
            method, path = key.split(" ", 1)
            self._operations[key] = Operation(self, method.lower(), path)
        return self._operations[key]

    def resolve(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow local `$ref`s, returning the target and its JSON pointer."""
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
            pointer = node["$ref"][1:]
            node = self.spec
            for part in pointer.split("/")[1:]:
                key = part.replace("~1", "/").replace("~0", "~")
                node = node[int(key)] if isinstance(node, list) else node[key]
        return node, pointer

    def validator(self, pointer: str, *, read: bool = False) -> Any:
        """A validator for the schema at `pointer`, compiled for speed: references are inlined and
        annotations dropped; cyclic references stay and resolve within the whole contract."""
        schema = self.inline(self.resolve({"$ref": "#" + pointer}, "")[0])
        root = {**self.spec, **schema} if isinstance(schema, dict) else schema
        if self.oas31:
            return OAS31Validator(root, format_checker=oas31_format_checker)
        cls = OAS30ReadValidator if read else OAS30WriteValidator
        return cls(root, format_checker=oas30_format_checker)

    def inline(self, node: Any, seen: frozenset[str] = frozenset()) -> Any:
        """A schema with its local `$ref`s replaced by their targets, once each, minus annotations."""
        if isinstance(node, list):
            return [self.inline(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in seen:
                return node
            if ref not in self._inlined:
                self._inlined[ref] = self.inline(self.resolve({"$ref": ref}, "")[0], seen | {ref})
            siblings = {k: v for k, v in node.items() if k != "$ref" and k not in _ANNOTATIONS}
            if not siblings or not self.oas31:  # OpenAPI 3.0 ignores the siblings of a $ref
                return self._inlined[ref]
            return {"allOf": [self._inlined[ref]], **self.inline(siblings, seen)}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self.inline(sub, seen) for name, sub in value.items()}
            else:
                out[key] = self.inline(value, seen)
        return out

    def properties(self, schema: Any, pointer: str) -> dict[str, Any]:
        """The properties an object schema declares, through `$ref` and `allOf`."""
        schema, pointer = self.resolve(schema, pointer)
        found: dict[str, Any] = {}
        for index, member in enumerate(schema.get("allOf", ())):
            found.update(self.properties(member, f"{pointer}/allOf/{index}"))
        for name, sub in schema.get("properties", {}).items():
            found[name] = self.resolve(sub, f"{pointer}/properties/{_escape(name)}")[0]
        return found


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _type_of(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind


class _Param:
    __slots__ = ("array", "cast", "name", "required", "validator", "where")

    def __init__(self, contract: Contract, param: Any, pointer: str) -> None:
        param, pointer = contract.resolve(param, pointer)
        schema, schema_pointer = contract.resolve(param.get("schema", {}), pointer + "/schema")
        self.name: str = param["name"]
        self.where: str = param["in"]
        self.required: bool = bool(param.get("required", False))
        self.array = _type_of(schema) == "array"
        self.cast = _scalar_cast(_type_of(schema.get("items", {}) if self.array else schema))
        self.validator = contract.validator(schema_pointer)


class _Body:
    __slots__ = ("arrays", "casts", "validator")

    def __init__(self, contract: Contract, schema: Any, pointer: str) -> None:
        self.validator = contract.validator(pointer)
        props = contract.properties(schema, pointer)
        self.arrays = frozenset(name for name, sub in props.items() if _type_of(sub) == "array")
        self.casts = {
            name: cast
            for name, sub in props.items()
            if (cast := _scalar_cast(_type_of(sub.get("items", {}) if name in self.arrays else sub)))
        }


class Operation:
    """A compiled operation: checks a `Call`'s parameters, credentials' presence and body."""

    def __init__(self, contract: Contract, method: str, path: str) -> None:
        self.contract = contract
        self.key = f"{method.upper()} {path}"
        spec = contract.spec
        base = f"/paths/{_escape(path)}"
        item = spec["paths"][path]
        op = item[method]
        #: The contract's names of the path parameters, in the order they appear in the path.
        self.path_names: list[str] = re.findall(r"{([^}]+)}", path)
        declared = [(p, f"{base}/parameters/{i}") for i, p in enumerate(item.get("parameters", ()))]
        declared += [(p, f"{base}/{method}/parameters/{i}") for i, p in enumerate(op.get("parameters", ()))]
        params = {(p.where, p.name.lower()): p for p in (_Param(contract, d, ptr) for d, ptr in declared)}
        self.params = [p for (where, name), p in params.items() if not (where == "header" and name in IGNORED_HEADERS)]
        schemes = spec.get("components", {}).get("securitySchemes", {})
        requirements = op.get("security", spec.get("security", []))
        self.security = [[schemes[name] for name in alternative] for alternative in requirements]
        self.required_headers = sorted(
            {h["name"] for alt in self.security for scheme in alt for h in scheme.get("x-additional-headers", ())}
        )
        body, body_pointer = contract.resolve(op.get("requestBody"), f"{base}/{method}/requestBody")
        self.body_required = bool(body and body.get("required"))
        self.bodies: dict[str, _Body] = {}
        for media, content in (body or {}).get("content", {}).items():
            schema_pointer = f"{body_pointer}/content/{_escape(media)}/schema"
            self.bodies[media] = _Body(contract, *contract.resolve(content.get("schema", {}), schema_pointer))
        self._responses = op.get("responses", {})
        self._response_pointer = f"{base}/{method}/responses"
        self._response_validators: dict[str, Any] = {}

    def __str__(self) -> str:
        return f"{self.key} ({self.contract.name})"

    def _media(self, content_type: str) -> _Body | None:
        if content_type in self.bodies:
            return self.bodies[content_type]
        if content_type in FORM_TYPES:
            # Servers built from form parsers take both encodings (Mailgun's contract lists one).
            return next((self.bodies[t] for t in FORM_TYPES if t in self.bodies), None)
        return None

    def decode(self, call: Call) -> bool:
        """Type a form body as the contract declares it (arrays, integers, booleans), if it has one."""
        if call.form is None or (media := self._media(call.content_type)) is None:
            return False
        call.body = decode_form(call.form, media.arrays, media.casts)
        return True

    def __call__(self, call: Call) -> list[Problem]:
        problems = self._check_security(call)
        problems += [
            Problem("header", f"the {name} header is required", name, "missing")
            for name in self.required_headers
            if name not in call.headers
        ]
        values = dict(zip(self.path_names, call.params.values(), strict=False))
        for param in self.params:
            problems += self._check_param(param, call, values)
        return problems + self._check_body(call)

    def _check_security(self, call: Call) -> list[Problem]:
        if not self.security or any(all(_presented(call, s) for s in alt) for alt in self.security):
            return []
        wanted = " or ".join(" + ".join(_describe(s) for s in alt) for alt in self.security)
        return [Problem("auth", f"no credentials: the contract requires {wanted}", "Authorization", "security")]

    def _check_param(self, param: _Param, call: Call, values: Mapping[str, str]) -> list[Problem]:
        raw: Any
        if param.where == "path":
            raw = values.get(param.name)
        elif param.where == "query":
            raw = call.query.getall(param.name, None) if param.array else call.query.get(param.name)
        elif param.where == "header":
            raw = call.headers.get(param.name)
        else:
            raw = call.request.cookies.get(param.name)
        if raw is None:
            if param.required:
                return [Problem(param.where, f"the {param.name} parameter is required", param.name, "missing")]
            return []
        if param.cast is not None:
            raw = [_try(param.cast, v) for v in raw] if param.array else _try(param.cast, raw)
        return [Problem(param.where, p.message, param.name, p.reason) for p in schema_problems(param.validator, raw)]

    def _check_body(self, call: Call) -> list[Problem]:
        if not call.raw and call.form is None:
            return [Problem("body", "a request body is required", None, "missing")] if self.body_required else []
        media = self._media(call.content_type)
        if media is None:
            accepted = ", ".join(self.bodies) or "no body"
            message = f"Content-Type {call.content_type!r} is not accepted here (the contract takes {accepted})"
            return [Problem("header", message, "Content-Type", "content-type")]
        body = _textual(call.body) if call.form is not None else call.body
        return schema_problems(media.validator, body)

    def response_problems(self, status: int, body: Any) -> list[Problem]:
        """Check a JSON response the imitation built against the contract (for the imitation's tests)."""
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in self._responses:
                break
        else:
            return [Problem("body", f"the contract declares no {status} response", reason="status")]
        if key not in self._response_validators:
            response, pointer = self.contract.resolve(self._responses[key], f"{self._response_pointer}/{key}")
            content = response.get("content", {}).get("application/json")
            self._response_validators[key] = content and self.contract.validator(
                self.contract.resolve(content.get("schema", {}), f"{pointer}/content/application~1json/schema")[1],
                read=True,
            )
        validator = self._response_validators[key]
        return schema_problems(validator, body) if validator else []


def _presented(call: Call, scheme: Mapping[str, Any]) -> bool:
    kind = scheme.get("type")
    if kind == "apiKey":
        source: Mapping[str, Any] = {"query": call.query, "cookie": call.request.cookies}.get(
            scheme.get("in", ""), call.headers
        )
        return scheme.get("name", "") in source
    expected = str(scheme.get("scheme", "bearer")).lower() if kind == "http" else "bearer"
    return call.headers.get("Authorization", "").lower().startswith(expected + " ")


def _describe(scheme: Mapping[str, Any]) -> str:
    if scheme.get("type") == "apiKey":
        return f"the {scheme.get('name')} {scheme.get('in')} key"
    return f"HTTP {str(scheme.get('scheme', 'bearer')).capitalize()} credentials"


@functools.cache
def contract(name: str) -> Contract:
    """The shared, lazily compiled `Contract` for a contract file."""
    return Contract(name)


# Google's Discovery format, translated to JSON Schema. Google's JSON parser for protos rejects
# unknown fields and accepts both the lowerCamelCase and the original snake_case field names.
_DURATION = {"type": "string", "pattern": r"^-?\d+(\.\d{1,9})?s$"}
_INT64 = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^-?\d+$"}]}


def discovery_schema(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The JSON Schema of Discovery schema `name`, with every schema it uses under `$defs`."""
    return {"$ref": f"#/$defs/{name}", "$defs": {k: _translate(v) for k, v in document["schemas"].items()}}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _translate(node: Mapping[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    kind, fmt = node.get("type"), node.get("format")
    if kind == "object":
        out: dict[str, Any] = {"type": "object"}
        if "properties" in node:
            props = {k: _translate(v) for k, v in node["properties"].items()}
            out["properties"] = {**{_snake(k): v for k, v in props.items()}, **props}
            out["additionalProperties"] = False
        if "additionalProperties" in node:
            out["additionalProperties"] = _translate(node["additionalProperties"])
        return out
    if kind == "array":
        return {"type": "array", "items": _translate(node.get("items", {"type": "any"}))}
    if kind == "string" and fmt == "google-duration":
        return dict(_DURATION)
    if fmt in ("int64", "uint64"):
        return dict(_INT64)
    if kind == "string" and "enum" in node:
        # Google's parser takes enum names in lower case too (firebase-admin sends "high").
        return {"enum": [*node["enum"], *(name.lower() for name in node["enum"])]}
    if kind in ("string", "integer", "number", "boolean"):
        return {"type": kind}
    return {}
