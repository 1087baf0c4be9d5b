"""docs/ARCHITECTURE.md matches the code: every module of espcn_jax is in its map, and its "Imports" section lists
exactly the espcn_jax modules each one imports."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def imports_of(path: pathlib.Path) -> set:
  """The espcn_jax modules (first level below the package) that `path` imports, itself left out."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "espcn_jax":
      found |= {a.name for a in node.names} if node.module == "espcn_jax" else {node.module.split(".")[1]}
    elif isinstance(node, ast.Import):
      found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("espcn_jax.")}
  return found - {path.stem}


def documented_imports() -> dict:
  text = DOC.read_text()
  section = text[text.index("## Imports"):]
  section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
  rows = re.findall(r"^- `(\w+)`: (.*)$", section, flags=re.M)
  return {name: {m.strip(" `") for m in rest.split(",") if m.strip(" `") not in ("", "nothing")} for name, rest in rows}


def test_every_module_is_in_the_map_and_its_imports_are_listed():
  modules = {p.stem: p for p in (ROOT / "espcn_jax").glob("*.py") if p.stem != "__init__"}
  text = DOC.read_text()
  missing = [m for m in modules if f"{m}.py" not in text]
  assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"
  doc = documented_imports()
  assert set(doc) == set(modules), f"Imports section: {sorted(set(modules) ^ set(doc))}"
  wrong = {m: sorted(imports_of(p)) for m, p in modules.items() if imports_of(p) != doc[m]}
  assert not wrong, f"docs/ARCHITECTURE.md, Imports, should read: {wrong}"
