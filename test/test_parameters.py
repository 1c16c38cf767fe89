"""Node parameter specs: one stated range per parameter, both checked and declared; the parameter files list them
(no ROS graph needed). The nodes' tables are the rclpy-free modules ``stn_replay`` reads; the synthetic camera's is in
its node module."""

from pathlib import Path

import pytest
import yaml

from stn_ros.ros import grasp_parameters, stn_parameters, synthetic_camera
from stn_ros.ros.parameters import descriptor

CONFIG = Path(__file__).resolve().parents[1] / 'config'

TABLES = {'stn_node': stn_parameters, 'grasp_quality_node': grasp_parameters, 'synthetic_camera': synthetic_camera}
SPECS = [(node, spec) for node, module in TABLES.items() for spec in module.PARAMETERS]


@pytest.mark.parametrize(
    'node,spec',
    [s for s in SPECS if s[1].int_range or s[1].float_range],
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_a_ranged_parameter_checks_and_declares_the_same_range(node, spec):
    low, high = spec.int_range or spec.float_range
    assert spec.check(spec.default) == spec.default and spec.check(low) == low and spec.check(high) == high
    step = 1 if spec.int_range else 1e-9 * max(1.0, abs(high))
    for outside in (low - step, high + step):
        with pytest.raises(ValueError, match=r'must be in \['):
            spec.check(outside)
    declared = descriptor(spec)
    if spec.int_range:
        assert (declared.integer_range[0].from_value, declared.integer_range[0].to_value) == (low, high)
    else:
        assert declared.dynamic_typing and f'[{low}, {high}]' in declared.additional_constraints
        assert isinstance(spec.check(int(high)), float)  # `-p x:=1` into a double parameter works


def test_every_parameter_default_passes_its_own_check():
    for _, spec in SPECS:
        if spec.default is not None:
            spec.check(spec.default)


def flattened(parameters: dict, prefix: str = '') -> dict:
    """A parameter file's nested ``ros__parameters`` as the dotted names the nodes declare."""
    out = {}
    for key, value in parameters.items():
        if isinstance(value, dict):
            out |= flattened(value, f'{prefix}{key}.')
        else:
            out[f'{prefix}{key}'] = value
    return out


GRIPPER_FILE = flattened(yaml.safe_load((CONFIG / 'gripper.yaml').read_text())['/**']['ros__parameters'])


@pytest.mark.parametrize('name', TABLES)
def test_each_parameter_file_lists_every_declared_parameter_at_its_default(name):
    """config/<node>.yaml is the node's documentation: every parameter (but ones without a default), as declared;
    the gripper's, which both grasp nodes declare, are in config/gripper.yaml alone (one place)."""
    listed = flattened(yaml.safe_load((CONFIG / f'{name}.yaml').read_text())[name]['ros__parameters'])
    declared = {spec.name: spec.default for spec in TABLES[name].PARAMETERS if spec.default is not None}
    assert not set(listed) & set(GRIPPER_FILE)
    if name != 'synthetic_camera':
        listed |= GRIPPER_FILE
    assert listed == declared
