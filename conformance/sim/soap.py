"""The thin SOAP layer: parse vSphere requests and write responses with pyVmomi's own type system.

Reusing pyVmomi's deserializer and serializer means the simulator speaks exactly the types, versions and
faults that the client expects; this module only frames envelopes and handles the special `Fetch` call.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any
from xml.parsers.expat import ParserCreate

from pyVmomi import VmomiSupport, vim, vmodl
from pyVmomi.SoapAdapter import (
    NS_SEP,
    SOAP_BODY_END,
    SOAP_BODY_START,
    SOAP_ENVELOPE_END,
    SOAP_ENVELOPE_START,
    SOAP_NSMAP,
    XML_HEADER,
    XMLNS_SOAPENV,
    SoapDeserializer,
    SoapSerializer,
)

VIM_NS = "urn:vim25"
DEFAULT_VERSION = "vim.version.version9"  # what Connect() without a version talks: urn:vim25/5.5


class SoapRequestError(Exception):
    """The request is not a well-formed vSphere SOAP call (answered with a client fault)."""


@dataclass
class SoapCall:
    """One parsed method invocation."""

    method: str  # WSDL name, e.g. "CreateSnapshot_Task" or "Fetch"
    this: Any  # the ManagedObject the call is made on
    args: dict[str, Any] = field(default_factory=dict)
    version: str = DEFAULT_VERSION
    info: Any = None  # pyVmomi method info (None for Fetch)


def version_from_action(soap_action: str | None) -> str:
    """Map a SOAPAction header (`"urn:vim25/7.0.3.0"`) to a pyVmomi version name."""
    if not soap_action:
        return DEFAULT_VERSION
    uri = soap_action.strip().strip('"')
    try:
        version = VmomiSupport.GetVersionFromVersionUri(uri)
    except Exception:
        version = None
    return str(version) if version else DEFAULT_VERSION


class _ElementSplitter:
    """Expat handlers that find the method element and hand each parameter element to its own deserializer.

    One deserializer per parameter element: a single deserializer over an array parameter would swallow
    the next sibling parameter. pyVmomi's deserializer restores our handlers when its element closes
    without passing that closing tag on, so a parameter element is accounted for at its start.
    """

    def __init__(self, parser: Any, version: str) -> None:
        self.parser = parser
        self.version = version
        self.ns_stack: dict[str | None, list[str]] = {}
        self.depth = 0
        self.method: str | None = None
        self.info: Any = None
        self.in_body = False
        self.pending: list[tuple[str, Any, SoapDeserializer]] = []
        self._param_types: dict[str, Any] = {}
        self._install()

    def _install(self) -> None:
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.StartNamespaceDeclHandler = self.start_ns
        self.parser.EndNamespaceDeclHandler = self.end_ns
        self.parser.CharacterDataHandler = None

    def start_ns(self, prefix: str | None, uri: str) -> None:
        self.ns_stack.setdefault(prefix, []).append(uri)

    def end_ns(self, prefix: str | None) -> None:
        self.ns_stack[prefix].pop()

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        name = tag.split(NS_SEP, 1)[-1]
        # Envelope (depth 1) > Header or Body (2) > Method (3) > parameters (4)
        if self.depth == 1 and name == "Body":
            self.in_body = True
        elif self.depth == 2 and self.in_body and self.method is None:
            self.method = name
            if name != "Fetch":
                try:
                    self.info = VmomiSupport.GetWsdlMethod(VIM_NS, name).info
                except KeyError as exc:
                    raise SoapRequestError(f"unknown method {name}") from exc
                self._param_types = {p.name: p.type for p in self.info.params}
        elif self.depth == 3 and self.method is not None:
            self._hand_off(name, tag, attrs)
            return  # the deserializer owns this element until it closes
        self.depth += 1

    def _hand_off(self, name: str, tag: str, attrs: dict[str, str]) -> None:
        if name == "_this":
            ptype: Any = VmomiSupport.ManagedObject
        elif self.method == "Fetch" and name == "prop":
            ptype = str
        else:
            ptype = self._param_types.get(name)
            if ptype is None:
                raise SoapRequestError(f"{self.method} has no parameter {name}")
        is_array = isinstance(ptype, type) and issubclass(ptype, list)
        item_type = ptype.Item if is_array else ptype
        deserializer = SoapDeserializer(None, self.version)
        ns_map = {prefix: list(uris) for prefix, uris in self.ns_stack.items()}
        deserializer.Deserialize(self.parser, item_type, False, ns_map)
        deserializer.StartElementHandler(tag, attrs)
        self.pending.append((name, ptype if is_array else None, deserializer))

    def end(self, tag: str) -> None:
        self.depth -= 1

    def results(self) -> tuple[Any, dict[str, Any]]:
        this: Any = None
        args: dict[str, Any] = {}
        for name, array_type, deserializer in self.pending:
            value = deserializer.GetResult()
            if name == "_this":
                this = value
            elif array_type is not None:
                args.setdefault(name, array_type()).append(value)
            else:
                args[name] = value
        return this, args


def parse_request(body: bytes, soap_action: str | None) -> SoapCall:
    """Parse one SOAP request body into a SoapCall; raise SoapRequestError when it is not one."""
    version = version_from_action(soap_action)
    parser = ParserCreate(namespace_separator=NS_SEP)
    splitter = _ElementSplitter(parser, version)
    try:
        parser.Parse(body, True)
    except SoapRequestError:
        raise
    except Exception as exc:
        raise SoapRequestError(f"malformed request: {exc}") from exc
    if splitter.method is None:
        raise SoapRequestError("no method element in the SOAP body")
    this, args = splitter.results()
    return SoapCall(splitter.method, this, args, version, splitter.info)


def _serializer(out: io.StringIO, version: str) -> SoapSerializer:
    ns_map = SOAP_NSMAP.copy()
    ns_map[VIM_NS] = ""
    return _OmitUnset(out, version, ns_map)


class _OmitUnset(SoapSerializer):
    """Skip None values instead of failing on required fields that the simulator leaves unset."""

    def _Serialize(self, val: Any, info: Any, defNS: str) -> None:
        if val is None:
            return
        super()._Serialize(val, info, defNS)


def serialize_result(method: str, result_type: Any, value: Any, version: str) -> bytes:
    """A `<{method}Response>` envelope around `value`, serialized in the client's version."""
    out = io.StringIO()
    out.write(XML_HEADER)
    out.write("\n")
    out.write(SOAP_ENVELOPE_START)
    out.write(SOAP_BODY_START)
    out.write(f'<{method}Response xmlns="{VIM_NS}">')
    if value is not None and result_type is not None:
        info = VmomiSupport.Object(name="returnval", type=result_type, version=version, flags=VmomiSupport.F_OPTIONAL)
        _serializer(out, version).Serialize(value, info)
    out.write(f"</{method}Response>")
    out.write(SOAP_BODY_END)
    out.write(SOAP_ENVELOPE_END)
    return out.getvalue().encode("utf-8")


