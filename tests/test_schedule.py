import builtins
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamvideo.errors import UserError
from dreamvideo.schedule import AUDIO_FEATURES, Schedule, ScheduleError, parse_expression

FPS = 24


def ev(text, **env):
    return parse_expression(text)(env)


# --- keyframes ---------------------------------------------------------------------------------

def test_linear_keyframes_exact_and_hold():
    s = Schedule.parse("0:(1.0), 48:(1.05)")
    assert s.at(24, FPS) == pytest.approx(1.025, abs=1e-15)
    v = s.values(60, FPS)
    assert v.dtype == np.float64 and v.shape == (60,)
    assert v[0] == 1.0 and v[48] == 1.05 and v[59] == 1.05
    assert v[12] == pytest.approx(1.0125, abs=1e-15)


def test_hold_before_first_key_and_unsorted_keys():
    v = Schedule.parse("20:(3), 10:(1)").values(25, FPS)
    assert list(v[:11]) == [1.0] * 11 and v[15] == 2.0 and list(v[20:]) == [3.0] * 5


def test_cubic_through_three_keys_is_the_parabola():
    s = Schedule.parse("0:(1.0), 48:(1.05), 96:(1.0)", interp="cubic")
    f = np.arange(97)
    expect = 1 + 0.05 * (1 - ((f - 48) / 48) ** 2)
    np.testing.assert_allclose(s.values(97, FPS), expect, atol=1e-12)
    assert s.at(24, FPS) == pytest.approx(1.0375, abs=1e-12)
    assert s.at(200, FPS) == 1.0 and s.at(-5, FPS) == 1.0


def test_cubic_two_keys_is_linear_and_many_keys_are_smooth():
    assert Schedule.parse("0:(0), 10:(1)", interp="cubic").at(5, FPS) == pytest.approx(0.5)
    v = Schedule.parse("0:(0), 10:(1), 20:(0), 30:(2)", interp="cubic").values(31, FPS)
    assert v[10] == pytest.approx(1) and v[30] == pytest.approx(2)
    second = np.diff(v, 2)
    assert np.max(np.abs(np.diff(second))) < 0.05  # no kinks, unlike linear


def test_step_keyframes():
    v = Schedule.parse("0:(1.0), 48:(1.05), 96:(1.0)", interp="step").values(100, FPS)
    assert v[47] == 1.0 and v[48] == 1.05 and v[95] == 1.05 and v[96] == 1.0 and v[99] == 1.0


def test_keyframe_values_may_be_expressions():
    s = Schedule.parse("0:(2*2), 10:(pi), 20:(f), 30:(0)")
    v = s.values(35, FPS)
    assert v[0] == 4.0 and v[10] == pytest.approx(math.pi)
    assert list(v[20:30]) == list(map(float, range(20, 30)))  # evaluated at each frame of its span
    assert v[30] == 0.0
    assert v[15] == pytest.approx((math.pi + 20) / 2)  # linear from the key at 10 to the span's first frame


def test_single_expression_key_covers_every_frame():
    v = Schedule.parse("0:(1 + 0.01*f)").values(5, FPS)
    np.testing.assert_allclose(v, 1 + 0.01 * np.arange(5))


def test_at_agrees_with_values():
    s = Schedule.parse("0:(0), 10:(sin(t)), 20:(1), 30:(f/10)", interp="cubic")
    v = s.values(40, FPS)
    for f in (0, 5, 12, 25, 39):
        assert s.at(f, FPS) == pytest.approx(v[f], abs=1e-12)


# --- numbers and expressions ---------------------------------------------------------------------

def test_plain_numbers():
    for x in ("1.05", 1.05, 3, np.float32(0.5)):
        s = Schedule.parse(x)
        assert s.is_constant and not s.needs_audio
        assert s.values(3, FPS) == pytest.approx([float(x)] * 3)
    assert Schedule.parse("0:(2), 9:(2)").is_constant
    assert not Schedule.parse("0:(1), 9:(2)").is_constant


@pytest.mark.parametrize("text, value", [
    ("2+3*4**2", 50), ("-2**2", -4), ("2**-1", 0.5), ("2**3**2", 512), ("2^3", 8), ("(2+3)*4", 20),
    ("7 % 3", 1), ("-7 % 3", 2), ("10/4", 2.5), ("1 - 2 - 3", -4), ("2*-3", -6), ("+4", 4),
    ("1 < 2", 1), ("2 <= 1", 0), ("3 > 2", 1), ("2 >= 2", 1), ("1 == 1", 1), ("1 != 1", 0),
    ("1 + 2 < 4", 1), ("5 if 1 > 2 else 6", 6), ("5 if 2 > 1 else 6", 5),
    ("1/0", 0), ("3 % 0", 0), ("abs(-3)", 3), ("min(3, 1, 2)", 1), ("max(3, 5)", 5),
    ("clamp(5, 0, 1)", 1), ("clamp(-5, 0, 1)", 0), ("smoothstep(0, 1, 0.5)", 0.5),
    ("smoothstep(0, 1, 2)", 1), ("smoothstep(1, 1, 1)", 1), ("floor(2.7)", 2), ("ceil(2.1)", 3),
    ("sqrt(16)", 4), ("exp(0)", 1), ("log(e)", 1), ("pow(2, 10)", 1024), ("cos(pi)", -1), ("tan(0)", 0),
    ("1.5e2", 150), (".5", 0.5),
])
def test_expression_values(text, value):
    assert ev(text) == pytest.approx(value, abs=1e-12)


