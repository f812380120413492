#!/usr/bin/env python3
"""Extract a JSON field schema from Go API type definitions (stdlib only).

Reads Go source files that declare Kubernetes-style API types (structs with
`json:"name,omitempty"` tags, inline embedded structs, pointers, slices, maps,
named scalar types, type aliases) and writes a JSON document describing how the
types of the requested kinds serialize, following encoding/json rules (which is
what sigs.k8s.io/yaml, used by kubeadm/kubelet/kube-proxy, delegates to):

  * a field tagged `json:"-"` is omitted; unexported fields are omitted;
  * an untagged field uses its Go name as the key;
  * an embedded (anonymous) struct without a tag name is flattened into the
    outer struct (`json:",inline"` is just that), shallower fields win;
  * pointers are transparent.

Type names in the output:
  string, int, bool, number (floats), duration (metav1.Duration),
  time (metav1.Time/MicroTime), quantity (resource.Quantity/QuantityValue),
  intOrString (intstr.IntOrString), object (interface{}/RawExtension/--opaque),
  a struct's own name, "[]X" for slices/arrays, "map[string]X" for maps.
Named types whose underlying type is a scalar (e.g. corev1.TaintEffect) take
that scalar. Struct types with a MarshalJSON/MarshalText method are treated as
scalars: "string" when the method visibly produces a JSON string (quoted
fmt.Sprintf, strconv.Quote, json.Marshal(x.String())), otherwise the type must
be mapped explicitly with --override (the run fails until it is).

Input files are given as `IMPORT/PATH=FILE` or as FILE below --src-root, in
which case the import path is the file's directory relative to --src-root.

Example:
  extract.py --src-root /tmp/kubeadm-src --group kubeadm.k8s.io/v1beta4 \
      --kind InitConfiguration --kind ClusterConfiguration \
      --source "kubernetes/kubernetes@<commit> ..." --output out.json \
      /tmp/kubeadm-src/k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go ...
"""

import argparse
import collections
import json
import os
import sys

# ---------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------

Tok = collections.namedtuple("Tok", "kind val line")

_OPS3 = ("<<=", ">>=", "...", "&^=", "&&=", "||=")
_OPS2 = ("<<", ">>", "&^", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
         "&&", "||", "<-", "++", "--", "==", "!=", "<=", ">=", ":=")
_SEMI_KEYWORDS = {"break", "continue", "fallthrough", "return"}
_GO_KEYWORDS = {"break", "case", "chan", "const", "continue", "default", "defer", "else",
                "fallthrough", "for", "func", "go", "goto", "if", "import", "interface",
                "map", "package", "range", "return", "select", "struct", "switch", "type", "var"}


def _needs_semi(tok):
    """Go's automatic semicolon insertion rule for the last token of a line."""
    if tok is None:
        return False
    if tok.kind == "ident":
        return tok.val not in _GO_KEYWORDS or tok.val in _SEMI_KEYWORDS
    if tok.kind in ("number", "string", "rawstring", "rune"):
        return True
    if tok.kind == "op" and tok.val in ("++", "--", ")", "]", "}"):
        return True
    return False


def lex(src, filename="<src>"):
    toks = []
    i, n, line = 0, len(src), 1

    def last():
        return toks[-1] if toks else None

    def newline():
        if _needs_semi(last()):
            toks.append(Tok("op", ";", line))

    while i < n:
        c = src[i]
        if c == "\n":
            newline()
            line += 1
            i += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                raise SyntaxError("%s:%d: unterminated block comment" % (filename, line))
            body = src[i:j + 2]
            if "\n" in body:
                newline()
                line += body.count("\n")
            i = j + 2
            continue
        if c.isalpha() or c == "_" or ord(c) > 127:
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] == "_" or ord(src[j]) > 127):
                j += 1
            toks.append(Tok("ident", src[i:j], line))
            i = j
            continue
        if c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] in "._" or
                             (src[j] in "+-" and src[j - 1] in "eEpP" and not src[i:j].lower().startswith("0x"))):
                j += 1
            toks.append(Tok("number", src[i:j], line))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                if src[j] == "\\":
                    j += 1
                if src[j] == "\n":
                    raise SyntaxError("%s:%d: newline in string" % (filename, line))
                j += 1
            toks.append(Tok("string", src[i:j + 1], line))
            i = j + 1
            continue
        if c == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise SyntaxError("%s:%d: unterminated raw string" % (filename, line))
            toks.append(Tok("rawstring", src[i:j + 1], line))
            line += src[i:j + 1].count("\n")
            i = j + 1
            continue
        if c == "'":
            j = i + 1
            while j < n and src[j] != "'":
                if src[j] == "\\":
                    j += 1
                j += 1
            toks.append(Tok("rune", src[i:j + 1], line))
            i = j + 1
            continue
        for op in _OPS3 + _OPS2:
            if src.startswith(op, i):
                toks.append(Tok("op", op, line))
                i += len(op)
                break
        else:
            toks.append(Tok("op", c, line))
            i += 1
    newline()
    return toks


