"""Ansible inventories (YAML or INI) for fleet runs: hosts, groups, per-host variables.

An existing fleet inventory is used as it is.  Two readers give the same hosts and variables:

* ``ansible-inventory --list`` when ansible-core is installed (``pip install ansible-core``):
  Ansible's own reader, so everything Ansible accepts works - inventory directories,
  ``group_vars``/``host_vars`` anywhere Ansible looks, plugins and dynamic inventory scripts,
  vault.  It runs as a separate program and slmbench reads its JSON output; slmbench does not
  import ansible-core (GPLv3) and does not depend on it (docs/fleet.md).
* otherwise a built-in reader of the documented subset: one YAML (``.yml``, ``.yaml``,
  ``.json``) or INI file (any other name); groups, ``children``, ``vars``, ``[group:vars]``,
  ``[group:children]``, host ranges (``jetson-[01:04]``), ``host:port``, and ``group_vars/`` and
  ``host_vars/`` beside the file; variables merged with Ansible's precedence (``all`` < parent
  groups < child groups < host; inventory file < ``group_vars/`` < host line < ``host_vars/``).
  Its errors name the file and line.

``--limit`` patterns (both readers): host or group names, globs (``jetson-*``), several joined
with ``,`` or ``:``, ``&GROUP`` (also in GROUP) and ``!NAME`` (except); ``all`` or ``*`` is
everyone.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmbench.errors import ConfigError, warn

DEFAULT_REMOTE_DIR = ".cache/slmbench/remote"
YAML_SUFFIXES = (".yml", ".yaml", ".json")


@dataclass
class Host:
    """One inventory host and its merged variables.

    ``where`` maps a variable to the place it was set (``inv.ini:12``) when the built-in reader
    read it; Ansible's reader gives only the inventory path."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def _where(self, key: str) -> str:
        return self.where.get(key) or self.source

    def _var(self, *keys: str) -> tuple[str, Any]:
        for key in keys:
            value = self.vars.get(key)
            if value is not None and value != "":
                return key, value
        return keys[0], None

    def _text(self, *keys: str) -> str | None:
        key, value = self._var(*keys)
        if value is None:
            return None
        if isinstance(value, (dict, list, bool)):
            raise ConfigError(f"{self._where(key)}: host {self.name}: {key} must be a string, "
                              f"not {value!r}")
        return str(value)

    @property
    def address(self) -> str:
        return self._text("ansible_host", "ansible_ssh_host") or self.name

    @property
    def user(self) -> str | None:
        return self._text("ansible_user", "ansible_ssh_user", "ansible_ssh_user_name")

    @property
    def port(self) -> int | None:
        key, value = self._var("ansible_port", "ansible_ssh_port")
        if value is None:
            return None
        try:
            port = int(str(value))
        except ValueError:
            port = 0
        if not 0 < port < 65536 or isinstance(value, bool):
            raise ConfigError(f"{self._where(key)}: host {self.name}: {key} {value!r} is not a "
                              "port number (1-65535)")
        return port

    @property
    def target(self) -> str:
        """What ssh is given: ``user@address`` or ``address``."""
        return f"{self.user}@{self.address}" if self.user else self.address

    @property
    def ssh_opts(self) -> list[str]:
        """``-i ansible_ssh_private_key_file`` and ``ansible_ssh_common_args``."""
        opts: list[str] = []
        key = self._text("ansible_ssh_private_key_file", "ansible_private_key_file")
        if key:
            opts += ["-i", os.path.expanduser(key)]
        args = self._text("ansible_ssh_common_args")
        if args:
            try:
                opts += shlex.split(args)
            except ValueError as exc:
                raise ConfigError(f"{self._where('ansible_ssh_common_args')}: host {self.name}: "
                                  f"ansible_ssh_common_args: {exc}") from None
        return opts

    @property
    def connection(self) -> str:
        return self._text("ansible_connection") or "ssh"

    @property
    def remote_slmbench(self) -> str:
        """The slmbench command there: ``slmbench_remote``, else ``slmbench_venv``/bin/slmbench
        (the venv the playbook deploy/ansible/install.yml creates), else ``slmbench``."""
        cmd = self._text("slmbench_remote")
        if cmd:
            return cmd
        venv = self._text("slmbench_venv")
        return f"{venv.rstrip('/')}/bin/slmbench" if venv else "slmbench"

    @property
    def device(self) -> str | None:
        """``slmbench_device``: the device label of this host's results (default: detected)."""
        return self._text("slmbench_device")

    @property
    def remote_dir(self) -> str:
        return self._text("slmbench_remote_dir") or DEFAULT_REMOTE_DIR


