"""The settings a live run takes while it plays: one list with the settings' own ranges, a value
checked into its type or refused in one line, and a change applied from the next dream."""

from __future__ import annotations

import pytest


def test_live_params_carry_the_settings_ranges_and_check_values():
    from dreamvideo import settings as S
    from dreamvideo.errors import UserError

    names = [p.name for p in S.LIVE_PARAMS]
    assert {"step_size", "steps", "octaves", "zoom", "angle", "dx", "dy"} <= set(names)
    for p in S.LIVE_PARAMS:
        assert (p.lo, p.hi) == S.field_range(S.SECTIONS[p.section], p.name)[0]
    assert S.check_live("steps", "4") == 4 and isinstance(S.check_live("steps", 4.0), int)
    assert S.check_live("step_size", "0.02") == 0.02
    for name, bad, says in (("steps", "4.5", "whole number"), ("octaves", 99, "from 1 to 12"),
                            ("zoom", "nan", "zoom"), ("step_size", "fast", "step_size"), ("layers", "x", "live")):
        with pytest.raises(UserError, match=says) as e:
            S.check_live(name, bad)
        assert "\n" not in str(e.value)


def test_a_control_replaces_its_schedule_from_the_next_dream_only():
    from dreamvideo.errors import UserError
    from dreamvideo.realtime.controls import LiveControls
    from dreamvideo.realtime.engine import LiveTimeline
    from dreamvideo.settings import DreamSettings, Schedules

    controls = LiveControls()
    tl = LiveTimeline(Schedules(step_size="0.01", steps="3", zoom="1.05", blend="1"), 10.0, [], controls=controls)
    base = DreamSettings()
    assert controls.set("steps", "7") == 7 and controls.set("octaves", 2) == 2
    assert tl.settings(base, 5).steps == 3  # the dream in progress keeps its values
    tl.refresh()  # the next dream starts
    got = tl.settings(base, 5)
    assert (got.steps, got.octaves, got.step_size) == (7, 2, 0.01)
    controls.set("zoom", 1.2)
    assert tl.moves(3)[0] == pytest.approx(1.2)  # a zoom's moves: from the next frame
    version = controls.version
    with pytest.raises(UserError):
        controls.set("steps", -1)
    assert controls.version == version and controls.get("steps") == 7  # a refused value changes nothing
    controls.clear("steps")
    tl.refresh()
    assert tl.settings(base, 5).steps == 3