def test_expression_variables_and_features():
    s = Schedule.parse("1 + 0.02*sin(2*pi*t/4)")
    v = s.values(101, 25)
    np.testing.assert_allclose(v, 1 + 0.02 * np.sin(2 * np.pi * np.arange(101) / 25 / 4))
    assert s.names == {"t"} and not s.needs_audio
    assert Schedule.parse("f + fps").at(3, 30) == 33
    beat = np.array([0, 1, 0.5, 0.25], dtype=np.float32)
    s = Schedule.parse("1.0 + 0.04*beat")
    assert s.needs_audio
    np.testing.assert_allclose(s.values(4, 25, {"beat": beat}), 1 + 0.04 * beat)
    s = Schedule.parse("0.01*(1 + 2*onset)")
    np.testing.assert_allclose(s.values(2, 25, {"onset": np.array([0.0, 1.0])}), [0.01, 0.03])
    # vectorised conditionals evaluate each branch only on its own frames
    v = Schedule.parse("log(rms) if rms > 0 else -1").values(3, 25, {"rms": np.array([0.0, 1.0, math.e])})
    np.testing.assert_allclose(v, [-1, 0, 1])


def test_parse_expression_api():
    x = parse_expression("beat * 2 + t + pi")
    assert x.names == {"beat", "t"}
    np.testing.assert_allclose(x({"beat": np.array([0.0, 1.0]), "t": np.array([0.0, 0.5])}), [math.pi, 2.5 + math.pi])
    assert isinstance(parse_expression("1+1")({}), float)


def test_missing_audio_is_a_user_error():
    with pytest.raises(UserError, match=r"pass a soundtrack \(`audio`\)"):
        Schedule.parse("1 + beat").values(3, 25)
    with pytest.raises(ScheduleError, match="no value for 'beat'"):
        parse_expression("1 + beat")({})


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, pos, words", [
    ("1 + * 2", 4, "unexpected '*'"), ("1 +", 3, "unexpected end"), ("2 * foo", 4, "unknown name 'foo'"),
    ("bar(1)", 0, "unknown function 'bar'"), ("sin(1, 2)", 0, "takes 1 argument"), ("pow(2)", 0, "takes 2"),
    ("min(1)", 0, "2 or more"), ("1 2", 2, "unexpected '2'"), ("(1 + 2", 6, "')'"), ("1 = 1", 2, "'=='"),
    ("1 < 2 < 3", 6, "chained"), ("1 $ 2", 2, "unexpected '$'"), ("", 0, "empty"), ("   ", 0, "empty"),
    ("sin", 0, "is a function"), ("1e999", 0, "too large"), ("1 if 2", 6, "'else'"),
])
def test_error_positions(text, pos, words):
    with pytest.raises(ScheduleError) as info:
        parse_expression(text)
    e = info.value
    assert e.pos == pos and e.text == text and words in str(e)
    assert f"at column {pos + 1}:" in str(e) and "\n" not in str(e)
    assert isinstance(e, UserError)


def test_error_message_format_and_caret():
    with pytest.raises(ScheduleError) as info:
        parse_expression("1 + * 2")
    assert str(info.value) == """bad schedule "1 + * 2" at column 5: unexpected '*'; expected a number, name or '('"""
    assert info.value.caret() == "1 + * 2\n    ^"
    with pytest.raises(ScheduleError, match='^bad strength schedule "0:'):
        Schedule.parse("0:(1), 5:(*)", name="strength")


@pytest.mark.parametrize("text, pos, words", [
    ("0:(1), 0:(2)", 7, "two keyframes"), ("0:(1) 5:(2)", 6, "','"), ("-1:(1)", 0, "frame number"),
    ("1.5:(1)", 0, "whole numbers"), ("0:(1), 10:(", 11, "unexpected end"), ("0 1:(2)", 2, "':'"),
])
def test_keyframe_errors(text, pos, words):
    with pytest.raises(ScheduleError) as info:
        Schedule.parse(text)
    assert info.value.pos == pos and words in str(info.value)


@pytest.mark.parametrize("text, pos, words", [
    ("log(0)", 0, "log() gives -inf"), ("sqrt(-1)", 0, "nan"), ("10**400", 2, "'**' gives inf"),
    ("exp(1000)", 0, "inf"), ("1e300*1e300", 5, "inf"),
])
def test_non_finite_results_raise(text, pos, words):
    with pytest.raises(ScheduleError) as info:
        Schedule.parse(text)  # constant: caught at parse time
    assert info.value.pos == pos and words in str(info.value)