@dataclass
class Inventory:
    source: str
    reader: str  # "ansible-inventory" or "built-in"
    hosts: dict[str, Host]  # in inventory order
    children: dict[str, list[str]]  # group -> child groups
    direct: dict[str, list[str]]  # group -> hosts listed in it

    def members(self, group: str) -> list[str]:
        """Hosts of ``group`` and of its children, recursively, in inventory order."""
        seen: set[str] = set()
        todo, groups = [group], set()
        while todo:
            g = todo.pop()
            if g in groups:
                continue
            groups.add(g)
            seen.update(self.direct.get(g, []))
            todo += self.children.get(g, [])
        return [h for h in self.hosts if h in seen or group == "all"]

    def select(self, limit: str | None = None) -> list[Host]:
        """The hosts an Ansible ``--limit`` pattern names (all hosts for None)."""
        if not self.hosts:
            raise ConfigError(f"{self.source}: the inventory has no hosts")
        if not limit or not limit.strip():
            return list(self.hosts.values())
        parts = [p.strip() for p in (limit.split(",") if "," in limit else limit.split(":"))]
        if not all(parts):
            raise ConfigError(f"--limit {limit!r}: empty pattern between separators (use "
                              "names joined with ',' or ':', e.g. jetsons,!jetson-02)")
        union: list[str] = []
        intersect: list[set[str]] = []
        exclude: set[str] = set()
        for part in parts:
            op, name = (part[0], part[1:]) if part[0] in "!&" else ("", part)
            names = self._match(name, limit)
            if op == "!":
                exclude.update(names)
            elif op == "&":
                intersect.append(set(names))
            else:
                union += [n for n in names if n not in union]
        if not union:  # only ! and & parts: they act on all hosts, as in Ansible
            union = list(self.hosts)
        chosen = [n for n in union if n not in exclude and all(n in s for s in intersect)]
        if not chosen:
            raise ConfigError(f"--limit {limit!r} leaves no host of {self.source}")
        return [self.hosts[n] for n in self.hosts if n in chosen]

    def _match(self, name: str, limit: str) -> list[str]:
        if name.startswith("~") or re.search(r"\[\d*:?-?\d*\]$", name):
            raise ConfigError(f"--limit {limit!r}: {name!r}: regular expressions (~) and "
                              "subscripts ([0]) are not supported; use names, globs (*), "
                              "&GROUP and !NAME")
        groups = set(self.direct) | set(self.children) | {"all"}
        if name in ("all", "*"):
            return list(self.hosts)
        if any(c in name for c in "*?["):
            found: list[str] = [h for h in self.hosts if fnmatch.fnmatchcase(h, name)]
            for g in sorted(groups):
                if fnmatch.fnmatchcase(g, name):
                    found += [h for h in self.members(g) if h not in found]
            if not found:
                raise ConfigError(f"--limit {limit!r}: {name!r} matches no host or group of "
                                  f"{self.source}")
            return found
        if name in groups:
            return self.members(name)
        if name in self.hosts:
            return [name]
        raise ConfigError(f"--limit {limit!r}: no host or group named {name!r} in {self.source} "
                          f"(groups: {', '.join(sorted(groups - {'all', 'ungrouped'})) or 'none'}"
                          f"; hosts: {_few(list(self.hosts))})")