def serialize_fault(fault: Exception, version: str) -> bytes:
    """A soapenv:Fault whose detail makes pyVmomi raise exactly the fault's type."""
    if not isinstance(fault, vmodl.MethodFault):
        fault = vmodl.fault.SystemError(msg=str(fault), reason=str(fault))
    type_name = fault._wsdlName
    message = getattr(fault, "msg", None) or type_name
    code = "ServerFaultCode"
    out = io.StringIO()
    out.write(XML_HEADER)
    out.write("\n")
    out.write(SOAP_ENVELOPE_START)
    out.write(SOAP_BODY_START)
    out.write(f"<soapenv:Fault><faultcode>{code}</faultcode>")
    out.write(f"<faultstring>{_xml_escape(message)}</faultstring><detail>")
    # Declared as the MethodFault base so that the serializer writes xsi:type with the concrete fault.
    info = VmomiSupport.Object(name=f"{type_name}Fault", type=vmodl.MethodFault, version=version, flags=0)
    serializer = _serializer(out, version)
    serializer.outermostAttrs = ""
    serializer._SerializeDataObject(fault, info, f' xmlns="{VIM_NS}"', VIM_NS)
    out.write("</detail></soapenv:Fault>")
    out.write(SOAP_BODY_END)
    out.write(SOAP_ENVELOPE_END)
    return out.getvalue().encode("utf-8")


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def is_fault(value: Any) -> bool:
    return isinstance(value, vmodl.MethodFault)


__all__ = [
    "XMLNS_SOAPENV",
    "SoapCall",
    "SoapRequestError",
    "is_fault",
    "parse_request",
    "serialize_fault",
    "serialize_result",
    "version_from_action",
    "vim",
]