def test_non_finite_at_a_frame_names_the_frame():
    s = Schedule.parse("1 + log(f - 3)")
    with pytest.raises(ScheduleError, match="at frame 0") as info:
        s.values(10, 25)
    assert info.value.pos == 4


def test_a_schedule_too_long_or_too_deeply_nested_is_a_clear_error_not_a_crash():
    with pytest.raises(ScheduleError, match="characters long"):
        Schedule.parse("1+" * 1200 + "1")
    with pytest.raises(ScheduleError, match="nests"):
        parse_expression("(" * 500 + "1" + ")" * 500)
    with pytest.raises(ScheduleError, match="nests"):
        parse_expression("-" * 500 + "1")
    with pytest.raises(ScheduleError, match="nests"):
        parse_expression("+".join(["1"] * 200))
    with pytest.raises(ScheduleError, match="nests"):
        parse_expression(" ".join(["1 if 1 else"] * 100) + " 1")
    assert ev("+".join(["1"] * 50)) == 50


def test_bad_arguments():
    with pytest.raises(UserError, match="interpolation"):
        Schedule.parse("1", interp="quadratic")
    for bad in (None, [1], True, float("nan"), float("inf"), 10**400):
        with pytest.raises(ScheduleError):
            Schedule.parse(bad)
    with pytest.raises(UserError, match="fps"):
        Schedule.parse("t").values(3, 0)
    with pytest.raises(UserError, match="frames"):
        Schedule.parse("t").values(-1, 25)


# --- safety ------------------------------------------------------------------------------------

PYTHON = ["__import__('os').system('touch MARKER')", "().__class__", "open('MARKER', 'w')", "lambda: 1",
          "__import__", "exec", "eval('1')", "globals()", "[1]", "{}", "x.y", "f.__class__", "print(1)",
          "import os", "0:(__import__('os').system('touch MARKER'))", "1; open('MARKER','w')", "a = 1"]


@pytest.mark.parametrize("code", PYTHON)
def test_python_code_is_rejected_and_never_run(code, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def forbidden(*a, **k):
        raise AssertionError("schedules must never reach eval/exec/compile")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    with pytest.raises(ScheduleError):
        Schedule.parse(code).values(3, 25)
    with pytest.raises(ScheduleError):
        parse_expression(code)({"t": 0.0, "f": 0.0, "fps": 25.0})
    monkeypatch.undo()
    assert not (tmp_path / "MARKER").exists()


# --- fuzz --------------------------------------------------------------------------------------

ALPHABET = "0123456789.:,()+-*/%^<>=! eftpisnrmoxbacgldhqwu_"
ATOMS = st.sampled_from(["0", "1", "2.5", "1e3", "1e308", "0.001", "t", "f", "fps", "pi", "e"] + list(AUDIO_FEATURES))
FEATURES = {k: np.linspace(0, 1, 7) for k in AUDIO_FEATURES}


def grammar():
    ops = st.sampled_from(["+", "-", "*", "/", "%", "**", "^", "<", "<=", ">", ">=", "==", "!="])
    funcs = st.sampled_from(["sin", "cos", "tan", "abs", "min", "max", "clamp", "smoothstep", "floor",
                             "ceil", "sqrt", "exp", "log", "pow", "nope"])
    expr = st.deferred(lambda: st.one_of(
        ATOMS,
        st.tuples(expr, ops, expr).map(" ".join),
        expr.map(lambda x: f"-{x}"),
        expr.map(lambda x: f"({x})"),
        st.tuples(funcs, st.lists(expr, max_size=4)).map(lambda p: f"{p[0]}({', '.join(p[1])})"),
        st.tuples(expr, expr, expr).map(lambda p: f"{p[0]} if {p[1]} else {p[2]}"),
    ))
    keys = st.lists(st.tuples(st.integers(0, 40), expr), min_size=1, max_size=4).map(
        lambda ks: ", ".join(f"{k}:({v})" for k, v in ks))
    return st.one_of(expr, keys)


def check_only_schedule_errors(text):
    for interp in ("linear", "cubic", "step"):
        try:
            s = Schedule.parse(text, interp=interp)
        except ScheduleError:
            return
        try:
            v = s.values(7, 25, FEATURES)
            assert v.shape == (7,) and np.all(np.isfinite(v))
            assert s.at(3, 25, FEATURES) == pytest.approx(v[3], rel=1e-9, abs=1e-9)
        except ScheduleError:
            pass
    try:
        x = parse_expression(text)
        x({"t": np.linspace(0, 1, 5), "f": np.arange(5.0), "fps": 25.0, **{k: np.ones(5) for k in AUDIO_FEATURES}})
    except ScheduleError:
        pass


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(max_size=80))
def test_fuzz_any_text(text):
    check_only_schedule_errors(text)


@FUZZ
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_fuzz_grammar_alphabet(text):
    check_only_schedule_errors(text)


@FUZZ
@given(grammar())
def test_fuzz_grammar_structure(text):
    check_only_schedule_errors(text)
