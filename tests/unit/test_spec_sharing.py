"""``_spec.Specs``: commands registered with the same options share one ``Spec``; any difference, a mapping's
items included, keeps them apart."""

from __future__ import annotations

from parallux._spec import Spec, Specs


def test_Specs_share_one_spec_between_commands_registered_alike() -> None:
    specs = Specs()
    first = specs.shared(Spec(None, timeout=5.0, retries=1))
    assert specs.shared(Spec(None, timeout=5.0, retries=1)) is first
    assert specs.shared(Spec(None, timeout=6.0, retries=1)) is not first
    assert specs.shared(Spec("another run's completion", timeout=5.0, retries=1)) is not first


def test_Specs_compare_mappings_and_lists_by_their_items() -> None:
    specs = Specs()
    first = specs.shared(Spec(None, env={"A": "1", "B": "2"}, retry_on=[1, 2]))
    assert specs.shared(Spec(None, env={"B": "2", "A": "1"}, retry_on=[1, 2])) is first
    assert specs.shared(Spec(None, env={"A": "1", "B": "3"}, retry_on=[1, 2])) is not first
    assert specs.shared(Spec(None, env={"A": "1", "B": "2"}, retry_on=[2, 1])) is not first
    plain = specs.shared(Spec(None))
    assert plain is not first and specs.shared(Spec(None)) is plain
    assert specs.shared(Spec(None, env={})) is not plain  # (an empty mapping is not "no env")


def test_Specs_keep_a_spec_no_key_can_hold_unshared() -> None:
    specs = Specs()
    odd = Spec(None, retry_on=[{1, 2}])  # (a set inside a list: no key)
    assert specs.shared(odd) is odd
    assert specs.shared(Spec(None, retry_on=[{1, 2}])) is not odd


def test_Specs_share_the_goals_variables_as_one_dict() -> None:
    """``setEnv()`` makes a new dict each time: commands registered between two calls hold the same one."""
    specs = Specs()
    goal_env = {"A": "1"}
    first = specs.shared(Spec(None, base_env=goal_env))
    assert specs.shared(Spec(None, base_env=goal_env)) is first
    after_set_env = specs.shared(Spec(None, base_env={**goal_env, "B": "2"}))
    assert after_set_env is not first and after_set_env.base_env == {"A": "1", "B": "2"}
