"""The package's layers (the README's "Layout"): imports run one way, and the pure-compute layers never load rclpy.

core < models < bridge < perception < sim < {training, ros} < evaluation < apps. A module may import its own layer and
the layers below it; ``training`` and ``ros`` never import each other. Imports are read from the parsed
source (every ``import`` / ``from ... import``, also inside functions, relative ones resolved).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / 'stn_ros'
RANK = {
    'core': 0,
    'models': 1,
    'bridge': 2,
    'perception': 3,
    'sim': 4,
    'training': 5,
    'ros': 5,
    'evaluation': 6,
    'apps': 7,
}
APART = {frozenset({'training', 'ros'})}
NO_RCLPY_LAYERS = ('core', 'models', 'bridge', 'perception', 'sim')
RCLPY_FREE_ROS_MODULES = ('parameter_specs', 'stn_parameters', 'grasp_parameters', 'stamp_pairing')


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (relative imports resolved against its package)."""
    name = module_name(path, root)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[: len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # `from stn_ros import perception` names a layer as well as `import stn_ros.perception`
            found += [
                (node.lineno, f'{module}.{alias.name}' if module == root.name else module) for alias in node.names
            ]
    return sorted(set(found))


def layer_of(module: str, root_name: str) -> str | None:
    parts = module.split('.')
    return parts[1] if parts[0] == root_name and len(parts) > 1 and parts[1] in RANK else None


def layer_violations(root: Path) -> list[str]:
    """Every import in the package at ``root`` that runs up the layers or between layers kept apart."""
    violations = []
    for path in sorted(root.rglob('*.py')):
        own = layer_of(module_name(path, root), root.name)
        for line, module in imported_modules(path, root):
            target = layer_of(module, root.name)
            if target is None or target == own:
                continue
            if own is None:  # the package's own __init__ sits below everything
                violations.append(f'{path.relative_to(root.parent)}:{line}: {root.name} imports {module}')
            elif RANK[target] > RANK[own] or frozenset({own, target}) in APART:
                violations.append(f'{path.relative_to(root.parent)}:{line}: {own} imports {module} ({target})')
    return violations


def test_every_module_belongs_to_a_layer():
    stray = [p for p in PACKAGE_ROOT.rglob('*.py') if p.parent == PACKAGE_ROOT and p.name != '__init__.py']
    stray += [p for p in PACKAGE_ROOT.iterdir() if p.is_dir() and p.name not in RANK and p.name != '__pycache__']
    assert not stray, f'outside the layers: {stray}'


def test_imports_run_one_way_through_the_layers():
    assert layer_violations(PACKAGE_ROOT) == []


@pytest.mark.parametrize(
    'importer,source,ok',
    [
        ('perception/frame.py', 'from stn_ros.ros import health', False),
        ('perception/frame.py', 'from stn_ros.bridge.image_codec import decode_image', True),
        ('perception/frame.py', 'from stn_ros.perception import camera', True),
        ('core/crops.py', 'def f():\n    from stn_ros.models import gqcnn\n', False),
        ('bridge/codec.py', 'from ..perception import camera', False),
        ('bridge/codec.py', 'from ..core import crops', True),
        ('ros/node.py', 'import stn_ros.training.loop', False),
        ('training/loop.py', 'from stn_ros import ros', False),
        ('apps/demo.py', 'from stn_ros.ros import stn_node', True),
        ('sim/scenes.py', 'from stn_ros.apps.demo import main', False),
        ('training/loop.py', 'from stn_ros.evaluation import physics', False),
        ('ros/stn_node.py', 'from stn_ros.evaluation import metrics', False),
        ('evaluation/physics.py', 'from stn_ros.ros import child_processes', True),
        ('evaluation/physics.py', 'from stn_ros.training import loop', True),
        ('evaluation/physics.py', 'from stn_ros.apps import demo', False),
    ],
)
def test_the_checker_finds_an_import_that_runs_up(tmp_path, importer, source, ok):
    root = tmp_path / 'stn_ros'
    for layer in RANK:
        (root / layer).mkdir(parents=True)
        (root / layer / '__init__.py').write_text('')
    (root / '__init__.py').write_text('')
    (root / importer).write_text(source)
    assert (layer_violations(root) == []) == ok


def assert_no_rclpy_loaded_by(modules: list[str]) -> None:
    """Import ``modules`` in a fresh interpreter: neither rclpy nor rcl_interfaces may come with them."""
    code = (
        f'import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n'
        'bad = sorted(m for m in sys.modules if m.split(".")[0] in ("rclpy", "rcl_interfaces"))\n'
        'assert not bad, bad\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_pure_compute_layers_import_no_rclpy():
    modules = sorted(
        module_name(p, PACKAGE_ROOT) for layer in NO_RCLPY_LAYERS for p in (PACKAGE_ROOT / layer).rglob('*.py')
    )
    assert len(modules) > 20
    assert_no_rclpy_loaded_by(modules)


def test_the_ros_layers_rclpy_free_modules_load_no_rclpy():
    """What stn_replay and the evaluation read of the ros layer (parameter specs, the nodes' tables) and the stamp
    pairer (unit-tested alone) stay importable without rclpy."""
    assert_no_rclpy_loaded_by([f'stn_ros.ros.{name}' for name in RCLPY_FREE_ROS_MODULES])


def test_the_perception_nodes_never_load_pybullet(ros_installed):
    """pybullet is for data, evaluation and the demo's camera; a robot runs the nodes without it."""
    code = (
        'import sys\nimport stn_ros.ros.stn_node, stn_ros.ros.grasp_quality_node, stn_ros.ros.synthetic_camera\n'
        'assert "pybullet" not in sys.modules\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