def _few(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


# --------------------------------------------------------------------------- loading

def load_inventory(path: str | os.PathLike, reader: str = "auto") -> Inventory:
    """Read an Ansible inventory.  ``reader``: ``auto`` (``ansible-inventory`` when it is on
    PATH, else the built-in reader), ``ansible`` or ``builtin``."""
    source = os.fspath(path)
    if reader not in ("auto", "ansible", "builtin"):
        raise ConfigError(f"inventory reader {reader!r}: expected auto, ansible or builtin")
    if not os.path.exists(source):
        raise ConfigError(f"{source}: no such inventory file")
    exe = shutil.which("ansible-inventory")
    if reader == "ansible" and not exe:
        raise ConfigError("ansible-inventory not found: install ansible-core "
                          "(pip install ansible-core) or use the built-in reader")
    if exe and reader != "builtin":
        return _read_with_ansible(source, exe)
    return read_builtin(source)


def _read_with_ansible(source: str, exe: str) -> Inventory:
    env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="1", ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1")
    try:
        proc = subprocess.run([exe, "-i", source, "--list"], capture_output=True, text=True,
                              check=False, timeout=300, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{source}: ansible-inventory --list took more than 300 s") from None
    if proc.returncode != 0:
        # the built-in reader names the line for the formats it knows; else Ansible's reason
        if os.path.isfile(source):
            read_builtin(source)  # raises its own error when it finds one
        raise ConfigError(f"{source}: ansible-inventory cannot read it: "
                          f"{_ansible_reason(proc.stderr)}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise ConfigError(f"{source}: ansible-inventory printed no JSON "
                          f"({(proc.stdout or proc.stderr).strip()[:200]!r})") from None
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    direct = {g: list(v.get("hosts") or []) for g, v in data.items()
              if g != "_meta" and isinstance(v, dict)}
    children = {g: list(v.get("children") or []) for g, v in data.items()
                if g != "_meta" and isinstance(v, dict)}
    return _assemble(source, "ansible-inventory", direct, children,
                     {h: (dict(v), {}) for h, v in hostvars.items()})


def _ansible_reason(stderr: str) -> str:
    """One line from Ansible's multi-paragraph error: the first reason and where."""
    lines = [x.strip() for x in (stderr or "").splitlines() if x.strip()]
    reason = next((x for x in lines if "Failed to parse" in x and ":" in x), None) \
        or next((x for x in lines if x.startswith("[ERROR]")), None) \
        or (lines[-1] if lines else "no output")
    origin = next((x for x in lines if re.match(r"Origin: .*:\d+", x)), "")
    reason = re.sub(r"^\[(WARNING|ERROR)\]:\s*", "", reason)
    return reason + (f" ({origin})" if origin else "")


def _assemble(source: str, reader: str, direct: dict[str, list[str]],
              children: dict[str, list[str]],
              hostvars: dict[str, tuple[dict[str, Any], dict[str, str]]]) -> Inventory:
    """Order hosts depth-first from ``all`` (hosts of a group, then its children)."""
    order: list[str] = []
    visited: set[str] = set()

    def walk(group: str) -> None:
        if group in visited:
            return
        visited.add(group)
        order.extend(h for h in direct.get(group, []) if h not in order)
        for child in children.get(group, []):
            walk(child)

    walk("all")
    for g in direct:
        walk(g)
    order += [h for h in hostvars if h not in order]
    parents: dict[str, set[str]] = {}
    for g, kids in children.items():
        for k in kids:
            parents.setdefault(k, set()).add(g)

    def ancestors(group: str) -> set[str]:
        out, todo = set(), [group]
        while todo:
            g = todo.pop()
            if g not in out:
                out.add(g)
                todo += parents.get(g, ())
        return out

    hosts: dict[str, Host] = {}
    for name in order:
        groups: set[str] = {"all"}
        for g, members in direct.items():
            if name in members:
                groups |= ancestors(g)
        values, where = hostvars.get(name, ({}, {}))
        hosts[name] = Host(name, values, sorted(groups), where, source)
    return Inventory(source, reader, hosts, children, direct)


# --------------------------------------------------------------------------- built-in reader

class _Vars(dict):
    """variable -> (value, where)"""


@dataclass
class _Raw:
    path: str
    group_vars: dict[str, _Vars] = field(default_factory=dict)
    group_where: dict[str, str] = field(default_factory=dict)
    direct: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    host_vars: dict[str, _Vars] = field(default_factory=dict)
    extra_group_vars: dict[str, _Vars] = field(default_factory=dict)  # group_vars/
    extra_host_vars: dict[str, _Vars] = field(default_factory=dict)  # host_vars/

    def group(self, name: str, where: str) -> None:
        if name not in self.direct:
            self.direct[name] = []
            self.children[name] = []
            self.group_vars[name] = _Vars()
            self.group_where[name] = where

    def host(self, group: str, name: str, values: dict[str, tuple[Any, str]], where: str
             ) -> None:
        """``values``: variable -> (value, where)."""
        self.group(group, where)
        if name not in self.direct[group]:
            self.direct[group].append(name)
        self.host_vars.setdefault(name, _Vars()).update(values)

    def child(self, parent: str, child: str, where: str) -> None:
        self.group(parent, where)
        self.group(child, where)
        if child not in self.children[parent]:
            self.children[parent].append(child)


def read_builtin(path: str | os.PathLike) -> Inventory:
    """The built-in reader: one YAML or INI inventory file (see the module docstring)."""
    source = os.fspath(path)
    p = Path(source)
    if p.is_dir():
        raise ConfigError(f"{source}: an inventory directory needs Ansible's reader: install "
                          "ansible-core (pip install ansible-core), or give one inventory file")
    try:
        raw_bytes = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the inventory ({exc.strerror})") from None
    if raw_bytes.startswith(b"#!") and os.access(source, os.X_OK):
        raise ConfigError(f"{source}:1: a dynamic inventory script needs Ansible's reader: "
                          "install ansible-core (pip install ansible-core)")
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw_bytes[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{source}:{line}: not UTF-8 text") from None
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        raise ConfigError(f"{source}:1: a vault-encrypted inventory needs Ansible's reader: "
                          "install ansible-core (pip install ansible-core)")
    raw = _Raw(source)
    if p.suffix.lower() in YAML_SUFFIXES:
        _parse_yaml(raw, text)
    elif p.suffix.lower() == ".toml":
        raise ConfigError(f"{source}: TOML inventories need Ansible's reader: install "
                          "ansible-core (pip install ansible-core), or use YAML or INI")
    else:
        _parse_ini(raw, text)
    _read_vars_dirs(raw, p.parent)
    return _resolve(raw)


# ---- YAML

def _parse_yaml(raw: _Raw, text: str) -> None:
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{raw.path}{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{raw.path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if root is None:
        raise ConfigError(f"{raw.path}: the inventory is empty")

    def at(node: Any) -> str:
        return f"{raw.path}:{node.start_mark.line + 1}"

    def value(node: Any) -> Any:
        try:
            return loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{at(node)}: {exc}") from None

    def mapping(node: Any, what: str) -> list[tuple[Any, Any]]:
        if isinstance(node, yaml.ScalarNode) and value(node) is None:
            return []
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(f"{at(node)}: {what} must be a mapping (name: ...), not "
                              f"{_kind(node)}")
        return node.value

    def key_text(node: Any) -> str:
        k = value(node)
        if not isinstance(k, (str, int)) or isinstance(k, bool) or str(k).strip() == "":
            raise ConfigError(f"{at(node)}: {k!r} is not a valid name")
        return str(k)

    def variables(node: Any, what: str) -> dict[str, tuple[Any, str]]:
        return {key_text(k): (value(v), at(k)) for k, v in mapping(node, what)}

    def group(name: str, node: Any, where: str) -> None:
        raw.group(name, where)
        for knode, vnode in mapping(node, f"group {name!r}"):
            key = key_text(knode)
            if key == "hosts":
                for hnode, hvars in mapping(vnode, f"the hosts of group {name!r}"):
                    values = variables(hvars, f"the variables of host {key_text(hnode)!r}")
                    for host, port in _expand_host_pattern(key_text(hnode), at(hnode)):
                        hv = dict(values)
                        if port is not None:
                            hv.setdefault("ansible_port", (port, at(hnode)))
                        raw.host(name, host, hv, at(hnode))
            elif key == "vars":
                raw.group_vars[name].update(variables(vnode, f"the vars of group {name!r}"))
            elif key == "children":
                for cnode, cbody in mapping(vnode, f"the children of group {name!r}"):
                    child = key_text(cnode)
                    raw.child(name, child, at(cnode))
                    group(child, cbody, at(cnode))
            else:
                warn(f"{at(knode)}: ignored key {key!r} in group {name!r} (a group has hosts, "
                     "vars and children)")

    if isinstance(root, yaml.MappingNode):
        keys = {key_text(k) for k, _ in root.value}
        if "plugin" in keys:
            raise ConfigError(f"{at(root)}: an inventory plugin configuration (plugin: ...) "
                              "needs Ansible's reader: install ansible-core "
                              "(pip install ansible-core)")
    for gnode, body in mapping(root, "the inventory (group: {hosts: ..., children: ...})"):
        name = key_text(gnode)
        if name != "all":
            raw.child("all", name, at(gnode))
        group(name, body, at(gnode))


def _kind(node: Any) -> str:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"{node.value!r}"
    return "that"


# ---- INI

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")


def _ini_value(text: str) -> Any:
    """Like Ansible: a Python literal when it is one (22, True, [1, 2], 'quoted'), else the
    text."""
    try:
        v = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if v is Ellipsis or isinstance(v, (complex, bytes)):
        return text
    return v


def _parse_ini(raw: _Raw, text: str) -> None:
    group, state = "ungrouped", "hosts"
    pending_children: dict[str, tuple[str, str]] = {}  # child -> (parent, where) not yet seen
    vars_only: dict[str, str] = {}  # group -> where of a [g:vars] before the group exists
    declared: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{raw.path}:{n}"
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "vars", "children"):
                raise ConfigError(f"{where}: section [{group}:{state}]: unknown kind {state!r} "
                                  "(expected [GROUP], [GROUP:vars] or [GROUP:children])")
            if state == "vars":
                if group not in declared:
                    vars_only.setdefault(group, where)
            else:
                declared.add(group)
            raw.group(group, where)
            if group != "all" and not any(group in k for k in raw.children.values()):
                raw.child("all", group, where)
            continue
        if line.startswith("["):
            raise ConfigError(f"{where}: {line!r} is not a section header (expected [GROUP], "
                              "[GROUP:vars] or [GROUP:children], without spaces)")
        if state == "hosts":
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc} in {line!r}") from None
            if not tokens:
                continue
            values: dict[str, Any] = {}
            for tok in tokens[1:]:
                if "=" not in tok or tok.startswith("="):
                    raise ConfigError(f"{where}: {tok!r}: expected VAR=VALUE after the host name "
                                      f"{tokens[0]!r}")
                k, v = tok.split("=", 1)
                values[k] = (_ini_value(v), where)
            for host, port in _expand_host_pattern(tokens[0], where):
                hv = dict(values)
                if port is not None:
                    hv.setdefault("ansible_port", (port, where))
                raw.group(group, where)
                if group == "ungrouped" and "ungrouped" not in raw.children.get("all", []):
                    raw.child("all", "ungrouped", where)
                raw.host(group, host, hv, where)
        elif state == "vars":
            if "=" not in line or line.startswith("="):
                raise ConfigError(f"{where}: {line!r}: expected VAR=VALUE in [{group}:vars]")
            k, v = (x.strip() for x in line.split("=", 1))
            raw.group_vars[group][k] = (_ini_value(v), where)
        else:  # children
            child = line.split()[0] if line.split() else ""
            if not re.fullmatch(r"[^:\]\s\[]+", child) or len(line.split()) > 1 \
                    and not line.split()[1].startswith(("#", ";")):
                raise ConfigError(f"{where}: {line!r}: expected one group name in "
                                  f"[{group}:children]")
            if child not in declared:
                pending_children.setdefault(child, (group, where))
            raw.child(group, child, where)
            # a child is not a top-level group of its own
            if group != "all" and child in raw.children.get("all", []):
                raw.children["all"].remove(child)
    for child, (parent, where) in pending_children.items():
        if child not in declared:
            raise ConfigError(f"{where}: [{parent}:children] names group {child!r}, which is "
                              "not defined in the file (add a [" + child + "] section)")
    for g, where in vars_only.items():
        if g not in declared and g != "all":
            raise ConfigError(f"{where}: [{g}:vars] for group {g!r}, which is not defined in the "
                              "file (add a [" + g + "] section)")


# ---- host patterns

def _expand_host_pattern(pattern: str, where: str) -> list[tuple[str, int | None]]:
    """``name``, ``name:port``, ``[::1]:port``, ranges ``web[01:10]``, ``db-[a:c]``,
    ``n[0:10:2]`` -> [(host, port)]."""
    port: int | None = None
    m = re.fullmatch(r"\[([0-9a-fA-F:.]*:[0-9a-fA-F:.]*)\]:(\d+)", pattern)
    if m and m.group(1).count(":") >= 2:  # IPv6 with a port
        return [(m.group(1), int(m.group(2)))]
    outside = re.sub(r"\[[^\]]*\]", "", pattern)
    if outside.count(":") == 1:
        name, _, p = pattern.rpartition(":")
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ConfigError(f"{where}: {pattern!r}: after ':' comes a port number "
                              "(host:port)")
        pattern, port = name, int(p)
    if not pattern:
        raise ConfigError(f"{where}: empty host name")
    return [(h, port) for h in _expand_ranges(pattern, where)]


def _expand_ranges(pattern: str, where: str) -> list[str]:
    m = re.search(r"\[([^\]]*)\]", pattern)
    if not m or ":" not in m.group(1):
        return [pattern]
    head, tail = pattern[:m.start()], pattern[m.end():]
    bits = m.group(1).split(":")
    if len(bits) not in (2, 3) or not bits[0] or not bits[1]:
        raise ConfigError(f"{where}: {pattern!r}: a host range is [START:END] or "
                          "[START:END:STEP]")
    start, end = bits[0], bits[1]
    step = bits[2] if len(bits) == 3 else "1"
    if not step.isdigit() or int(step) < 1:
        raise ConfigError(f"{where}: {pattern!r}: the step of a host range is a positive number")
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        values = [str(i).zfill(width) for i in range(int(start), int(end) + 1, int(step))]
    elif len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        values = [chr(i) for i in range(ord(start), ord(end) + 1, int(step))]
    else:
        raise ConfigError(f"{where}: {pattern!r}: a host range is numbers ([01:10]) or single "
                          "letters ([a:f])")
    if not values:
        raise ConfigError(f"{where}: {pattern!r}: the range is empty (start after end)")
    return [h + t for v in values for h in [head + v] for t in _expand_ranges(tail, where)]


# ---- group_vars/ and host_vars/ beside the inventory file

def _vars_files(base: Path, name: str) -> list[Path]:
    out = [base / (name + s) for s in ("", ".yml", ".yaml", ".json")
           if (base / (name + s)).is_file()]
    d = base / name
    if d.is_dir():
        out += sorted(f for f in d.rglob("*") if f.is_file()
                      and (f.suffix.lower() in YAML_SUFFIXES or not f.suffix)
                      and not f.name.startswith("."))
    return out


def _load_vars_file(path: Path) -> _Vars:
    import yaml

    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        raise ConfigError(f"{path}:1: a vault-encrypted vars file needs Ansible's reader: "
                          "install ansible-core (pip install ansible-core)")
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(f"{path}{':' + str(mark.line + 1) if mark else ''}: not valid YAML: "
                          f"{exc.problem or exc}") from None
    if data is None:
        return _Vars()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a vars file is a mapping (var: value)")
    lines = _top_level_lines(text)
    return _Vars({str(k): (v, f"{path}:{lines.get(str(k), 1)}") for k, v in data.items()})


def _top_level_lines(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"""^["']?([^\s:"'#][^:"']*)["']?\s*:""", line)
        if m:
            out.setdefault(m.group(1).strip(), n)
    return out


def _read_vars_dirs(raw: _Raw, base: Path) -> None:
    for kind, names, into in (("group_vars", [*raw.direct, "all", "ungrouped"],
                               raw.extra_group_vars),
                              ("host_vars", list(raw.host_vars), raw.extra_host_vars)):
        d = base / kind
        if not d.is_dir():
            continue
        for name in names:
            merged = _Vars()
            for f in _vars_files(d, name):
                merged.update(_load_vars_file(f))
            if merged:
                into[name] = merged


# ---- merging (Ansible's precedence)

def _resolve(raw: _Raw) -> Inventory:
    raw.group("all", raw.path)
    # ungrouped: the hosts that are in no group but all (as Ansible reconciles it)
    in_group = {h for g, hs in raw.direct.items() if g not in ("all", "ungrouped") for h in hs}
    loose = [h for h in raw.direct.get("ungrouped", []) + raw.direct["all"] if h not in in_group]
    if loose or "ungrouped" in raw.direct:
        raw.group("ungrouped", raw.path)
        raw.direct["ungrouped"] = list(dict.fromkeys(loose))
        if "ungrouped" not in raw.children["all"]:
            raw.children["all"].insert(0, "ungrouped")
    raw.direct["all"] = []
    depth = _depths(raw)
    extra_g, extra_h = raw.extra_group_vars, raw.extra_host_vars

    def priority(g: str) -> int:
        for src in (extra_g.get(g, {}), raw.group_vars.get(g, {})):
            if "ansible_group_priority" in src:
                try:
                    return int(src["ansible_group_priority"][0])
                except (TypeError, ValueError):
                    pass
        return 1

    parents: dict[str, set[str]] = {}
    for g, kids in raw.children.items():
        for k in kids:
            parents.setdefault(k, set()).add(g)
    hostvars: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    for host in raw.host_vars:
        groups: set[str] = {"all"}
        todo = [g for g, hs in raw.direct.items() if host in hs]
        while todo:
            g = todo.pop()
            if g not in groups:
                groups.add(g)
                todo += parents.get(g, ())
        ordered = sorted(groups, key=lambda g: (depth.get(g, 0), priority(g), g))
        layers = [raw.group_vars.get(g, _Vars()) for g in ordered]
        layers.append(extra_g.get("all", _Vars()))
        layers += [extra_g.get(g, _Vars()) for g in ordered if g != "all"]
        layers += [raw.host_vars[host], extra_h.get(host, _Vars())]
        values: dict[str, Any] = {}
        where: dict[str, str] = {}
        for layer in layers:
            for k, (v, w) in layer.items():
                values[k], where[k] = v, w
        hostvars[host] = (values, where)
    return _assemble(raw.path, "built-in", raw.direct, raw.children, hostvars)


def _depths(raw: _Raw) -> dict[str, int]:
    """Longest path from ``all``; a cycle in children is an error."""
    depth: dict[str, int] = {}
    state: dict[str, int] = {}

    def visit(g: str, d: int, path: list[str]) -> None:
        if state.get(g) == 1:
            cycle = " -> ".join(path[path.index(g):] + [g])
            raise ConfigError(f"{raw.group_where.get(g, raw.path)}: groups contain each other: "
                              f"{cycle}")
        if depth.get(g, -1) >= d and state.get(g) == 2:
            return
        depth[g] = max(depth.get(g, 0), d)
        state[g] = 1
        for k in raw.children.get(g, []):
            visit(k, d + 1, path + [g])
        state[g] = 2

    visit("all", 0, [])
    for g in raw.direct:
        if g not in depth:
            visit(g, 1, [])
    return depth
