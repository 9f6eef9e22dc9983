"""The pass/fail logic of the soak test (tests/soak/soak.py) on made-up data, without a
server: the RSS growth after warm-up (medians of 5 s windows), the expected outcome of valid
and invalid requests, the comparison with the server's dinov3_requests_total, and the parsing
of a /metrics text."""
import pytest

from tests.soak import soak


def samples(values, step=1.0):
    return [(i * step, v) for i, v in enumerate(values)]


def test_rss_growth_compares_window_medians():
    # warm-up ends at t=9 (window 4..9), the run at t=19 (window 14..19)
    rss = [100] * 10 + [104] * 10
    warm, end, peak, growth = soak.rss_growth(samples(rss), 9, 19)
    assert (warm, end, peak) == (100, 104, 104)
    assert growth == pytest.approx(0.04)


def test_rss_growth_ignores_a_single_spike_but_reports_it_as_max():
    rss = [100] * 10 + [100, 100, 100, 100, 100, 100, 100, 180, 100, 100]
    warm, end, peak, growth = soak.rss_growth(samples(rss), 9, 19)
    assert growth == pytest.approx(0.0) and peak == 180


def test_rss_growth_sees_a_steady_leak():
    rss = [100 + i for i in range(40)]  # 1 unit per second; windows are 6 samples (5 s)
    _, _, _, growth = soak.rss_growth(samples(rss), 9, 39)
    assert growth == pytest.approx(136.5 / 106.5 - 1)
    assert growth > 0.05


def test_rss_growth_without_samples():
    assert soak.rss_growth([], 10, 20) == (None, None, None, None)
    warm, end, _, growth = soak.rss_growth(samples([50, 60]), 0.5, 1)  # sparse sampling
    assert (warm, end) == (50, 55.0) and growth == pytest.approx(0.1)


def test_outcome_failures():
    good = {("Embed", "valid", "OK"): 10, ("Embed", "invalid", "INVALID_ARGUMENT"): 2,
            ("StreamEmbed", "valid", "OK"): 3}
    assert soak.outcome_failures(good) == []
    bad = dict(good)
    bad[("Embed", "valid", "RESOURCE_EXHAUSTED")] = 1
    bad[("StreamEmbed", "invalid", "OK")] = 2
    problems = soak.outcome_failures(bad)
    assert len(problems) == 2
    assert any("1 valid Embed" in p and "RESOURCE_EXHAUSTED" in p for p in problems)
    assert any("2 invalid StreamEmbed" in p and "expected INVALID_ARGUMENT" in p
               for p in problems)


def test_counter_failures():
    client = {("Embed", "OK"): 5, ("Embed", "INVALID_ARGUMENT"): 1}
    assert soak.counter_failures({("Embed", "OK"): 5.0, ("Embed", "INVALID_ARGUMENT"): 1.0},
                                 client) == []
    problems = soak.counter_failures({("Embed", "OK"): 6.0, ("Embed", "CANCELLED"): 1.0},
                                     client)
    assert len(problems) == 3  # OK differs, CANCELLED unknown to the client, INVALID missing
    assert any("code=CANCELLED" in p for p in problems)


def test_metrics_parsing_and_delta():
    text = ('# HELP dinov3_requests_total x\n# TYPE dinov3_requests_total counter\n'
            'dinov3_requests_total{code="OK",method="Embed",model="a",protocol="dinov3"} 4\n'
            'dinov3_requests_total{code="OK",method="Embed",model="b",protocol="dinov3"} 3\n'
            'dinov3_requests_total{code="INVALID_ARGUMENT",method="StreamEmbed",model="a",'
            'protocol="dinov3"} 2\n'
            'dinov3_images_total{model="a"} 12\n'
            'dinov3_images_total{model="b"} 5\n')
    values = soak.samples(text)
    assert soak.summed(values, "dinov3_images_total") == 17  # over the models
    by = soak.requests_by_method_code(values)
    assert by == {("Embed", "OK"): 7, ("StreamEmbed", "INVALID_ARGUMENT"): 2}
    assert soak.delta({("Embed", "OK"): 9, ("X", "OK"): 2}, by) == {("Embed", "OK"): 2,
                                                                      ("X", "OK"): 2}


def test_arguments():
    args = soak.parse_args(["--seconds", "1800", "--rate", "20"])
    assert args.warmup_seconds == 450 and args.max_rss_growth == 0.05
    assert soak.parse_args([]).warmup_seconds == 15  # 60 s default: a quarter
    with pytest.raises(SystemExit):
        soak.parse_args(["--seconds", "5", "--warmup_seconds", "10"])
