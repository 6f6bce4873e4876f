"""What each stage of the pipeline's files (dvc.yaml, release/dvc.yaml) runs: its module
and every project module it imports, transitively, as files; and how their deps differ
from that.

`python -m tests.support.stagedeps` prints each stage's code deps as its file should
list them, then what is missing or stale, and exits 1 when anything is; with `--write`
it puts those lists into the files (in place of the code deps there).
"""

from __future__ import annotations

import ast
import functools
import json
import shlex
import sys
from pathlib import Path

import grimp
import yaml

from ctrpipe import paths

ROOT = Path(__file__).resolve().parents[2]
CODE = ("ctrpipe", "stages")


@functools.cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*CODE)


def stages() -> dict[str, dict]:
    """Every stage of the pipeline's files, by its address as DVC prints it: the name in
    dvc.yaml, `file:name` in another file."""
    return {
        name if file == paths.PIPELINE_FILES[0] else f"{file}:{name}": stage
        for file in paths.PIPELINE_FILES
        for name, stage in of_file(file).items()
    }


def of_file(file: str) -> dict[str, dict]:
    return yaml.safe_load((ROOT / file).read_text())["stages"]


def module_of(stage: dict) -> str:
    words = shlex.split(stage["cmd"])
    assert words[:2] == ["python", "-m"], stage["cmd"]
    return words[2]


def file_of(module: str) -> Path:
    path = ROOT / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def runs_code(path: Path) -> bool:
    """False for a package's __init__.py that holds nothing but a docstring."""
    body = ast.parse(path.read_text()).body
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body
    )


def runs(module: str) -> set[str]:
    """The files Python runs for `python -m module`: it, every project module it imports
    (inside functions too), and the packages that hold them."""
    modules = {module} | graph().find_upstream_modules(module)
    for name in list(modules):
        parts = name.split(".")
        modules |= {".".join(parts[:i]) for i in range(1, len(parts))}
    files = {file_of(m) for m in modules}
    return {str(f.relative_to(ROOT)) for f in files if f.name != "__init__.py" or runs_code(f)}


def declared(stage: dict) -> list[str]:
    """The stage's deps that are code (under ctrpipe/ or stages/)."""
    return [d for d in stage.get("deps", []) if d.split("/")[0] in CODE]


def covered(entry: str) -> set[str]:
    """The Python files a dep entry stands for: the file, or every file in the folder."""
    path = ROOT / entry
    if path.is_dir():
        return {str(p.relative_to(ROOT)) for p in path.rglob("*.py")}
    return {entry}


def problems() -> dict[str, dict[str, list[str]]]:
    """Per stage: files it runs that no dep covers, and deps that cover nothing it runs."""
    out = {}
    for name, stage in stages().items():
        runs_ = runs(module_of(stage))
        declared_ = declared(stage)
        covers = set().union(*(covered(d) for d in declared_))
        out[name] = {
            "missing": sorted(runs_ - covers),
            "stale": [d for d in declared_ if not covered(d) & runs_],
        }
    return out


def ordered(files: set[str]) -> list[str]:
    return sorted(files, key=lambda p: (p.split("/")[0] != "stages", p))


def write() -> None:
    """Each pipeline file with each stage's code deps replaced by what it runs (text
    edit: the comments and the rest of the file stay as they are)."""
    for file in paths.PIPELINE_FILES:
        path, own = ROOT / file, of_file(file)
        lines, out, stage = path.read_text().splitlines(keepends=True), [], None
        for line in lines:
            words = line.split()
            top = line.startswith("  ") and not line.startswith("   ")
            if top and line.rstrip().endswith(":"):
                stage = line.strip()[:-1]
            if line.strip() == "deps:" and stage in own:
                out.append(line)
                out += [f"      - {f}\n" for f in ordered(runs(module_of(own[stage])))]
                continue
            if words[:1] == ["-"] and len(words) == 2 and words[1].split("/")[0] in CODE:
                continue
            out.append(line)
        path.write_text("".join(out))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    for name, stage in stages().items():
        print(f"{name}:")
        for path in ordered(runs(module_of(stage))):
            print(f"      - {path}")
    found = {name: p for name, p in problems().items() if p["missing"] or p["stale"]}
    print(json.dumps(found))
    raise SystemExit(1 if found else 0)