def unquote(tok):
    """Value of a Go string literal token."""
    if tok.kind == "rawstring":
        return tok.val[1:-1]
    if tok.kind == "string":
        try:
            return json.loads(tok.val)
        except ValueError:
            return bytes(tok.val[1:-1], "utf-8").decode("unicode_escape")
    raise ValueError("not a string literal: %r" % (tok,))


# ---------------------------------------------------------------------------
# Parser (declarations only; function bodies are skipped)
# ---------------------------------------------------------------------------

# Type expressions are tuples:
#   ("named", qualifier_or_None, name) ("ptr", T) ("slice", T) ("array", T)
#   ("map", K, V) ("struct", [Field]) ("interface",) ("func",) ("chan", T)
Field = collections.namedtuple("Field", "names type tag embedded line")
TypeDecl = collections.namedtuple("TypeDecl", "name type alias file imports line")


class Parser:
    def __init__(self, toks, filename):
        self.t = toks
        self.p = 0
        self.f = filename

    def peek(self, k=0):
        q = self.p + k
        return self.t[q] if q < len(self.t) else Tok("eof", "", -1)

    def next(self):
        tok = self.peek()
        self.p += 1
        return tok

    def is_op(self, val, k=0):
        tok = self.peek(k)
        return tok.kind == "op" and tok.val == val

    def is_ident(self, val=None, k=0):
        tok = self.peek(k)
        return tok.kind == "ident" and (val is None or tok.val == val)

    def expect_op(self, val):
        tok = self.next()
        if tok.kind != "op" or tok.val != val:
            self.fail("expected %r, got %r" % (val, tok.val), tok)
        return tok

    def expect_ident(self):
        tok = self.next()
        if tok.kind != "ident":
            self.fail("expected identifier, got %r" % (tok.val,), tok)
        return tok.val

    def fail(self, msg, tok=None):
        tok = tok or self.peek()
        raise SyntaxError("%s:%s: %s" % (self.f, tok.line, msg))

    def skip_semis(self):
        while self.is_op(";"):
            self.p += 1

    def skip_balanced(self):
        """Skip a bracketed group starting at the current opening bracket."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        stack = []
        start = self.p
        while True:
            tok = self.next()
            if tok.kind == "eof":
                self.fail("unbalanced brackets", self.t[start])
            if tok.kind == "op" and tok.val in pairs:
                stack.append(pairs[tok.val])
            elif tok.kind == "op" and tok.val in (")", "]", "}"):
                if not stack or stack.pop() != tok.val:
                    self.fail("mismatched %r" % tok.val, tok)
                if not stack:
                    return self.t[start:self.p]

    def skip_to_semi(self):
        while not self.is_op(";") and self.peek().kind != "eof":
            if self.peek().kind == "op" and self.peek().val in "([{":
                self.skip_balanced()
            else:
                self.p += 1

    # -- types -------------------------------------------------------------
    def parse_type(self):
        tok = self.peek()
        if tok.kind == "op":
            if tok.val == "*":
                self.p += 1
                return ("ptr", self.parse_type())
            if tok.val == "[":
                self.p += 1
                if self.is_op("]"):
                    self.p += 1
                    return ("slice", self.parse_type())
                while not self.is_op("]"):  # array length expression
                    self.p += 1
                self.p += 1
                return ("array", self.parse_type())
            if tok.val == "(":
                self.p += 1
                t = self.parse_type()
                self.expect_op(")")
                return t
            if tok.val == "<-":
                self.p += 1
                self.expect_ident()  # chan
                return ("chan", self.parse_type())
            self.fail("unexpected %r in type" % tok.val)
        if tok.kind != "ident":
            self.fail("unexpected %r in type" % (tok.val,))
        if tok.val == "map":
            self.p += 1
            self.expect_op("[")
            k = self.parse_type()
            self.expect_op("]")
            return ("map", k, self.parse_type())
        if tok.val == "struct":
            self.p += 1
            return ("struct", self.parse_fields())
        if tok.val == "interface":
            self.p += 1
            self.skip_balanced()
            return ("interface",)
        if tok.val == "func":
            self.p += 1
            self.skip_balanced()
            self._skip_func_results()
            return ("func",)
        if tok.val == "chan":
            self.p += 1
            if self.is_op("<-"):
                self.p += 1
            return ("chan", self.parse_type())
        self.p += 1
        if self.is_op(".") and self.is_ident(k=1):
            self.p += 1
            name = self.expect_ident()
            t = ("named", tok.val, name)
        else:
            t = ("named", None, tok.val)
        if self.is_op("[") and not self.is_op("]", 1):  # generic instantiation
            self.skip_balanced()
        return t

    def _skip_func_results(self):
        if self.is_op("("):
            self.skip_balanced()
        elif not (self.is_op(";") or self.is_op("{") or self.is_op(")") or
                  self.is_op(",") or self.is_op("]") or self.peek().kind in ("string", "rawstring")):
            self.parse_type()

    def parse_fields(self):
        self.expect_op("{")
        fields = []
        while True:
            self.skip_semis()
            if self.is_op("}"):
                self.p += 1
                return fields
            line = self.peek().line
            embedded = False
            if self.is_op("*"):
                embedded = True
            elif self.is_ident():
                nxt = self.peek(1)
                if nxt.kind == "op" and nxt.val in (";", "}"):
                    embedded = True
                elif nxt.kind in ("string", "rawstring"):
                    embedded = True
                elif nxt.kind == "op" and nxt.val == "." and self.is_ident(k=2):
                    after = self.peek(3)
                    if (after.kind == "op" and after.val in (";", "}")) or after.kind in ("string", "rawstring"):
                        embedded = True
            if embedded:
                ftype = self.parse_type()
                names = []
            else:
                names = [self.expect_ident()]
                while self.is_op(","):
                    self.p += 1
                    names.append(self.expect_ident())
                ftype = self.parse_type()
            tag = ""
            if self.peek().kind in ("string", "rawstring"):
                tag = unquote(self.next())
            fields.append(Field(names, ftype, tag, embedded, line))
            if not (self.is_op(";") or self.is_op("}")):
                self.fail("expected end of field, got %r" % (self.peek().val,))

    # -- top level ---------------------------------------------------------
    def parse_file(self):
        pkg = None
        imports = {}
        types = []
        methods = collections.defaultdict(dict)  # type name -> {method: body text}
        self.skip_semis()
        while self.peek().kind != "eof":
            tok = self.next()
            if tok.kind == "ident" and tok.val == "package":
                pkg = self.expect_ident()
            elif tok.kind == "ident" and tok.val == "import":
                specs = []
                if self.is_op("("):
                    self.p += 1
                    while True:
                        self.skip_semis()
                        if self.is_op(")"):
                            self.p += 1
                            break
                        specs.append(self._import_spec())
                else:
                    specs.append(self._import_spec())
                for alias, path in specs:
                    if alias in ("_", "."):
                        continue  # dot-imported names are not resolved (reported as undeclared if used)
                    imports[alias or _default_alias(path)] = path
            elif tok.kind == "ident" and tok.val == "type":
                if self.is_op("("):
                    self.p += 1
                    while True:
                        self.skip_semis()
                        if self.is_op(")"):
                            self.p += 1
                            break
                        types.append(self._type_spec(imports))
                else:
                    types.append(self._type_spec(imports))
            elif tok.kind == "ident" and tok.val in ("const", "var"):
                if self.is_op("("):
                    self.skip_balanced()
                else:
                    self.skip_to_semi()
            elif tok.kind == "ident" and tok.val == "func":
                recv = None
                if self.is_op("("):
                    rtoks = self.skip_balanced()
                    idents = [x.val for x in rtoks if x.kind == "ident"]
                    # (name *T) / (name T) / (T) / (name *T[P])
                    brack = [k for k, x in enumerate(rtoks) if x.kind == "op" and x.val == "["]
                    if brack:
                        idents = [x.val for x in rtoks[:brack[0]] if x.kind == "ident"]
                    recv = idents[-1] if idents else None
                name = self.expect_ident()
                if self.is_op("["):  # type parameters
                    self.skip_balanced()
                self.skip_balanced()  # parameters
                # results, up to the body or end of declaration
                while not (self.is_op("{") or self.is_op(";")) and self.peek().kind != "eof":
                    if self.is_ident("interface") or self.is_ident("struct"):
                        self.p += 1
                        self.skip_balanced()
                    elif self.peek().kind == "op" and self.peek().val in "([":
                        self.skip_balanced()
                    else:
                        self.p += 1
                body = ""
                if self.is_op("{"):
                    btoks = self.skip_balanced()
                    body = " ".join(x.val for x in btoks)
                if recv:
                    methods[recv][name] = body
            else:
                self.fail("unexpected top-level token %r" % (tok.val,), tok)
            self.skip_semis()
        return pkg, imports, types, methods

    def _import_spec(self):
        alias = None
        if self.is_ident() or self.is_op("."):
            alias = self.next().val
        tok = self.next()
        if tok.kind not in ("string", "rawstring"):
            self.fail("expected import path", tok)
        return alias, unquote(tok)

    def _type_spec(self, imports):
        line = self.peek().line
        name = self.expect_ident()
        if self.is_op("[") and self.is_ident(k=1) and not self.is_op("]", 2):
            self.skip_balanced()  # type parameters (generic declaration)
        alias = False
        if self.is_op("="):
            self.p += 1
            alias = True
        t = self.parse_type()
        return TypeDecl(name, t, alias, self.f, imports, line)


def _default_alias(path):
    last = path.rstrip("/").split("/")[-1]
    return last


# ---------------------------------------------------------------------------
# Struct tags
# ---------------------------------------------------------------------------

def tag_lookup(tag, key):
    """reflect.StructTag.Lookup."""
    while tag:
        i = 0
        while i < len(tag) and tag[i] == " ":
            i += 1
        tag = tag[i:]
        if not tag:
            break
        i = 0
        while i < len(tag) and tag[i] > " " and tag[i] != ":" and tag[i] != '"' and ord(tag[i]) != 0x7f:
            i += 1
        if i == 0 or i + 1 >= len(tag) or tag[i] != ":" or tag[i + 1] != '"':
            break
        name = tag[:i]
        tag = tag[i + 1:]
        i = 1
        while i < len(tag) and tag[i] != '"':
            if tag[i] == "\\":
                i += 1
            i += 1
        if i >= len(tag):
            break
        qvalue = tag[:i + 1]
        tag = tag[i + 1:]
        if key == name:
            return json.loads(qvalue), True
    return "", False


# ---------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------

GO_BUILTINS = {
    "string": "string", "bool": "bool",
    "int": "int", "int8": "int", "int16": "int", "int32": "int", "int64": "int",
    "uint": "int", "uint8": "int", "uint16": "int", "uint32": "int", "uint64": "int",
    "uintptr": "int", "byte": "int", "rune": "int",
    "float32": "number", "float64": "number",
    "any": "object", "error": "object",
}

META = "k8s.io/apimachinery/pkg/apis/meta/v1"
KNOWN = {
    (META, "Duration"): "duration",
    (META, "Time"): "time",
    (META, "MicroTime"): "time",
    ("k8s.io/apimachinery/pkg/api/resource", "Quantity"): "quantity",
    ("k8s.io/apimachinery/pkg/api/resource", "QuantityValue"): "quantity",
    ("k8s.io/apimachinery/pkg/util/intstr", "IntOrString"): "intOrString",
    ("k8s.io/apimachinery/pkg/runtime", "RawExtension"): "object",
    ("k8s.io/apimachinery/pkg/runtime", "Object"): "object",
    ("k8s.io/apimachinery/pkg/types", "UID"): "string",
    ("time", "Duration"): "int",
    ("time", "Time"): "string",
}
# Used only when TypeMeta is not among the parsed inputs.
TYPEMETA_FALLBACK = [("kind", "string"), ("apiVersion", "string")]

SCALARS = {"string", "int", "bool", "number", "duration", "time", "quantity", "intOrString", "object"}


def qual(key):
    return "%s.%s" % key


class Extractor:
    def __init__(self, overrides, opaque, allow_unresolved):
        self.pkgs = {}            # import path -> {"types": {name: TypeDecl}, "methods": {...}, "name": pkg}
        self.overrides = overrides
        self.opaque = opaque
        self.allow_unresolved = allow_unresolved
        self.structs = collections.OrderedDict()   # key -> None (discovery order)
        self.queue = collections.deque()
        self.scalar_types = {}    # qualified name -> description
        self.errors = []
        self.warnings = []

    def add_file(self, import_path, filename):
        with open(filename, encoding="utf-8") as fh:
            src = fh.read()
        pkgname, imports, types, methods = Parser(lex(src, filename), filename).parse_file()
        pkg = self.pkgs.setdefault(import_path, {"types": {}, "methods": collections.defaultdict(dict), "name": pkgname})
        if pkg["name"] != pkgname:
            raise SystemExit("%s: package %s, but other files of %s declare package %s"
                             % (filename, pkgname, import_path, pkg["name"]))
        for td in types:
            if td.name in pkg["types"]:
                raise SystemExit("%s: type %s declared twice in %s" % (filename, td.name, import_path))
            pkg["types"][td.name] = td
        for recv, ms in methods.items():
            pkg["methods"][recv].update(ms)

    # -- type references ---------------------------------------------------
    def lookup(self, key):
        pkg = self.pkgs.get(key[0])
        return pkg["types"].get(key[1]) if pkg else None

    def key_of(self, named, imports, pkgpath, where):
        _, q, name = named
        if q is None:
            return (pkgpath, name)
        if q not in imports:
            self.errors.append("%s: unknown package qualifier %r in %s.%s" % (where, q, q, name))
            return None
        return (imports[q], name)

    def serialized_scalar(self, key):
        """Scalar a type key is forced to, or None."""
        qn = qual(key)
        if qn in self.overrides:
            return self.overrides[qn]
        if qn in self.opaque:
            return "object"
        if key in KNOWN:
            return KNOWN[key]
        pkg = self.pkgs.get(key[0])
        if pkg:
            ms = pkg["methods"].get(key[1], {})
            if "MarshalJSON" in ms or "MarshalText" in ms:
                if "MarshalText" in ms and "MarshalJSON" not in ms:
                    self.scalar_types[qn] = "string (MarshalText)"
                    return "string"
                body = ms["MarshalJSON"]
                if _marshals_string(body):
                    self.scalar_types[qn] = "string (MarshalJSON)"
                    return "string"
                self.errors.append("%s has a custom MarshalJSON whose output type is not obvious; "
                                   "map it with --override %s=<type>" % (qn, qn))
                return "object"
        return None

    def resolve(self, t, pkgpath, imports, where):
        """Resolve a Go type expression to a reference tree."""
        kind = t[0]
        if kind == "ptr":
            return self.resolve(t[1], pkgpath, imports, where)
        if kind in ("slice", "array"):
            elem = t[1]
            if elem[0] == "named" and elem[1] is None and elem[2] in ("byte", "uint8"):
                return ("scalar", "string")  # []byte is base64 in JSON
            return ("slice", self.resolve(elem, pkgpath, imports, where))
        if kind == "map":
            k = self.resolve(t[1], pkgpath, imports, where)
            if not (k[0] == "scalar" and k[1] in ("string", "int")):
                self.errors.append("%s: map key type %r does not serialize to a JSON string" % (where, t[1]))
            return ("map", self.resolve(t[2], pkgpath, imports, where))
        if kind in ("interface",):
            return ("scalar", "object")
        if kind == "struct":
            self.errors.append("%s: anonymous struct types are not supported" % where)
            return ("scalar", "object")
        if kind in ("func", "chan"):
            self.errors.append("%s: %s types cannot be serialized" % (where, kind))
            return ("scalar", "object")
        # named
        if t[1] is None and t[2] in GO_BUILTINS and t[2] not in self.pkgs.get(pkgpath, {"types": {}})["types"]:
            return ("scalar", GO_BUILTINS[t[2]])
        key = self.key_of(t, imports, pkgpath, where)
        if key is None:
            return ("scalar", "object")
        forced = self.serialized_scalar(key)
        if forced is not None:
            return ("scalar", forced)
        decl = self.lookup(key)
        if decl is None:
            msg = "%s: type %s is not declared in any input file" % (where, qual(key))
            if self.allow_unresolved:
                self.warnings.append(msg + " (mapped to object)")
                return ("scalar", "object")
            self.errors.append(msg)
            return ("scalar", "object")
        if decl.type[0] == "struct" and not decl.alias:
            if key not in self.structs:
                self.structs[key] = None
                self.queue.append(key)
            return ("struct", key)
        ref = self.resolve(decl.type, key[0], decl.imports, "%s:%d" % (decl.file, decl.line))
        if ref[0] == "scalar" and not decl.alias:
            self.scalar_types.setdefault(qual(key), ref[1])
        return ref

    # -- struct flattening -------------------------------------------------
    def struct_fields(self, key, depth=0, seen=()):
        decl = self.lookup(key)
        out = []  # (json name, ref, omitempty, depth, tagged, go name)
        if decl is None:
            if key == (META, "TypeMeta"):
                return [(n, ("scalar", t), True, depth, True, n) for n, t in TYPEMETA_FALLBACK]
            self.errors.append("struct %s is not declared in any input file" % qual(key))
            return out
        if key in seen:
            self.errors.append("embedding cycle through %s" % qual(key))
            return out
        for f in decl.type[1]:
            where = "%s:%d" % (decl.file, f.line)
            jtag, has = tag_lookup(f.tag, "json")
            parts = jtag.split(",")
            jname, opts = parts[0], set(parts[1:])
            if has and jtag == "-":
                continue
            omitempty = "omitempty" in opts or "omitzero" in opts
            if f.embedded:
                base = f.type[1] if f.type[0] == "ptr" else f.type
                if base[0] != "named":
                    self.errors.append("%s: unsupported embedded type %r" % (where, base))
                    continue
                tname = base[2]
                if not jname:
                    bkey = self.key_of(base, decl.imports, key[0], where)
                    if bkey is None:
                        continue
                    bdecl = self.lookup(bkey)
                    is_struct = (bdecl is not None and bdecl.type[0] == "struct") or bkey == (META, "TypeMeta")
                    if is_struct and self.serialized_scalar(bkey) is None:
                        out.extend(self.struct_fields(bkey, depth + 1, seen + (key,)))
                        continue
                    if not tname[:1].isupper():
                        continue  # unexported non-struct embedded field is ignored
                    jname = tname
                ref = self.resolve(f.type, key[0], decl.imports, where)
                out.append((jname, ref, omitempty, depth, bool(jtag.split(",")[0]), tname))
                continue
            for goname in f.names:
                if not goname[:1].isupper():
                    continue
                name = jname or goname
                ref = self.resolve(f.type, key[0], decl.imports, where)
                out.append((name, ref, omitempty, depth, bool(jname), goname))
        return out

    def dominant(self, key, fields):
        """Apply encoding/json's rules for duplicate names (shallowest wins,
        then a single tagged one; otherwise all are dropped). Fields keep the
        position of the winning declaration."""
        by_name = collections.OrderedDict()
        for pos, fld in enumerate(fields):
            by_name.setdefault(fld[0], []).append((pos, fld))
        chosen = []
        for name, cands in by_name.items():
            mind = min(c[1][3] for c in cands)
            top = [c for c in cands if c[1][3] == mind]
            if len(top) > 1:
                tagged = [c for c in top if c[1][4]]
                if len(tagged) == 1:
                    top = tagged
                else:
                    self.warnings.append("%s: field %r is ambiguous (dropped, as encoding/json does)" % (qual(key), name))
                    continue
            chosen.append(top[0])
        chosen.sort(key=lambda c: c[0])
        return collections.OrderedDict((c[1][0], c[1]) for c in chosen)

    def run(self, primary, kinds):
        for k in kinds:
            key = (primary, k)
            decl = self.lookup(key)
            if decl is None or decl.type[0] != "struct":
                raise SystemExit("kind %s is not a struct declared in %s" % (k, primary))
            if key not in self.structs:
                self.structs[key] = None
                self.queue.append(key)
        computed = {}
        while self.queue:
            key = self.queue.popleft()
            computed[key] = self.dominant(key, self.struct_fields(key))
        return computed


def _marshals_string(body):
    b = body.replace(" ", "")
    if "strconv.Quote(" in b:
        return True
    if "fmt.Sprintf(`\"%s\"`" in b or 'fmt.Sprintf("\\"%s\\""' in b:
        return True
    if "json.Marshal(" in b and ".String())" in b and b.count("return") == 1:
        return True
    return False


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def display_names(keys, primary, aliases):
    by_name = collections.defaultdict(list)
    for k in keys:
        by_name[k[1]].append(k)
    names = {}
    for name, ks in by_name.items():
        if len(ks) == 1:
            names[ks[0]] = name
            continue
        for k in ks:
            if k[0] == primary:
                names[k] = name
            else:
                names[k] = "%s.%s" % (aliases.get(k[0]) or "".join(k[0].split("/")[-2:]), name)
    return names


def render(ref, names):
    if ref[0] == "scalar":
        return ref[1]
    if ref[0] == "struct":
        return names[ref[1]]
    if ref[0] == "slice":
        return "[]" + render(ref[1], names)
    if ref[0] == "map":
        return "map[string]" + render(ref[1], names)
    raise AssertionError(ref)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="[IMPORT/PATH=]FILE",
                    help="Go source files; import path explicit or derived from --src-root")
    ap.add_argument("--src-root", help="directory whose sub-paths are Go import paths")
    ap.add_argument("--group", required=True, help="API group/version, e.g. kubeadm.k8s.io/v1beta4")
    ap.add_argument("--kind", action="append", required=True, help="kind (struct in the primary package); repeatable")
    ap.add_argument("--primary", help="import path of the kinds' package (default: package of the first input)")
    ap.add_argument("--source", required=True, help="provenance string written to the output")
    ap.add_argument("--output", "-o", required=True, help="output JSON path ('-' for stdout)")
    ap.add_argument("--override", action="append", default=[], metavar="IMPORT/PATH.Type=TYPE",
                    help="force the serialized type of a named type (e.g. for custom MarshalJSON)")
    ap.add_argument("--opaque", action="append", default=[], metavar="IMPORT/PATH.Type",
                    help="treat a named type as an opaque 'object'")
    ap.add_argument("--alias", action="append", default=[], metavar="IMPORT/PATH=ALIAS",
                    help="prefix used for type names that collide across packages")
    ap.add_argument("--allow-unresolved", action="store_true",
                    help="map types missing from the inputs to 'object' instead of failing")
    a = ap.parse_args(argv)

    overrides = {}
    for o in a.override:
        q, _, v = o.rpartition("=")
        if not q:
            ap.error("bad --override %r" % o)
        overrides[q] = v
    aliases = {}
    for o in a.alias:
        p, _, v = o.partition("=")
        aliases[p] = v

    ex = Extractor(overrides, set(a.opaque), a.allow_unresolved)
    first = None
    for spec in a.inputs:
        if "=" in spec:
            ip, _, fn = spec.partition("=")
        else:
            fn = spec
            if not a.src_root:
                ap.error("%s: give IMPORT/PATH=FILE or --src-root" % spec)
            rel = os.path.relpath(os.path.dirname(os.path.abspath(fn)), os.path.abspath(a.src_root))
            if rel.startswith(".."):
                ap.error("%s is not below --src-root" % fn)
            ip = rel.replace(os.sep, "/")
        ex.add_file(ip, fn)
        first = first or ip
    primary = a.primary or first

    computed = ex.run(primary, a.kind)
    for q in overrides:
        if q not in ex.scalar_types:
            ex.scalar_types[q] = "%s (--override)" % overrides[q]
    if ex.errors:
        for e in ex.errors:
            print("error: " + e, file=sys.stderr)
        return 1
    for w in ex.warnings:
        print("warning: " + w, file=sys.stderr)

    names = display_names(list(computed), primary, aliases)
    types = collections.OrderedDict()
    for key, fields in computed.items():
        entry = collections.OrderedDict()
        entry["package"] = key[0]
        fo = collections.OrderedDict()
        for jname, (_, ref, omitempty, _, tagged, goname) in fields.items():
            fd = collections.OrderedDict([("type", render(ref, names)), ("omitempty", omitempty)])
            if not tagged:
                fd["untagged"] = True  # key is the Go field name (no json tag)
            fo[jname] = fd
        entry["fields"] = fo
        types[names[key]] = entry

    doc = collections.OrderedDict()
    doc["group"] = a.group
    doc["source"] = a.source
    doc["kinds"] = list(a.kind)
    doc["types"] = types
    doc["scalarTypes"] = collections.OrderedDict(sorted(ex.scalar_types.items()))
    text = json.dumps(doc, indent=2) + "\n"
    if a.output == "-":
        sys.stdout.write(text)
    else:
        with open(a.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    nf = sum(len(t["fields"]) for t in types.values())
    print("%s: %d kinds, %d types, %d fields -> %s" % (a.group, len(a.kind), len(types), nf, a.output), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
